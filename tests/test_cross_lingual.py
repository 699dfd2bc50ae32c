"""The cross-lingual recipe: strategies on the tiny model, per-language results, early errors."""

import csv
import json

import pytest

from conftest import launch, overrides_to_args
from hf_transfer import CrossLingualRecipe, load_config
from hf_transfer.errors import ConfigError, DataError

SCRIPT = "recipes/cross_lingual.py"


@pytest.fixture(scope="module")
def languages_file(tiny_data, tmp_path_factory):
    """Tiny sentiment data in three made-up 'languages': en (the airline rows), xx and yy
    (the apple rows split in two); `dialog` ids are shared across languages."""
    source = list(csv.DictReader(tiny_data["source"].open()))
    target = [json.loads(line) for line in tiny_data["target"].read_text().splitlines()]
    rows = [{**r, "language": "en", "dialog": f"d{i}"} for i, r in enumerate(source)]
    rows += [{**r, "language": "xx" if i % 2 else "yy", "dialog": f"d{i}"} for i, r in enumerate(target)]
    path = tmp_path_factory.mktemp("languages") / "languages.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label", "domain", "language", "dialog"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def cl_overrides(tiny_overrides, languages_file):
    def dataset(languages):
        return {"files": {"train": str(languages_file)}, "group_column": "language",
                "split_key": "dialog", "filter": {"language": languages}}
    return {**tiny_overrides, "data.source": dataset(["en"]), "data.target": dataset(["xx", "yy"]),
            "tuning.method": "full", "training.learning_rate": 2e-3, "strategy.name": "zero_shot"}


def _check_languages(results, sources, targets):
    rows = results["languages"]
    assert set(rows) == {"+".join(sources), *targets}
    for language in targets:
        row = rows[language]
        assert row["role"] == "target"
        matrix = results["eval_matrix"]
        # one target language: its row is the whole target split
        assert row["accuracy"] == matrix.get(f"target/test[{language}]", matrix["target/test"])["accuracy"]
        assert row["gap_accuracy"] == pytest.approx(row["accuracy"] - rows["+".join(sources)]["accuracy"], abs=1e-6)


def test_zero_shot_script(cl_overrides, tmp_path):
    done = launch(SCRIPT, overrides_to_args(cl_overrides))
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["scenario"] == "cross_lingual" and results["strategy"] == "zero_shot"
    _check_languages(results, ["en"], ["xx", "yy"])
    assert results["model_selection"] == "source/validation"
    assert [s["select_on"] for s in results["stages"]] == ["source/validation"]


def test_few_shot_two_processes_selecting_on_target(cl_overrides, tmp_path):
    overrides = {**cl_overrides, "strategy.name": "few_shot", "strategy.select_on": "target",
                 "strategy.target_num_epochs": 2}
    overrides["data.target"] = {**overrides["data.target"], "k_shot": 3}
    done = launch(SCRIPT, overrides_to_args(overrides), num_processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    # k per class in each target language: 3 x 3 classes x 2 languages
    assert results["data"]["target"]["splits"]["train"] == 18
    assert [s["name"] for s in results["stages"]] == ["source", "target"]
    assert results["model_selection"] == "target/validation"
    for role in ("source", "target"):
        assert results["eval_matrix"][f"{role}/test"]["n"] == results["data"][role]["splits"]["test"]
    _check_languages(results, ["en"], ["xx", "yy"])


def test_multi_source_in_process(cl_overrides):
    overrides = {**cl_overrides, "strategy.name": "multi_source", "training.num_epochs": 1}
    overrides["data.source"] = {**overrides["data.source"], "filter": {"language": ["en", "xx"]}}
    overrides["data.target"] = {**overrides["data.target"], "filter": {"language": ["yy"]}}
    results = CrossLingualRecipe(load_config(overrides=overrides)).run()
    _check_languages(results, ["en", "xx"], ["yy"])


def test_multi_source_needs_two_source_languages(cl_overrides):
    overrides = {**cl_overrides, "strategy.name": "multi_source"}
    with pytest.raises(DataError, match="two or more source languages"):
        CrossLingualRecipe(load_config(overrides=overrides)).run()


def test_labels_missing_in_a_target_language_are_dropped(cl_overrides, languages_file, tmp_path):
    rows = list(csv.DictReader(languages_file.open()))
    kept = [r for r in rows if not (r["language"] == "yy" and r["label"] == "neutral")]
    path = tmp_path / "no_neutral_in_yy.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    overrides = {**cl_overrides, "training.num_epochs": 1}
    for role in ("data.source", "data.target"):
        overrides[role] = {**overrides[role], "files": {"train": str(path)}}
    results = CrossLingualRecipe(load_config(overrides=overrides)).run()
    assert results["dropped_labels"] == ["neutral"]
    assert results["labels"] == ["negative", "positive"]


@pytest.mark.parametrize("change, message", [
    ({"data.target.group_column": None}, "`data.target.group_column` is not set"),
    ({"strategy.name": "few_shot"}, "`data.target.k_shot` is not set"),
    ({"strategy.name": "one_shot"}, "choose one of zero_shot, few_shot, multi_source"),
])
def test_config_errors_before_anything_loads(cl_overrides, change, message):
    overrides = {**cl_overrides}
    for key, value in change.items():
        section, field = key.rsplit(".", 1)
        if section in overrides and isinstance(overrides[section], dict):
            overrides[section] = {**overrides[section], field: value}
        else:
            overrides[key] = value
    with pytest.raises(ConfigError, match=message):
        CrossLingualRecipe(load_config(overrides=overrides))


def test_auto_across_languages_skips_what_the_data_does_not_allow(cl_overrides, tmp_path):
    """Default candidates: every cross-lingual strategy and `target_only`; `multi_source` needs
    two source languages, which this data has not: skipped with the reason."""
    overrides = {**cl_overrides, "strategy.name": "auto", "strategy.target_num_epochs": 1,
                 "output.dir": str(tmp_path / "auto")}
    overrides["data.target"] = {**overrides["data.target"], "k_shot": 3}
    results = CrossLingualRecipe(load_config(overrides=overrides)).run()
    auto = results["auto"]
    assert sorted(auto["scores"]) == ["few_shot", "target_only", "zero_shot"]
    assert list(auto["skipped"]) == ["multi_source"] and "two or more source languages" in auto["skipped"]["multi_source"]
    assert results["languages"]  # the kept run's per-language report
