"""`self_training`: class-balanced pseudo-labels above a confidence threshold (the selection,
by hand), config errors before any model, and runs on the tiny model: the rounds' reports,
resume inside a round (the same pseudo-labels again). Target labels never reaching training
and two processes: tests/test_domain_adaptation_unlabeled.py (parametrized)."""

import shutil

import pytest
import torch

from hf_transfer import DomainAdaptationRecipe, load_config
from hf_transfer.errors import ConfigError
from hf_transfer.strategies.self_training import select_pseudo_labels
from source_assets import write_word_shift_data

# --- the selection -----------------------------------------------------------------------------

# Rows 0-5 predicted class 0 (confidences .95 .90 .80 .60 .99 .85), rows 6-7 class 1 (.75 .97),
# rows 8-9 class 2 (.55 .90).
PROBABILITIES = torch.tensor([
    [0.95, 0.03, 0.02], [0.90, 0.05, 0.05], [0.80, 0.10, 0.10], [0.60, 0.30, 0.10],
    [0.99, 0.005, 0.005], [0.85, 0.10, 0.05], [0.20, 0.75, 0.05], [0.02, 0.97, 0.01],
    [0.25, 0.20, 0.55], [0.05, 0.05, 0.90],
])


def test_equal_numbers_per_class_the_most_confident_first():
    rows, labels, counts = select_pseudo_labels(PROBABILITIES, threshold=0.7)
    # Above 0.7: five rows of class 0, two of class 1, one of class 2 -> one per class.
    assert counts == {"qualifying": [5, 2, 1], "kept": [1, 1, 1], "per_class": 1}
    assert rows == [4, 7, 9] and labels == [0, 1, 2]
    rows, labels, _ = select_pseudo_labels(PROBABILITIES, threshold=0.5)
    assert rows == [4, 0, 7, 6, 9, 8] and labels == [0, 0, 1, 1, 2, 2]


def test_a_class_nobody_predicts_confidently_stops_the_round_unless_a_cap_is_set():
    # Above 0.92: rows 0 and 4 (class 0), 7 (class 1), none of class 2.
    assert select_pseudo_labels(PROBABILITIES, threshold=0.92) == ([], [], {
        "qualifying": [2, 1, 0], "kept": [0, 0, 0], "per_class": 0})
    rows, labels, counts = select_pseudo_labels(PROBABILITIES, threshold=0.92, per_class=5)
    assert rows == [4, 0, 7] and labels == [0, 0, 1] and counts["kept"] == [2, 1, 0]
    rows, _, counts = select_pseudo_labels(PROBABILITIES, threshold=0.7, per_class=3)
    assert rows == [4, 0, 1, 7, 6, 9] and counts["kept"] == [3, 2, 1]


def test_ties_keep_row_order():
    rows, _, _ = select_pseudo_labels(torch.tensor([[0.8, 0.2]] * 4 + [[0.1, 0.9]] * 2), threshold=0.5)
    assert rows == [0, 1, 4, 5]


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("override, message", [
    ({"strategy.self_training_rounds": 0}, "`strategy.self_training_rounds` is 0"),
    ({"strategy.pseudo_label_threshold": 1.0}, "`strategy.pseudo_label_threshold` is 1.0"),
    ({"strategy.pseudo_labels_per_class": 0}, "`strategy.pseudo_labels_per_class` is 0"),
    ({"strategy.round_epochs": 0}, "`strategy.round_epochs` is 0"),
])
def test_config_errors_before_any_model(tiny_overrides, override, message):
    with pytest.raises(ConfigError, match=message):
        DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, "strategy.name": "self_training",
                                                      **override}))


# --- runs on the tiny model ------------------------------------------------------------------------


def _overrides(tiny_overrides, tmp_path, **extra):
    # A shift the tiny model learns within a few epochs (full tuning at this rate), so that its
    # predictions of the target text are confident.
    data = write_word_shift_data(tmp_path / "data", n=200)
    return {**tiny_overrides, "strategy.name": "self_training", "tuning.method": "full",
            "model.max_length": 16, "training.num_epochs": 6, "training.learning_rate": 3e-3,
            "data.source": {"files": {"train": str(data["source"])}},
            "data.target": {"files": {"train": str(data["target"])}},
            "strategy.pseudo_label_threshold": 0.6, "output.dir": str(tmp_path / "run"), **extra}


def test_rounds_train_on_the_source_plus_balanced_pseudo_labels(tiny_overrides, tmp_path):
    recipe = DomainAdaptationRecipe(load_config(overrides=_overrides(tiny_overrides, tmp_path)))
    results = recipe.run()
    assert [s["name"] for s in results["stages"]] == ["source", "round_1", "round_2"]
    rounds = results["self_training"]["rounds"]
    assert [r["stage"] for r in rounds] == ["round_1", "round_2"]
    source_rows = results["data"]["source"]["splits"]["train"]
    for report, stage in zip(rounds, results["stages"][1:]):
        kept = list(report["pseudo_labels"].values())
        assert sum(kept) > 0, report
        assert set(kept) == {report["per_class_cap"]}, report  # equal numbers per class
        assert all(k <= a for k, a in zip(kept, report["above_threshold"].values()))
        # One epoch over the source plus the pseudo-labelled texts, batch 8.
        assert stage["steps"] == -(-(source_rows + sum(kept)) // 8)
        assert 0 <= report["accuracy"] <= 1
    # The shift keeps the class words: the pseudo-labels are mostly right.
    assert rounds[-1]["accuracy"] > 0.75, rounds


def test_resumes_inside_a_round_with_the_same_pseudo_labels(tiny_overrides, tmp_path):
    overrides = _overrides(tiny_overrides, tmp_path, **{
        "strategy.self_training_rounds": 1, "training.eval_strategy": "steps", "training.eval_steps": 10,
        "training.save_total_limit": 100, "output.dir": str(tmp_path / "full")})
    uninterrupted = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    # What a run killed in round_1 after its first checkpoint leaves on disk.
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "full", cut)
    shutil.rmtree(cut / "model")
    for path in (cut / "results.json", cut / "checkpoints" / "round_1" / "result.json"):
        path.unlink()
    for later in sorted((cut / "checkpoints" / "round_1").glob("step_*"))[1:]:
        shutil.rmtree(later)
    resumed = DomainAdaptationRecipe(load_config(overrides={
        **overrides, "output.dir": str(cut), "output.resume_from_checkpoint": "latest"})).run()
    assert resumed["self_training"]["rounds"] == uninterrupted["self_training"]["rounds"]
    assert resumed["eval_matrix"] == uninterrupted["eval_matrix"]
    assert [s["history"] for s in resumed["stages"]] == [s["history"] for s in uninterrupted["stages"]]
