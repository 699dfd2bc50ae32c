"""The conditional-shift recipe: finetune and l2sp on the tiny model (one and two processes),
the no-adaptation baseline and the forgetting report, the L2-SP penalty, early errors."""

import json

import pytest
import torch

from conftest import launch, overrides_to_args
from hf_transfer import ConditionalShiftRecipe, load_config
from hf_transfer.config import ModelConfig, TuningConfig
from hf_transfer.errors import ConfigError, DataError
from hf_transfer.source_model import describe_source, load_source_model
from hf_transfer.strategies.l2sp import L2SP
from hf_transfer.tuning import apply_tuning
from source_assets import shared_source_classifier, write_shifted_data

SCRIPT = "recipes/conditional_shift.py"
SPLITS = {"source/validation", "source/test", "target/validation", "target/test"}


@pytest.fixture(scope="module")
def source_classifier(tiny_model, tiny_data, tmp_path_factory):
    return shared_source_classifier(tmp_path_factory, tiny_model, tiny_data["source"])


@pytest.fixture(scope="module")
def shifted(tiny_data, tmp_path_factory):
    return write_shifted_data(tmp_path_factory.mktemp("shifted"), tiny_data)


@pytest.fixture
def cs_overrides(tiny_overrides, shifted, source_classifier):
    return {**tiny_overrides,
            "data.source": {**tiny_overrides["data.source"], "group_column": None},
            "data.target": {"files": {"train": str(shifted)}, "group_column": "policy"},
            "tuning.method": "full", "training.learning_rate": 2e-3,
            "strategy.name": "finetune", "strategy.source_model": str(source_classifier),
            "strategy.target_num_epochs": 2}


def _check_reports(results):
    assert SPLITS <= set(results["eval_matrix"])
    assert set(results["eval_matrix"]) == set(results["no_adaptation"])
    groups = {"target/test[moved]", "target/test[unchanged]"}
    assert groups <= set(results["eval_matrix"])
    forgetting = results["forgetting"]["source/test"]
    before, after = forgetting["before"], forgetting["after"]
    assert before["accuracy"] == results["no_adaptation"]["source/test"]["accuracy"]
    assert after["accuracy"] == results["eval_matrix"]["source/test"]["accuracy"]
    assert forgetting["drop"]["accuracy"] == pytest.approx(before["accuracy"] - after["accuracy"], abs=1e-6)
    adaptation = results["adaptation"]
    assert set(adaptation) == {"target/test"} | groups
    gain = adaptation["target/test"]
    assert gain["gain"]["macro_f1"] == pytest.approx(gain["after"]["macro_f1"] - gain["before"]["macro_f1"], abs=1e-6)


def test_finetune_script_from_a_given_source(cs_overrides, tmp_path):
    done = launch(SCRIPT, overrides_to_args(cs_overrides))
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["scenario"] == "conditional_shift" and results["strategy"] == "finetune"
    assert results["labels"] == ["negative", "neutral", "positive"]
    _check_reports(results)
    # The given source classifier works on its own task before adaptation...
    assert results["no_adaptation"]["source/test"]["accuracy"] > 0.6
    # ...and labels the moved target rows by the old policy (neutral, never positive).
    assert results["no_adaptation"]["target/test[moved]"]["accuracy"] < 0.5
    assert [s["name"] for s in results["stages"]] == ["target"]
    assert "l2sp" not in results
    meta = json.loads((tmp_path / "run" / "model" / "hf_transfer.json").read_text())
    assert meta["format"] == "transformers" and meta["base_model"] == cs_overrides["strategy.source_model"]


def test_l2sp_two_processes_training_the_source_first_with_lora(cs_overrides, tmp_path):
    overrides = {**cs_overrides, "strategy.name": "l2sp", "strategy.source_model": None,
                 "strategy.l2sp_alpha": 0.5, "tuning.method": "lora", "training.learning_rate": 5e-3,
                 "training.num_epochs": 1, "strategy.target_num_epochs": 1}
    done = launch(SCRIPT, overrides_to_args(overrides), num_processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["environment"]["num_processes"] == 2
    assert [s["name"] for s in results["stages"]] == ["source", "target"]
    assert results["l2sp"]["alpha"] == 0.5 and results["l2sp"]["on"] == "lora_delta"
    _check_reports(results)
    for split in SPLITS:  # every example counted once under 2 processes
        role, name = split.split("/")
        assert results["eval_matrix"][split]["n"] == results["data"][role]["splits"][name]
        assert results["no_adaptation"][split]["n"] == results["eval_matrix"][split]["n"]
    # The source classifier was trained here: its adapter merged, the target one too.
    meta = json.loads((tmp_path / "run" / "model" / "hf_transfer.json").read_text())
    assert meta["format"] == "transformers" and meta["tuning"] == "lora"


def test_l2sp_in_process_keeps_the_encoder_closer_to_the_source(cs_overrides, tmp_path):
    """The same run with and without a strong penalty: with it, the target stage moves the
    encoder less far from the source weights."""
    from safetensors.torch import load_file

    source = load_file(cs_overrides["strategy.source_model"] + "/model.safetensors")
    distance = {}
    for name, extra in (("finetune", {}), ("l2sp", {"strategy.l2sp_alpha": 50.0})):
        overrides = {**cs_overrides, **extra, "strategy.name": name, "output.dir": str(tmp_path / name),
                     "strategy.target_num_epochs": 1,
                     "data.source": {**cs_overrides["data.source"], "max_eval_samples": 18},
                     "data.target": {**cs_overrides["data.target"], "max_train_samples": 64,
                                     "max_eval_samples": 18}}
        ConditionalShiftRecipe(load_config(overrides=overrides)).run()
        final = load_file(str(tmp_path / name / "model" / "model.safetensors"))
        distance[name] = sum((final[k] - source[k]).pow(2).sum().item() for k in source if k.startswith("bert."))
    assert distance["l2sp"] < 0.5 * distance["finetune"]


# --- the penalty ------------------------------------------------------------------------------


def _source_model(source_classifier):
    info = describe_source(str(source_classifier), ModelConfig())
    return load_source_model(info, ModelConfig(name_or_path=str(source_classifier)), 3).model


def test_l2sp_is_zero_at_the_source_and_its_gradient_points_back(source_classifier):
    model = _source_model(source_classifier)
    penalty = L2SP(model, alpha=0.3, exclude=["classifier", "dropout"])
    assert penalty.num_weights == sum(p.numel() for n, p in model.named_parameters() if n.startswith("bert."))
    assert penalty(model).item() == 0.0
    torch.manual_seed(0)
    moved = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            moved[name] = torch.randn_like(p) * 0.01
            p.add_(moved[name])
    value = penalty(model)
    expected = 0.5 * 0.3 * sum(d.pow(2).sum() for n, d in moved.items() if n.startswith("bert."))
    torch.testing.assert_close(value, expected.float(), rtol=1e-4, atol=0)
    value.backward()
    for name, p in model.named_parameters():
        if name.startswith("bert."):
            # d/dw alpha/2 ||w - w0||^2 = alpha (w - w0): a step against it moves w toward w0.
            torch.testing.assert_close(p.grad, 0.3 * moved[name], rtol=1e-3, atol=1e-7)
        else:
            assert p.grad is None  # the head is not pulled


def test_l2sp_with_lora_penalises_the_adapter_delta(source_classifier):
    model = apply_tuning(_source_model(source_classifier), TuningConfig(method="lora", lora_r=4), [])
    penalty = L2SP(model, alpha=2.0, exclude=["classifier", "dropout"])
    assert penalty.lora and penalty(model).item() == 0.0  # B starts at zero: no change yet
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)
    value = penalty(model)
    delta = sum(m.get_delta_weight("default").pow(2).sum() for _, m in penalty.layers)
    torch.testing.assert_close(value, delta, rtol=1e-5, atol=0)  # alpha/2 = 1
    value.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for n, p in model.named_parameters() if "classifier" in n)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("change, message", [
    ({"strategy.name": "l2sp", "strategy.l2sp_alpha": 0}, "needs a positive strength"),
    ({"strategy.name": "l2sp", "strategy.l2sp_alpha": -1}, "`strategy.l2sp_alpha` is -1"),
    ({"strategy.name": "l2sp", "tuning.method": "frozen"}, "nothing to pull toward the source"),
    ({"strategy.name": "dann"}, "choose one of linear_probe, finetune, l2sp, auto"),
    ({"strategy.label_map": {"a": "b"}}, "`strategy.label_map` is a setting of `label_map`"),
    # The target-stage settings belong to the strategies with a target stage.
    ({"strategy.name": "dann", "strategy.target_num_epochs": 2}, "`strategy.target_num_epochs` is a setting of"),
])
def test_config_errors(cs_overrides, change, message):
    overrides = {**cs_overrides, **change}
    if "strategy.target_num_epochs" not in change and change.get("strategy.name") == "dann":
        del overrides["strategy.target_num_epochs"]  # the name's own problem alone
    with pytest.raises(ConfigError, match=message):
        ConditionalShiftRecipe(load_config(overrides=overrides))


def test_a_plain_encoder_is_not_a_source_classifier(cs_overrides, tiny_model):
    with pytest.raises(ConfigError, match="has no classification head"):
        ConditionalShiftRecipe(load_config(overrides={**cs_overrides,
                                                      "strategy.source_model": str(tiny_model)})).run()


def test_target_labels_must_be_the_source_classifiers(cs_overrides, tiny_data, tmp_path):
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(tiny_data["source"].read_text().replace(",neutral,", ",meh,"))
    overrides = {**cs_overrides, "data.target": {"files": {"train": str(renamed)}}}
    with pytest.raises(DataError, match=r"labels the source never had: \['meh'\]"):
        ConditionalShiftRecipe(load_config(overrides=overrides)).run()


def test_auto_in_conditional_shift(cs_overrides, tmp_path):
    run_dir = tmp_path / "auto"
    results = ConditionalShiftRecipe(load_config(overrides={
        **cs_overrides, "strategy.name": "auto", "strategy.candidates": ["finetune", "target_only"],
        "output.dir": str(run_dir)})).run()
    assert sorted(results["auto"]["scores"]) == ["finetune", "target_only"]
    # The kept run's report: the source classifier as it was, and what adaptation changed.
    chosen = json.loads((run_dir / "candidates" / results["auto"]["chosen"] / "results.json").read_text())
    assert results["no_adaptation"] == chosen["no_adaptation"] and "adaptation" in results
    assert (run_dir / "model" / "config.json").is_file()
