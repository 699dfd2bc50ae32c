"""When to transfer: the verdict rule on crafted numbers, baselines as nested runs of a real
recipe (the `transfer` section of results.json), the run report and `hf-transfer report`."""

import json
import math

import pytest

from conftest import launch, overrides_to_args
from hf_transfer import DomainAdaptationRecipe, LabelSpaceRecipe, load_config
from hf_transfer.baselines import (NEGATIVE, NEGLIGIBLE, POSITIVE, judge, transfer_section)
from hf_transfer.run.comparison import comparison_plan
from hf_transfer.cli import main as cli
from hf_transfer.errors import ConfigError
from hf_transfer.hub import build_model_card
from hf_transfer.report import write_report

# --- the verdict rule -------------------------------------------------------------------------


@pytest.mark.parametrize("transfer, baseline, n, verdict", [
    # three seeds each, small spread, big test set: a clear win and a clear loss
    ([0.80, 0.82, 0.81], [0.70, 0.71, 0.69], 10_000, POSITIVE),
    ([0.60, 0.62, 0.61], [0.70, 0.71, 0.69], 10_000, NEGATIVE),
    # a 0.5-point gain is below the 1-point floor, however precise
    ([0.705, 0.705], [0.700, 0.700], 10**9, NEGLIGIBLE),
    # a 5-point gain drowned by seed spread (std 0.1 per arm over 3 seeds -> band ~0.16)
    ([0.80, 0.70, 0.90], [0.75, 0.65, 0.85], 10**9, NEGLIGIBLE),
    # one seed: only the test-set term; n = 50 makes 10 points noise, n = 5000 does not
    ([0.80], [0.70], 50, NEGLIGIBLE),
    ([0.80], [0.70], 5000, POSITIVE),
])
def test_verdict_rule(transfer, baseline, n, verdict):
    result = judge(transfer, baseline, n)
    assert result["verdict"] == verdict
    assert result["gain"] == pytest.approx(sum(transfer) / len(transfer) - sum(baseline) / len(baseline), abs=1e-6)
    assert result["noise"] >= 0.01


def test_noise_band_is_the_documented_formula():
    t, b, n = [0.80, 0.84], [0.70, 0.70], 400
    result = judge(t, b, n)
    seed_sd = math.sqrt((0.02828427 ** 2 + 0.0) / 2)
    test_se = math.sqrt((0.82 * 0.18 + 0.70 * 0.30) / n)
    assert result["sigma_seed"] == pytest.approx(seed_sd, abs=1e-6)
    assert result["sigma_test"] == pytest.approx(test_se, abs=1e-6)
    assert result["noise"] == pytest.approx(2 * math.sqrt(seed_sd ** 2 + test_se ** 2), abs=1e-6)
    assert result["paired_gains"] == [pytest.approx(0.10), pytest.approx(0.14)]
    assert result["gain_std"] == pytest.approx(0.02828427, abs=1e-6)


def test_seed_term_shrinks_with_seeds_and_a_negligible_verdict_says_what_would_decide():
    # The same spread over 3 seeds instead of 2: a smaller standard error of the mean.
    two, three = judge([0.80, 0.70], [0.75, 0.65], 10**9), judge([0.80, 0.70, 0.75], [0.75, 0.65, 0.70], 10**9)
    assert three["sigma_seed"] < two["sigma_seed"]
    # 5 points at a seed std of 0.1: negligible at 3 seeds; about 33 per arm would separate it.
    spread = judge([0.80, 0.70, 0.90], [0.75, 0.65, 0.85], 10**9)
    assert spread["verdict"] == NEGLIGIBLE and spread["to_decide"]["seeds"] == 33
    more = judge([0.80, 0.70, 0.90] * 11, [0.75, 0.65, 0.85] * 11, 10**9)  # 33 seeds, the same spread
    assert more["verdict"] == POSITIVE and more["to_decide"] is None
    # A test split of 500 alone makes ±0.06 noise: no number of seeds decides a 5-point gain.
    small_test = judge([0.60, 0.61], [0.55, 0.56], 500)
    assert small_test["to_decide"]["seeds"] is None and "larger target test split" in small_test["to_decide"]["why"]
    assert "one seed" in judge([0.8], [0.7], 50)["to_decide"]["why"]
    assert "not called an effect" in judge([0.705, 0.705], [0.700, 0.700], 10**9)["to_decide"]["why"]


def test_section_decides_against_target_only_and_reports_every_arm():
    row = lambda acc, f1: {"accuracy": acc, "macro_f1": f1}  # noqa: E731
    section = transfer_section(
        {"transfer": [row(0.50, 0.45), row(0.52, 0.47)],
         "target_only": [row(0.80, 0.79), row(0.82, 0.80)],
         "source_only": [row(0.40, 0.30), row(0.41, 0.31)]},
        seeds=[1, 2], decide_on="macro_f1", n_test=500)
    assert section["reference"] == "target_only" and section["verdict"] == NEGATIVE
    assert section["gain"]["source_only"]["macro_f1"]["verdict"] == POSITIVE
    assert section["arms"]["transfer"]["accuracy"]["mean"] == pytest.approx(0.51)
    assert "negative transfer" in section["summary"] and "target_only" in section["summary"]
    # the Hub card renders the same section as tables
    card = str(build_model_card({"format": "transformers", "base_model": "m", "labels": ["a", "b"]},
                                {"transfer": section}, "alice/m"))
    assert "**negative transfer**" in card and "| target_only | macro_f1 | -0.3350 |" in card


def test_baseline_settings_are_checked_before_anything_loads(tiny_overrides):
    with pytest.raises(ConfigError, match="target_onyl.*Did you mean `target_only`"):
        load_config(overrides={**tiny_overrides, "strategy.baselines": "[target_onyl]"})
    with pytest.raises(ConfigError, match="baseline_seeds"):
        load_config(overrides={**tiny_overrides, "strategy.baseline_seeds": 3})
    config = load_config(overrides={**tiny_overrides, "strategy.baselines": "[source_only]"})
    with pytest.raises(ConfigError, match="already trains on the source only"):
        DomainAdaptationRecipe(config)  # strategy source_only: the run is that baseline
    with pytest.raises(ConfigError, match="cannot run"):
        LabelSpaceRecipe(load_config(overrides={**tiny_overrides, "strategy.name": "new_head",
                                                "strategy.baselines": "[source_only]"}))
    config = load_config(overrides={**tiny_overrides, "strategy.baselines": "[target_only, source_only]",
                                    "strategy.name": "sequential", "strategy.baseline_seeds": 2,
                                    "training.seed": 7})
    assert comparison_plan(config) == [("transfer", 8), ("target_only", 7), ("target_only", 8),
                                       ("source_only", 7), ("source_only", 8)]


# --- a real recipe with baselines ----------------------------------------------------------------


@pytest.fixture(scope="module")
def run_with_baselines(tiny_model, tiny_data, tmp_path_factory):
    """The real script under `accelerate launch` with 2 processes (nested runs share the
    process group): sequential domain adaptation, full tuning, a target-only baseline, 2 seeds."""
    run_dir = tmp_path_factory.mktemp("verdict") / "run"
    overrides = {
        "model.name_or_path": str(tiny_model), "model.max_length": 32,
        "data.source": {"files": {"train": str(tiny_data["source"])}, "group_column": "domain"},
        "data.target": {"files": {"train": str(tiny_data["target"])}, "group_column": "domain", "k_shot": 4},
        "tuning.method": "full", "training.num_epochs": 3, "training.batch_size": 8,
        "training.eval_batch_size": 32, "training.learning_rate": 2e-3, "training.logging_steps": 4,
        "strategy.name": "sequential", "strategy.target_num_epochs": 3,
        "strategy.baselines": "[target_only]", "strategy.baseline_seeds": 2,
        "output.dir": str(run_dir),
    }
    done = launch("recipes/domain_adaptation.py", overrides_to_args(overrides), num_processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Transfer verdict:" in done.stdout and done.stdout.count("[target_only, seed") == 2
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_target_only_baseline_gives_a_transfer_section(run_with_baselines):
    run_dir, results = run_with_baselines
    assert results["environment"]["num_processes"] == 2
    section = results["transfer"]
    assert section["seeds"] == [42, 43] and section["reference"] == "target_only"
    # every arm's scores are the target/test rows of its own run folder
    nested = {name: json.loads((run_dir / path / "results.json").read_text())
              for name, path in section["runs"].items()}
    assert set(nested) == {"transfer_seed43", "target_only_seed42", "target_only_seed43"}
    target_only = [nested[f"target_only_seed{s}"]["eval_matrix"]["target/test"]["macro_f1"] for s in (42, 43)]
    transfer = [results["eval_matrix"]["target/test"]["macro_f1"],
                nested["transfer_seed43"]["eval_matrix"]["target/test"]["macro_f1"]]
    assert section["arms"]["target_only"]["macro_f1"]["values"] == [pytest.approx(v, abs=1e-6) for v in target_only]
    assert section["arms"]["transfer"]["macro_f1"]["values"] == [pytest.approx(v, abs=1e-6) for v in transfer]
    expected = judge(transfer, target_only, results["eval_matrix"]["target/test"]["n"])
    assert section["gain"]["target_only"]["macro_f1"] == expected
    assert section["verdict"] == expected["verdict"]
    # the target-only run trained the target stage alone, from the pretrained encoder
    assert [s["name"] for s in nested["target_only_seed42"]["stages"]] == ["target"]
    assert [s["name"] for s in nested["transfer_seed43"]["stages"]] == ["source", "target"]
    assert nested["target_only_seed42"]["config"]["training"]["seed"] == 42
    # nested runs keep no model and write no report
    assert not (run_dir / "baselines" / "target_only_seed42" / "model").exists()
    assert not (run_dir / "baselines" / "target_only_seed42" / "report.md").exists()
    assert results["data"]["target"]["splits"]["train"] == 12


def test_run_writes_a_report_with_figures(run_with_baselines):
    run_dir, results = run_with_baselines
    confusion = results["confusion_matrix"]
    assert confusion["split"] == "target/test" and confusion["labels"] == results["labels"]
    assert sum(map(sum, confusion["matrix"])) == results["eval_matrix"]["target/test"]["n"]
    correct = sum(confusion["matrix"][i][i] for i in range(3))
    assert correct / results["eval_matrix"]["target/test"]["n"] == pytest.approx(
        results["eval_matrix"]["target/test"]["accuracy"])
    text = (run_dir / "report.md").read_text()
    for needle in ("## Transfer verdict", "## Evaluation", "## Confusion matrix (target/test)",
                   "## Training", results["transfer"]["verdict"]):
        assert needle in text
    for name in ("eval_matrix", "learning_curves", "confusion_matrix", "baselines"):
        png = run_dir / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"report/{name}.png" in text


def test_report_without_matplotlib_says_how_to_get_figures(run_with_baselines, tmp_path, monkeypatch):
    import hf_transfer.report as report

    run_dir, results = run_with_baselines
    monkeypatch.setattr(report, "_figure_api", lambda: None)
    path = write_report(tmp_path, results)
    text = path.read_text()
    assert "matplotlib is not installed" in text and "[report]" in text
    assert "## Evaluation" in text and not (tmp_path / "report").exists()


def test_report_cli_rewrites_one_run_and_compares_several(run_with_baselines, tmp_path, capsys):
    run_dir, results = run_with_baselines
    (run_dir / "report.md").unlink()
    assert cli(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").is_file()
    out = tmp_path / "cmp"
    seed43 = run_dir / "baselines" / "target_only_seed43"
    assert cli(["report", str(run_dir), str(seed43), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = (out / "comparison.md").read_text()
    assert "| run |" in printed and "run" in table and "target_only_seed43" in table
    assert results["transfer"]["verdict"] in table
    assert f"{results['eval_matrix']['target/test']['macro_f1']:.4f}" in table
    assert (out / "comparison.png").stat().st_size > 5000
    assert cli(["report", str(tmp_path / "nothing")]) == 1  # a clear error, no traceback
    assert "no results.json" in capsys.readouterr().err


def test_label_space_target_only_baseline_starts_from_the_plain_encoder(tiny_model, tiny_data, tmp_path):
    """The nested baseline of a source-classifier recipe: no source stage, a fresh head."""
    overrides = {
        "model.name_or_path": str(tiny_model), "model.max_length": 32,
        "data.source": {"files": {"train": str(tiny_data["source"])}},
        "data.target": {"files": {"train": str(tiny_data["target"])}, "k_shot": 4},
        "tuning.method": "full", "training.num_epochs": 1, "training.batch_size": 16,
        "training.learning_rate": 1e-3, "strategy.name": "new_head", "strategy.target_num_epochs": 1,
        "strategy.baselines": "[target_only]", "output.dir": str(tmp_path / "run"), "output.report": False,
        "output.save_model": False,
    }
    results = LabelSpaceRecipe(load_config(overrides=overrides)).run()
    nested = json.loads((tmp_path / "run" / "baselines" / "target_only_seed42" / "results.json").read_text())
    assert [s["name"] for s in results["stages"]] == ["source", "target"]
    assert [s["name"] for s in nested["stages"]] == ["target"]
    assert nested["source_model"]["origin"].startswith(f"pretrained encoder {tiny_model}")
    assert results["transfer"]["seeds"] == [42] and results["transfer"]["gain"]["target_only"]["macro_f1"]["sigma_seed"] is None
    assert not (tmp_path / "run" / "report.md").exists()  # output.report false
