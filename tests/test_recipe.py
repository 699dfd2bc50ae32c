"""The domain-adaptation recipe end to end: the real script under `accelerate launch`,
one and two processes, resume, output-folder safety, early errors."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, launch, overrides_to_args
from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.errors import ConfigError, DataError

SCRIPT = "recipes/domain_adaptation.py"
EVAL_KEYS = {"source/validation", "source/test", "target/validation", "target/test"}


def _results(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _check_run_folder(run_dir, results):
    assert EVAL_KEYS <= set(results["eval_matrix"])
    for role in ("source", "target"):
        for split in ("validation", "test"):
            row = results["eval_matrix"][f"{role}/{split}"]
            # every example counted exactly once, whatever the number of processes
            assert row["n"] == results["data"][role]["splits"][split]
            assert 0 <= row["accuracy"] <= 1 and 0 <= row["macro_f1"] <= 1
            assert set(row["f1_per_class"]) == set(results["labels"])
    assert results["labels"] == ["negative", "neutral", "positive"]
    assert {"total_seconds", "train_seconds", "data_seconds"} <= set(results["timings"])
    assert results["config"]["output"]["dir"] == str(run_dir)
    assert (run_dir / "model" / "hf_transfer.json").is_file()


def test_script_single_process_lora_sequential_bf16(tiny_overrides, tmp_path):
    """The launcher's bf16 autocast (the GPU path) runs on the CPU too."""
    run_dir = tmp_path / "run"
    overrides = {**tiny_overrides, "strategy.name": "sequential", "data.target.k_shot": 4,
                 "strategy.target_num_epochs": 2, "training.log_with": "tensorboard",
                 "training.gradient_accumulation_steps": 2}
    done = launch(SCRIPT, overrides_to_args(overrides), mixed_precision="bf16")
    assert done.returncode == 0, done.stderr[-3000:]
    results = _results(run_dir)
    _check_run_folder(run_dir, results)
    assert results["strategy"] == "sequential"
    assert [s["name"] for s in results["stages"]] == ["source", "target"]
    assert results["data"]["target"]["splits"]["train"] == 12  # k_shot 4 x 3 classes
    assert results["environment"]["num_processes"] == 1
    assert results["environment"]["mixed_precision"] == "bf16"
    # 2 epochs of ceil(train / batch 8) micro-batches, 2 per optimizer step
    micro_batches = -(-results["data"]["source"]["splits"]["train"] // 8)
    assert results["stages"][0]["steps"] == 2 * -(-micro_batches // 2)
    assert list((run_dir / "logs").rglob("events.out.tfevents*")), "tensorboard tracker wrote nothing"
    assert "target/test" in done.stdout  # the summary table is printed
    classifier = load_classifier(run_dir / "model")
    assert classifier.predict(["great flight"])[0] in results["labels"]


def test_full_tuning_learns_and_transfers(tiny_overrides, tiny_data, tmp_path):
    """The loop really trains: the tiny task is learned and carries over to the target.
    The target mixes both domains, so its rows are also reported per group."""
    mixed = tmp_path / "mixed.csv"
    source_lines = tiny_data["source"].read_text().splitlines()
    target_rows = [json.loads(line) for line in tiny_data["target"].read_text().splitlines()]
    mixed.write_text("\n".join(source_lines + [
        f'"{r["text"]}",{r["label"]},{r["domain"]}' for r in target_rows]) + "\n")
    overrides = {**tiny_overrides, "tuning.method": "full", "training.num_epochs": 8,
                 "training.learning_rate": 2e-3,
                 "data.target": {"files": {"train": str(mixed)}, "group_column": "domain"}}
    results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    matrix = results["eval_matrix"]
    assert matrix["source/test"]["accuracy"] > 0.8
    assert matrix["target/test[apple]"]["accuracy"] > 0.6  # chance is 1/3
    assert matrix["target/test[airline]"]["n"] + matrix["target/test[apple]"]["n"] == matrix["target/test"]["n"]
    best = results["stages"][0]
    assert best["best_metric"] == max(h["macro_f1"] for h in best["history"] if "macro_f1" in h)


def test_two_processes_count_each_example_once_and_match_one_process(tiny_overrides, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    overrides = {**tiny_overrides, "tuning.method": "full", "strategy.name": "sequential",
                 "data.target.k_shot": 5}
    done = launch(SCRIPT, overrides_to_args(overrides), num_processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    results = _results(run_dir)
    _check_run_folder(run_dir, results)
    assert results["environment"]["num_processes"] == 2
    assert results["environment"]["distributed_type"] == "MULTI_CPU"

    # Same saved model, same data: metrics under 2 processes equal those under 1.
    # 180 rows in batches of 5 per process leave an uneven last batch to trim.
    metrics = {}
    for processes in (1, 2):
        out = tmp_path / f"eval_{processes}.json"
        done = launch("tests/scripts/evaluate_saved.py",
                      [str(run_dir / "model"), str(tiny_data["target"]), str(out)], processes)
        assert done.returncode == 0, done.stderr[-3000:]
        metrics[processes] = json.loads(out.read_text())
    assert metrics[1]["target/test"]["n"] == 180
    assert metrics[2] == metrics[1]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_resumed_run_ends_like_an_uninterrupted_one(tiny_overrides, tmp_path, method):
    """A LoRA checkpoint holds only the adapters and head: the frozen base comes from the
    pretrained model on resume, and the run still ends exactly as an uninterrupted one."""
    overrides = {**tiny_overrides, "tuning.method": method, "training.num_epochs": 3,
                 "training.eval_strategy": "steps", "training.eval_steps": 5,
                 "training.save_total_limit": 100, "training.learning_rate": 2e-3,
                 "output.dir": str(tmp_path / "full")}
    uninterrupted = DomainAdaptationRecipe(load_config(overrides=overrides)).run()

    # A run killed right after its second checkpoint: that is what it leaves on disk.
    interrupted = tmp_path / "interrupted"
    shutil.copytree(tmp_path / "full", interrupted)
    for path in ("results.json", "model", "checkpoints/source/result.json"):
        target = interrupted / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    checkpoints = sorted((interrupted / "checkpoints" / "source").glob("step_*"))
    assert len(checkpoints) > 3
    for later in checkpoints[2:]:
        shutil.rmtree(later)

    resumed_config = load_config(overrides={**overrides, "output.dir": str(interrupted),
                                            "output.resume_from_checkpoint": "latest"})
    resumed = DomainAdaptationRecipe(resumed_config).run()
    assert resumed["eval_matrix"] == uninterrupted["eval_matrix"]
    assert resumed["best_step"] == uninterrupted["best_step"]


@pytest.mark.parametrize("method", ["full", "lora", "frozen", "top_k"])
def test_checkpoints_hold_only_the_weights_that_train(tiny_overrides, tmp_path, method):
    from safetensors import safe_open

    overrides = {**tiny_overrides, "tuning.method": method, "training.max_steps": 2,
                 "output.dir": str(tmp_path / method)}
    recipe = DomainAdaptationRecipe(load_config(overrides=overrides))
    recipe.run()
    checkpoint = sorted((tmp_path / method / "checkpoints" / "source").glob("step_*"))[-1]
    with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as saved:
        keys = set(saved.keys())
    # the final model is unwrapped; the checkpoint's names are those of the prepared model
    trained = {n for n, p in recipe.model.named_parameters(remove_duplicate=False) if p.requires_grad}
    if method == "full":
        assert keys == set(recipe.model.state_dict())  # whole, buffers included
    else:
        assert keys == trained and len(keys) < len(recipe.model.state_dict())
    assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl", "trainer_state.json"} <= \
        {p.name for p in checkpoint.iterdir()}


def test_existing_run_folder_is_never_overwritten_silently(tiny_overrides, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text('{"hf_transfer_version": "0.1"}')  # a run of an older version
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"already holds a run .*--output.overwrite true"):
        DomainAdaptationRecipe(load_config(overrides=tiny_overrides)).run()
    assert (run_dir / "results.json").read_text() == '{"hf_transfer_version": "0.1"}'

    overrides = {**tiny_overrides, "output.overwrite": True, "training.num_epochs": 1}
    DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    assert (run_dir / "notes.txt").read_text() == "mine"  # only the run's own outputs replaced
    assert _results(run_dir)["eval_matrix"]


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_hf_transfer_did_not_make_is_never_emptied(tiny_overrides, tmp_path):
    """A user's own `logs/` in the output folder: refused, with advice that is safe to follow;
    `--output.overwrite true` does not delete it either (it did before the run marker)."""
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "logs" / "notes.txt").write_text("my notes")
    before = _tree(run_dir)
    for overwrite in (False, True):
        overrides = {**tiny_overrides, "output.overwrite": overwrite}
        with pytest.raises(ConfigError, match=r"holds logs, which hf_transfer did not write.*"
                                              r"Choose another `--output.dir`") as err:
            DomainAdaptationRecipe(load_config(overrides=overrides)).run()
        assert "overwrite" not in str(err.value)
        assert _tree(run_dir) == before


def test_a_run_marks_its_folder_so_overwrite_replaces_only_its_outputs(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "training.num_epochs": 1}
    DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    run_dir = tmp_path / "run"
    assert (run_dir / ".hf_transfer_run").is_file()
    (run_dir / "mine.txt").write_text("keep")
    DomainAdaptationRecipe(load_config(overrides={**overrides, "output.overwrite": True})).run()
    assert (run_dir / "mine.txt").read_text() == "keep" and (run_dir / "results.json").is_file()


def test_resume_without_checkpoints_is_a_clear_error(tiny_overrides):
    overrides = {**tiny_overrides, "output.resume_from_checkpoint": "latest"}
    with pytest.raises(ConfigError, match="has no checkpoints/ folder"):
        DomainAdaptationRecipe(load_config(overrides=overrides)).run()


def test_unknown_strategy_fails_before_anything_loads(tiny_overrides):
    with pytest.raises(ConfigError, match="`strategy.name` is 'dan'.*Did you mean `dann`"):
        DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, "strategy.name": "dan"}))


def test_target_label_outside_source_space_fails_before_the_model_loads(tiny_overrides, monkeypatch):
    import hf_transfer.run.pipeline as base

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load before data problems are reported")

    monkeypatch.setattr(base, "load_classifier_model", no_model)
    overrides = {**tiny_overrides}
    overrides["data.source"] = {**overrides["data.source"], "filter": {"label": ["negative", "positive"]}}
    with pytest.raises(DataError, match=r"labels the source never had: \['neutral'\]"):
        DomainAdaptationRecipe(load_config(overrides=overrides)).run()


@pytest.mark.parametrize("args, message", [
    (["--tuning.method", "lorra"], "Did you mean `lora`?"),
    (["--data.source.text_column", "body"], "`data.source.text_column`: column 'body' is not in split"),
])
def test_script_reports_user_errors_without_a_traceback(tiny_overrides, tmp_path, args, message):
    # Plain python: `accelerate launch` adds its own traceback when a script exits non-zero.
    command = [sys.executable, SCRIPT, *overrides_to_args(tiny_overrides), *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("method", ["full", "lora"])
def test_gradient_checkpointing_gives_the_same_numbers(tiny_overrides, tmp_path, method):
    """Activations recomputed in the backward pass (with dropout's RNG state restored): the
    same loss trace and evaluation as a run that keeps them."""
    runs = {}
    for on in (False, True):
        overrides = {**tiny_overrides, "tuning.method": method, "training.max_steps": 4,
                     "training.logging_steps": 1, "training.gradient_checkpointing": on,
                     "output.dir": str(tmp_path / f"gc_{on}")}
        recipe = DomainAdaptationRecipe(load_config(overrides=overrides))
        results = recipe.run()
        runs[on] = (results["eval_matrix"], [s["history"] for s in results["stages"]])
    model = recipe.model.get_base_model() if method == "lora" else recipe.model
    assert model.is_gradient_checkpointing
    assert runs[True] == runs[False]
