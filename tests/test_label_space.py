"""The label-space recipe: every strategy on the tiny model, the new head (never the source's),
label_map rows copied from the source head, saving and reloading with the new labels."""

import json
from pathlib import Path
import logging
import re

import pytest
import torch
from transformers import AutoTokenizer

from conftest import launch, overrides_to_args
from hf_transfer import LabelSpaceRecipe, load_classifier, load_config
from hf_transfer.config import ModelConfig, TuningConfig
from hf_transfer.data.labels import LabelSpace
from hf_transfer.errors import ConfigError, DataError
from hf_transfer.run import RunData
from hf_transfer.source_model import (describe_source, load_source_model, output_layer_name,
                                      with_new_head)
from hf_transfer.tuning import apply_tuning
from source_assets import TEXTS, shared_source_classifier, write_renamed_data, write_topic_data

SCRIPT = "recipes/label_space.py"
TOPICS = ["airline", "apple"]


@pytest.fixture(scope="module")
def source_classifier(tiny_model, tiny_data, tmp_path_factory):
    """A trained tiny sentiment classifier saved by hf_transfer (a full model)."""
    return shared_source_classifier(tmp_path_factory, tiny_model, tiny_data["source"])


@pytest.fixture(scope="module")
def label_files(tiny_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("label_space")
    return {"topics": write_topic_data(folder, tiny_data), "renamed": write_renamed_data(folder, tiny_data)}


@pytest.fixture
def ls_overrides(tiny_overrides, label_files, source_classifier):
    return {**tiny_overrides,
            "data.target": {"files": {"train": str(label_files["topics"])}, "label_column": "topic",
                            "k_shot": 8},
            "strategy.name": "new_head", "strategy.source_model": str(source_classifier),
            "strategy.target_num_epochs": 2}


def _results(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def _source(source_classifier, labels=3):
    info = describe_source(str(source_classifier), ModelConfig())
    return load_source_model(info, ModelConfig(name_or_path=str(source_classifier)), labels)


# --- the new head ------------------------------------------------------------------------


def test_new_head_is_fresh_even_with_the_same_label_count_and_the_encoder_is_the_sources(source_classifier):
    source = _source(source_classifier)
    source_state = {k: v.clone() for k, v in source.model.state_dict().items()}
    torch.manual_seed(0)
    # Same number of labels, even the same names: the head must not be reused silently.
    target, new_modules = with_new_head(source, ["negative", "neutral", "positive"])
    assert new_modules == ["classifier", "dropout"]
    target_state = target.state_dict()
    assert not torch.equal(target_state["classifier.weight"], source_state["classifier.weight"])
    encoder = [k for k in source_state if k.startswith("bert.")]
    assert encoder and all(torch.equal(target_state[k], source_state[k]) for k in encoder)
    assert target.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}


def test_label_map_rows_are_the_source_head_rows(source_classifier):
    source = _source(source_classifier)
    head = source.model.classifier
    torch.manual_seed(0)
    labels = ["apple", "meh", "negative", "positive"]
    target, _ = with_new_head(source, labels, {"meh": "neutral", "negative": "negative",
                                               "positive": "positive"})
    assert output_layer_name(target) == "classifier"
    new = target.classifier
    for target_label, source_label in [("meh", "neutral"), ("negative", "negative"), ("positive", "positive")]:
        row, src = labels.index(target_label), ["negative", "neutral", "positive"].index(source_label)
        assert torch.equal(new.weight[row], head.weight[src])
        assert torch.equal(new.bias[row], head.bias[src])
    # `apple` has no source row: it keeps its fresh initialisation.
    assert not any(torch.equal(new.weight[0], head.weight[i]) for i in range(3))


def test_lora_new_head_saves_and_reloads_with_identical_logits_and_new_labels(
        source_classifier, tmp_path):
    """Both saving paths: an adapter on the loadable source classifier, and (when the source
    exists only in memory) a standalone merged classifier."""
    tokenizer = AutoTokenizer.from_pretrained(source_classifier)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    for loadable, folder in ((True, "a"), (False, "b")):
        recipe = LabelSpaceRecipe(load_config(overrides={
            "output.dir": str(tmp_path / folder), "model.max_length": 32,
            "strategy.name": "new_head", "tuning.method": "lora"}))
        source = _source(source_classifier)
        if not loadable:
            source.loadable_base = None
        torch.manual_seed(0)
        model, new_modules = with_new_head(source, TOPICS)
        model = apply_tuning(model, TuningConfig(method="lora", lora_r=4), new_modules)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
        model(**batch, labels=torch.tensor([0, 1, 0])).loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            expected = model(**batch).logits
        recipe.source = source
        recipe.save_model(model, tokenizer, RunData(None, None, LabelSpace(tuple(TOPICS)), {}), None)
        meta = json.loads((tmp_path / folder / "model" / "hf_transfer.json").read_text())
        assert meta["format"] == ("peft" if loadable else "transformers")
        assert meta["labels"] == TOPICS
        classifier = load_classifier(tmp_path / folder / "model")
        with torch.no_grad():
            reloaded = classifier.model(**batch).logits
        torch.testing.assert_close(reloaded, expected, rtol=0, atol=1e-6 if loadable else 1e-5)
        assert classifier.labels == TOPICS
        assert classifier.predict(TEXTS) == [TOPICS[i] for i in expected.argmax(-1).tolist()]


# --- the recipe end to end ------------------------------------------------------------------


def test_new_head_script_with_a_given_source_lora(ls_overrides, tmp_path):
    run_dir = tmp_path / "run"
    done = launch(SCRIPT, overrides_to_args(ls_overrides))
    assert done.returncode == 0, done.stderr[-3000:]
    results = _results(run_dir)
    assert results["scenario"] == "label_space" and results["strategy"] == "new_head"
    assert results["labels"] == TOPICS
    # Target rows only; the source classifier's own scores sit in `source_model`.
    assert set(results["eval_matrix"]) == {"target/validation", "target/test"}
    report = results["source_model"]
    assert report["labels"] == ["negative", "neutral", "positive"] and not report["trained_in_run"]
    assert report["eval"]["source/test"]["n"] == results["data"]["source"]["splits"]["test"]
    assert report["eval"]["source/test"]["accuracy"] > 0.6  # the tiny source classifier works
    assert results["head_init"] == {"copied_rows": {}, "fresh_rows": TOPICS}
    assert [s["name"] for s in results["stages"]] == ["target"]
    assert results["data"]["target"]["splits"]["train"] == 16  # k_shot 8 x 2 topics
    meta = json.loads((run_dir / "model" / "hf_transfer.json").read_text())
    assert meta["format"] == "peft" and meta["labels"] == TOPICS
    assert load_classifier(run_dir / "model").predict(["great flight"])[0] in TOPICS


def test_lp_ft_trains_the_source_first_then_fits_the_probe_then_tunes(ls_overrides, caplog):
    caplog.set_level(logging.INFO, logger="hf_transfer")
    overrides = {**ls_overrides, "strategy.name": "lp_ft", "strategy.source_model": None,
                 "tuning.method": "full", "training.learning_rate": 2e-3, "training.num_epochs": 1,
                 "strategy.target_num_epochs": 1, "strategy.baselines": "[target_only]"}
    results = LabelSpaceRecipe(load_config(overrides=overrides)).run()
    stages = {s["name"]: s for s in results["stages"]}
    assert list(stages) == ["source", "target"]
    assert stages["source"]["select_on"] == "source/validation"
    assert stages["target"]["select_on"] == "target/validation"
    # The probe is fitted on the 16 target rows before the first update and is step 0's candidate.
    probe, step0 = stages["target"]["history"][:2]
    assert probe["step"] == 0 and probe["probe"]["train_rows"] == 16
    assert probe["probe"]["l2"] in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    assert step0["step"] == 0 and step0["eval_on"] == "target/validation"
    # The engine's evaluation of the fitted head is the probe's own validation score.
    assert step0["macro_f1"] == pytest.approx(probe["probe"]["validation_macro_f1"], abs=1e-4)
    # The target-only baseline is LP-FT from the pretrained encoder: its probe is fitted too.
    baseline = _results(Path(overrides["output.dir"]) / results["transfer"]["runs"]["target_only_seed42"])
    assert [s["name"] for s in baseline["stages"]] == ["target"]
    assert "probe" in baseline["stages"][0]["history"][0]
    assert re.search(r"Linear probe: logistic regression on the frozen \d+-dim representation of 16 rows",
                     caplog.text)
    assert re.search(r"Stage 'target', tuning full: ([\d,]+) of \1 parameters train", caplog.text)
    assert results["source_model"]["trained_in_run"] is True
    assert set(results["source_model"]["eval"]) == {"source/validation", "source/test"}
    assert results["labels"] == TOPICS


def test_label_map_strategy_matches_names_and_the_user_mapping(ls_overrides, label_files):
    overrides = {**ls_overrides, "strategy.name": "label_map", "tuning.method": "full",
                 "training.learning_rate": 2e-3, "strategy.label_map": {"meh": "neutral"},
                 "data.target": {"files": {"train": str(label_files["renamed"])}, "k_shot": 4}}
    results = LabelSpaceRecipe(load_config(overrides=overrides)).run()
    assert results["labels"] == ["meh", "negative", "positive"]
    assert results["head_init"] == {"copied_rows": {"meh": "neutral", "negative": "negative",
                                                    "positive": "positive"}, "fresh_rows": []}
    # The sentiment head carries over to the renamed labels: far above chance (1/3).
    assert results["eval_matrix"]["target/test"]["accuracy"] > 0.6


def test_a_plain_encoder_as_source_is_the_no_transfer_baseline(ls_overrides, tiny_model):
    overrides = {**ls_overrides, "strategy.source_model": str(tiny_model), "tuning.method": "full",
                 "training.learning_rate": 2e-3, "strategy.target_num_epochs": 1}
    results = LabelSpaceRecipe(load_config(overrides=overrides)).run()
    assert results["source_model"]["labels"] is None
    assert results["source_model"]["eval"] == {}
    assert "no trained head" in results["source_model"]["note"]
    assert "source" not in results["data"]  # no source data was needed


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"strategy.label_map": {"meh": "neutral"}}, "`strategy.label_map` is a setting of `label_map`, but"),
    ({"strategy.name": "lp_ft", "tuning.method": "frozen"}, "the probe already fits the head"),
    ({"strategy.source_model": None, "strategy.select_on": "target"}, "can only select on `source`"),
    ({"strategy.source_model": None, "strategy.evaluate_source": False}, "`strategy.evaluate_source` is false"),
    ({"strategy.name": "copy_head"}, "choose one of linear_probe, new_head, lp_ft, label_map, auto"),
])
def test_config_errors_before_anything_loads(ls_overrides, change, message):
    with pytest.raises(ConfigError, match=message):
        LabelSpaceRecipe(load_config(overrides={**ls_overrides, **change}))


def _fails_before_weights(monkeypatch):
    import hf_transfer.scenarios.source_transfer as st

    def no_weights(*args, **kwargs):
        raise AssertionError("weights must not load before the problem is reported")

    monkeypatch.setattr(st, "load_source_model", no_weights)
    monkeypatch.setattr(st, "load_classifier_model", no_weights)


@pytest.mark.parametrize("change, error, message", [
    ({"strategy.name": "label_map"}, ConfigError, "no target label .* is also a source label"),
    ({"strategy.name": "label_map", "strategy.label_map": {"airline": "happy"}}, ConfigError,
     "value 'happy' is not a source label"),
    ({"strategy.source_model": "no/such-model-here"}, ConfigError, "could not be loaded"),
])
def test_label_problems_fail_before_weights_load(ls_overrides, monkeypatch, change, error, message):
    _fails_before_weights(monkeypatch)
    with pytest.raises(error, match=message):
        LabelSpaceRecipe(load_config(overrides={**ls_overrides, **change})).run()


def test_label_map_needs_a_source_head(ls_overrides, tiny_model, monkeypatch):
    _fails_before_weights(monkeypatch)
    overrides = {**ls_overrides, "strategy.name": "label_map", "strategy.source_model": str(tiny_model)}
    with pytest.raises(ConfigError, match="no trained head"):
        LabelSpaceRecipe(load_config(overrides=overrides)).run()


def test_source_data_must_fit_the_source_classifier(ls_overrides, label_files, monkeypatch):
    _fails_before_weights(monkeypatch)
    overrides = {**ls_overrides, "data.source": {"files": {"train": str(label_files["topics"])},
                                                 "label_column": "topic"}}
    with pytest.raises(DataError, match=r"does not know: \['airline', 'apple'\]"):
        LabelSpaceRecipe(load_config(overrides=overrides)).run()


def test_auto_chooses_among_the_label_space_strategies_and_saves_the_kept_one(ls_overrides, tmp_path):
    """`auto` in the label-space scenario: each strategy (and the frozen-encoder probe and
    `target_only`) is a run of its own from the given source classifier; the kept one's
    classifier is evaluated again, saved with the target's labels, and its scenario report is
    this run's."""
    run_dir = tmp_path / "auto"
    overrides = {**ls_overrides, "strategy.name": "auto", "strategy.target_num_epochs": 1,
                 "strategy.candidates": ["new_head", "lp_ft", "linear_probe", "target_only"],
                 "output.dir": str(run_dir)}
    results = LabelSpaceRecipe(load_config(overrides=overrides)).run()
    auto = results["auto"]
    assert sorted(auto["scores"]) == ["linear_probe", "lp_ft", "new_head", "target_only"] and not auto["skipped"]
    validation = {name: s["target/validation"] for name, s in auto["scores"].items()}
    assert auto["chosen"] == max(validation, key=validation.get)
    for split, score in auto["scores"][auto["chosen"]].items():
        assert results["eval_matrix"][split]["macro_f1"] == pytest.approx(score, abs=1e-9)
    chosen = json.loads((run_dir / "candidates" / auto["chosen"] / "results.json").read_text())
    assert results["source_model"] == chosen["source_model"] and results["head_init"] == chosen["head_init"]
    classifier = load_classifier(run_dir / "model")
    assert set(classifier.predict(["the match ended in a draw"])) <= set(results["labels"])
