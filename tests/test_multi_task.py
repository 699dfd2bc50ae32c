"""`multi_task`: the labelled source and target trained together in one stage, the target
repeated to `strategy.target_share` of the examples."""

import json

import datasets
import pytest

from hf_transfer import DomainAdaptationRecipe, load_config
from hf_transfer.errors import ConfigError
from hf_transfer.strategies.multi_task import joint_train, target_copies


def test_target_copies_reach_the_share_and_never_drop_target_rows():
    assert target_copies(3000, 100, 0.25) == 10  # 1000 target rows of 4000: a quarter
    assert target_copies(900, 48, 0.5) == 19
    assert target_copies(10, 100, 0.25) == 1  # already more than the share: once


def test_joint_train_keeps_every_source_row_and_repeats_the_target():
    source = datasets.Dataset.from_dict({"input_ids": [[1], [2], [3]], "labels": [0, 1, 2], "group": ["a"] * 3})
    target = datasets.Dataset.from_dict({"input_ids": [[7], [8]], "labels": [1, 0]})
    joint = joint_train(source, target, copies=3)
    assert joint.column_names == ["input_ids", "labels"]
    assert joint["labels"] == [0, 1, 2] + [1, 0] * 3


def _overrides(tiny_overrides, tmp_path, **extra):
    return {**tiny_overrides, "strategy.name": "multi_task", "tuning.method": "full",
            "data.target": {**tiny_overrides["data.target"], "k_shot": 4},
            "training.num_epochs": 1, "output.dir": str(tmp_path / "run"), **extra}


def test_a_share_outside_0_1_is_refused_before_any_model(tiny_overrides, tmp_path):
    with pytest.raises(ConfigError, match=r"`strategy.target_share` is 1.0: it must be between 0 and 1"):
        DomainAdaptationRecipe(load_config(overrides=_overrides(tiny_overrides, tmp_path,
                                                                **{"strategy.target_share": 1.0})))


def test_one_joint_stage_on_source_and_repeated_target_selected_on_target_validation(
        tiny_overrides, tmp_path, caplog):
    overrides = _overrides(tiny_overrides, tmp_path, **{"strategy.target_share": 0.5,
                                                        "strategy.label_shift": "mean"})
    with caplog.at_level("INFO"):
        results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    [stage] = results["stages"]
    assert stage["name"] == "joint" and stage["select_on"] == "target/validation"
    mix = results["multi_task"]
    assert mix["target_rows"] == 4 * 3  # k_shot 4 per class, 3 classes
    assert mix["target_copies"] == target_copies(mix["source_rows"], mix["target_rows"], 0.5) > 1
    assert abs(mix["target_share"] - 0.5) < 0.05
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["multi_task"] == mix
    # It trains on labelled target data: the label-shift correction does not apply, and says so.
    assert "label_shift" not in results
    assert "`strategy.label_shift` mean is not applied: `multi_task` trains on labelled target data" in caplog.text
