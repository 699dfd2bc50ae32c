"""The lecture's own setting in one run: labelled source, a few labelled target examples,
unlabelled target text (the data roles), strategies composed in order on one model
(`strategy.name: [tapt, sequential]`), and few-shot selection that reads no more labels than
training. Catalogue cases of bad compositions: tests/test_catalogue.py."""

import json

import pytest

from conftest import launch, overrides_to_args
from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.config import format_help
from hf_transfer.config.cli import parse_args
from hf_transfer.data.loading import load_splits, load_splits_with_rest
from hf_transfer.config import DatasetConfig
from hf_transfer.errors import ConfigError

SCRIPT = "recipes/domain_adaptation.py"
K = 4  # labelled target examples per class (the tiny target has 3 classes)


def _semi_supervised(tiny_overrides, tmp_path, name, **extra):
    return {**tiny_overrides, "strategy.name": name, "training.num_epochs": 1,
            "data.target": {**tiny_overrides["data.target"], "k_shot": K},
            "output.dir": str(tmp_path / "run"), **extra}


# --- configuration ------------------------------------------------------------------------------


def test_a_composition_is_a_list_in_yaml_and_on_the_command_line(tmp_path):
    config = load_config("recipes/configs/domain_adaptation_semi_supervised.yaml")
    assert config.strategy.chain == ("tapt", "sequential") and config.strategy.label == "tapt+sequential"
    # Each strategy keeps its own settings.
    assert config.strategy.options["tapt"].mlm_num_epochs == 1
    assert config.strategy.options["sequential"].target_num_epochs == 10
    assert config.strategy.options["sequential"].target_min_steps == 100
    parsed = parse_args(["--strategy.name", "[dann,sequential]", "--strategy.dann_weight", "0.5"])
    assert parsed.strategy.chain == ("dann", "sequential") and parsed.strategy.options["dann"].dann_weight == 0.5
    assert parse_args(["--strategy.name", "[coral]"]).strategy.name == "coral"  # a list of one is the name
    # The settings round-trip: to_dict writes them where YAML has them.
    data = config.to_dict()["strategy"]
    assert data["name"] == ["tapt", "sequential"] and data["mlm_num_epochs"] == 1
    assert "compose" in format_help().lower() or "[tapt, sequential]" in format_help()


@pytest.mark.parametrize("name, message", [
    (["tapt", "nope"], r"`strategy.name` has 'nope', which is not a strategy of this scenario"),
    (["sequential", "sequential"], r"names `sequential` twice"),
    (["dann", "coral"], r"composes `dann` and `coral`, which both replace the loss"),
    (["tapt", "dapt"], r"composes `tapt` and `dapt`, which both add a masked-LM stage"),
    (["auto", "sequential"], r"composes `auto`, which runs each candidate"),
    (["linear_probe", "sequential"], r"composes `linear_probe`, which is a reference"),
    ([], r"`strategy.name` must be a strategy name or a list of them"),
])
def test_bad_compositions_are_refused_before_anything_loads(tiny_overrides, name, message):
    # Refused when the recipe is built: nothing is read, no folder is made.
    with pytest.raises(ConfigError, match=message):
        DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, "strategy.name": name}))


def test_a_setting_of_a_strategy_outside_the_composition_is_refused(tiny_overrides):
    with pytest.raises(ConfigError, match=r"`strategy.coral_weight` is a setting of `coral`, but `strategy.name` "
                                          r"is \['tapt', 'sequential'\]"):
        load_config(overrides={**tiny_overrides, "strategy.name": ["tapt", "sequential"],
                               "strategy.coral_weight": 1.0})


@pytest.mark.parametrize("overrides, message", [
    ({"data.target_unlabeled": {"builtin": "tweets", "group_column": "domain"}},
     r"`data.target_unlabeled.group_column` is set, but unlabelled text has no labels"),
    ({"data.target_unlabeled": {"builtin": "tweets", "label_column": "sentiment"}},
     r"`data.target_unlabeled.label_column` is set"),
    ({"data.target.validation_k_shot": 2}, r"`data.target.validation_k_shot` is set but `data.target.k_shot` is not"),
])
def test_role_mistakes_name_the_field(tiny_overrides, overrides, message):
    with pytest.raises(ConfigError, match=message):
        DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, **overrides}))


# --- data roles and few-shot selection -----------------------------------------------------------


def test_k_shot_keeps_the_rows_it_left_out_and_cuts_a_carved_validation_split(tiny_data):
    full = load_splits(DatasetConfig(files={"train": str(tiny_data["target"])}), 0, "target")
    splits, rest = load_splits_with_rest(DatasetConfig(files={"train": str(tiny_data["target"])}, k_shot=K), 0, "target")
    assert len(splits["train"]) == 3 * K and len(splits["validation"]) == 3 * K
    assert splits["test"]["text"] == full["test"]["text"]  # the test split does not move
    # Every row is in exactly one place: train, validation, test, or left out (the unlabelled text).
    assert len(rest) == len(full["train"]) + len(full["validation"]) - 6 * K
    used = set(splits["train"]["text"]) | set(splits["validation"]["text"]) | set(splits["test"]["text"])
    assert not used & set(rest["text"])
    # `validation_k_shot` sets another size; more than a class has keeps what it has.
    more, _ = load_splits_with_rest(DatasetConfig(files={"train": str(tiny_data["target"])}, k_shot=K,
                                                  validation_k_shot=1000), 0, "target")
    assert more["validation"]["text"] == full["validation"]["text"]


def test_tapt_then_sequential_on_the_unlabelled_rest(tiny_overrides, tmp_path):
    """The composition as a user writes it: the masked-LM stage trains on the target rows k_shot
    left out (labels dropped), then source, then the labelled examples, on one model."""
    results = DomainAdaptationRecipe(load_config(overrides=_semi_supervised(
        tiny_overrides, tmp_path, ["tapt", "sequential"], **{"strategy.label_shift": "mean"}))).run()
    assert [s["name"] for s in results["stages"]] == ["mlm", "source", "target"]
    assert results["strategy"] == "tapt+sequential"  # a string everywhere it is shown (card tags, report)
    assert results["config"]["strategy"]["name"] == ["tapt", "sequential"]
    counts = results["labelled_target_examples"]
    text = results["data"]["target_text"]
    assert counts["train"] == 3 * K and counts["selection"] == 3 * K and counts["total"] == 6 * K
    assert results["masked_lm"]["texts"]["train"] == text["splits"]["train"] == counts["unlabelled_target_texts"] > 0
    assert "not sampled" in text["origin"] and results["masked_lm"]["updates"] > 0
    # The last stage trains on target labels: no label-shift correction.
    assert "label_shift" not in results
    assert (tmp_path / "run" / "mlm_encoder" / "config.json").is_file()
    assert set(load_classifier(tmp_path / "run" / "model").predict(["lost my bag"])) <= {"negative", "neutral", "positive"}


def test_dann_then_sequential_unwraps_between_stages(tiny_overrides, tmp_path):
    results = DomainAdaptationRecipe(load_config(overrides=_semi_supervised(
        tiny_overrides, tmp_path, ["dann", "sequential"]))).run()
    assert [s["name"] for s in results["stages"]] == ["source", "target"]
    assert results["dann"]["target_texts"] == results["labelled_target_examples"]["unlabelled_target_texts"] > 0
    assert results["dann"]["domain_accuracy"]["rows"]["target"] == 3 * K  # the few-shot validation text
    # The saved model is the plain classifier (no discriminator).
    assert not any("discriminator" in k for k in load_classifier(tmp_path / "run" / "model").model.state_dict())


def test_self_training_seeded_by_the_labelled_examples(tiny_overrides, tmp_path):
    """`[sequential, self_training]`: the pseudo-labels come from the model that has seen the
    labelled target examples, and every round trains on them too."""
    results = DomainAdaptationRecipe(load_config(overrides=_semi_supervised(
        tiny_overrides, tmp_path, ["sequential", "self_training"],
        **{"strategy.self_training_rounds": 1, "strategy.pseudo_label_threshold": 0.34,
           "strategy.pseudo_labels_per_class": 5}))).run()
    assert [s["name"] for s in results["stages"]] == ["source", "target", "round_1"]
    (round_1,) = results["self_training"]["rounds"]
    assert round_1["texts"] == results["labelled_target_examples"]["unlabelled_target_texts"]
    assert "accuracy" not in round_1  # the text is apart from any labelled split: nothing to score against


def test_unlabelled_target_text_given_apart(tiny_overrides, tiny_data, tmp_path):
    """`data.target_unlabeled`: its texts (target evaluation texts dropped) are what `tapt` reads."""
    unlabelled = {"files": {"train": str(tiny_data["target"])}}
    results = DomainAdaptationRecipe(load_config(overrides=_semi_supervised(
        tiny_overrides, tmp_path, "tapt", **{"data.target_unlabeled": unlabelled}))).run()
    text = results["data"]["target_text"]
    assert text["origin"] == "data.target_unlabeled"
    # The file's texts, those the target is evaluated on dropped.
    target = load_splits(DatasetConfig(files={"train": str(tiny_data["target"])}, group_column="domain", k_shot=K),
                         42, "target")
    evaluation = set(target["validation"]["text"]) | set(target["test"]["text"])
    given = [json.loads(line)["text"] for line in open(tiny_data["target"], encoding="utf-8")]
    assert results["masked_lm"]["texts"]["train"] == text["splits"]["train"] == sum(t not in evaluation for t in given)


def test_label_shift_after_a_composition_that_ends_on_source_labels(tiny_overrides, tmp_path):
    results = DomainAdaptationRecipe(load_config(overrides={
        **tiny_overrides, "strategy.name": ["coral", "self_training"], "strategy.self_training_rounds": 1,
        "strategy.label_shift": "mean", "training.num_epochs": 1, "output.dir": str(tmp_path / "run")})).run()
    assert [s["name"] for s in results["stages"]] == ["source", "round_1"]
    assert results["label_shift"]["method"] == "mean"
    assert results["labelled_target_examples"]["total"] == 0  # no target label read at all


def test_a_composition_from_the_command_line_in_two_processes(tiny_overrides, tiny_data, tmp_path):
    """`--strategy.name [dann,sequential]` and `--data.target_unlabeled...` on the command line,
    under two processes: every process reads the same unlabelled text, each row evaluated once."""
    overrides = _semi_supervised(tiny_overrides, tmp_path, ["dann", "sequential"],
                                 **{"data.target_unlabeled": {"files": {"train": str(tiny_data["target"])}}})
    done = launch(SCRIPT, overrides_to_args(overrides), num_processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["environment"]["num_processes"] == 2
    assert [s["name"] for s in results["stages"]] == ["source", "target"]
    assert results["data"]["target_text"]["origin"] == "data.target_unlabeled"
    assert results["dann"]["target_texts"] == results["data"]["target_text"]["splits"]["train"] > 0
    for role in ("source", "target"):
        for split in ("validation", "test"):  # each row evaluated once
            assert results["eval_matrix"][f"{role}/{split}"]["n"] == results["data"][role]["splits"][split]


def test_target_stage_settings_belong_to_the_strategies_with_a_target_stage(tiny_overrides, tmp_path):
    with pytest.raises(ConfigError, match=r"`strategy.target_min_steps` is a setting of .*`sequential`.*, but "
                                          r"`strategy.name` is 'dann'"):
        load_config(overrides={**tiny_overrides, "strategy.name": "dann", "strategy.target_min_steps": 5})
    # `auto` gives its target-stage budget to every candidate with a target stage (and target_only).
    recipe = DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, "strategy.name": "auto",
                                                          "strategy.target_min_steps": 7}))
    shared = {"target_min_steps": 7}
    assert recipe.candidate(["tapt", "sequential"], shared=shared).config.strategy.options["sequential"].target_min_steps == 7
    target_only = recipe.candidate("sequential", arm="target_only", shared=shared)
    assert target_only.chain[0].options.target_min_steps == 7


def test_self_training_after_multi_task_takes_the_joint_stage_budget(tiny_overrides, tmp_path):
    results = DomainAdaptationRecipe(load_config(overrides=_semi_supervised(
        tiny_overrides, tmp_path, ["coral", "multi_task", "self_training"],
        **{"strategy.self_training_rounds": 1}))).run()
    assert [s["name"] for s in results["stages"]] == ["joint", "round_1"]
    assert results["coral"]["target_texts"] > 0 and results["multi_task"]["target_copies"] >= 1
