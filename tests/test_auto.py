"""`auto`: the candidate strategies and `target_only` as nested runs, the best on the target's
validation split kept, evaluated and saved; candidates the data does not allow skipped."""

import json

import pytest

from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.errors import ConfigError


def _overrides(tiny_overrides, tmp_path, **extra):
    return {**tiny_overrides, "strategy.name": "auto", "tuning.method": "full",
            "data.target": {**tiny_overrides["data.target"], "k_shot": 4},
            "training.num_epochs": 1, "output.dir": str(tmp_path / "run"), **extra}


@pytest.mark.parametrize("candidates, message", [
    (["source_only", "sequentail"], r"`strategy.candidates` has 'sequentail', which is not a strategy of this scenario"),
    (["auto"], r"`strategy.candidates` lists `auto` itself"),
    (["source_only", "source_only"], r"`strategy.candidates` lists a strategy twice"),
])
def test_wrong_candidates_are_refused_before_any_model(tiny_overrides, tmp_path, candidates, message):
    with pytest.raises(ConfigError, match=message):
        DomainAdaptationRecipe(load_config(overrides=_overrides(
            tiny_overrides, tmp_path, **{"strategy.candidates": candidates})))


def test_the_best_candidate_on_target_validation_is_kept_and_saved(tiny_overrides, tmp_path):
    overrides = _overrides(tiny_overrides, tmp_path, **{"strategy.candidates": [
        "source_only", "dann", "dapt", ["tapt", "sequential"], "multi_task", "target_only"]})
    results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    auto = results["auto"]
    # `dapt` needs a corpus (`data.unlabeled`) this run does not have: skipped, with the reason.
    # `dann` reads the target rows k_shot left out as its unlabelled text; a composition is a candidate.
    assert list(auto["skipped"]) == ["dapt"] and "data.unlabeled" in auto["skipped"]["dapt"]
    assert sorted(auto["scores"]) == ["dann", "multi_task", "source_only", "tapt+sequential", "target_only"]
    # Few-shot selection: a validation split of k_shot (4) per class, counted with the training rows.
    assert results["eval_matrix"]["target/validation"]["n"] == 12
    assert results["labelled_target_examples"] == {
        "train": 12, "selection": 12, "total": 24, "unlabelled_target_texts": 0,
        "unlabelled_from": "unused: no strategy of this run reads it"}
    validation = {name: s["target/validation"] for name, s in auto["scores"].items()}
    assert auto["chosen"] == max(validation, key=validation.get)
    # The chosen candidate's classifier is this run's: evaluated again, the same scores.
    chosen = auto["scores"][auto["chosen"]]
    for split, score in chosen.items():
        assert results["eval_matrix"][split]["macro_f1"] == pytest.approx(score, abs=1e-9)
    run = tmp_path / "run"
    for name in auto["scores"]:
        assert (run / "candidates" / name / "results.json").is_file()
    assert json.loads((run / "results.json").read_text())["auto"]["chosen"] == auto["chosen"]
    predicted = load_classifier(run / "model").predict(["great flight", "lost my bag"])
    assert set(predicted) <= {"negative", "neutral", "positive"}
