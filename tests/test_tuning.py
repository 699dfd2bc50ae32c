"""Tuning methods: exactly the intended parameters change after an optimizer step."""

import pytest
import torch

from hf_transfer.config import ModelConfig, TuningConfig
from hf_transfer.errors import ConfigError
from hf_transfer.modeling import build_on_meta, load_classifier_model
from hf_transfer.tuning import apply_tuning, check_tuning

LABELS = ["negative", "neutral", "positive"]


def _tuned(tiny_model, **tuning):
    model_cfg = ModelConfig(name_or_path=str(tiny_model))
    torch.manual_seed(0)
    model, new_modules = load_classifier_model(model_cfg, LABELS)
    return apply_tuning(model, TuningConfig(**tuning), new_modules), new_modules


def _changed_after_a_step(model) -> set[str]:
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    batch = {"input_ids": torch.randint(5, 50, (4, 10)), "attention_mask": torch.ones(4, 10, dtype=torch.long),
             "labels": torch.tensor([0, 1, 2, 0])}
    model(**batch).loss.backward()
    optimizer.step()
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}


def _is_head(name: str) -> bool:
    return ".classifier." in f".{name}"


def test_new_modules_are_found(tiny_model):
    _, new_modules = load_classifier_model(ModelConfig(name_or_path=str(tiny_model)), LABELS)
    assert "classifier" in new_modules


def test_full_changes_everything(tiny_model):
    model, _ = _tuned(tiny_model, method="full")
    names = {n for n, _ in model.named_parameters()}
    changed = _changed_after_a_step(model)
    # token_type embeddings of unused types change only through weight decay, which AdamW
    # applies to all; everything must move.
    assert changed == names


def test_frozen_changes_only_the_head(tiny_model):
    model, new_modules = _tuned(tiny_model, method="frozen")
    changed = _changed_after_a_step(model)
    assert changed and all(any(n.startswith(m + ".") for m in new_modules) for n in changed)
    assert {n for n in changed if _is_head(n)} == {"classifier.weight", "classifier.bias"}


@pytest.mark.parametrize("k", [1, 2])
def test_top_k_changes_last_layers_pooler_and_head(tiny_model, k):
    model, _ = _tuned(tiny_model, method="top_k", top_k_layers=k)
    changed = _changed_after_a_step(model)
    num_layers = model.config.num_hidden_layers
    allowed = tuple(f"bert.encoder.layer.{i}." for i in range(num_layers - k, num_layers)) + (
        "bert.pooler.", "classifier.")
    assert changed and all(n.startswith(allowed) for n in changed)
    assert any(n.startswith(f"bert.encoder.layer.{num_layers - 1}.") for n in changed)
    assert not any(n.startswith("bert.embeddings.") for n in changed)


def test_lora_changes_only_adapters_and_head(tiny_model):
    model, _ = _tuned(tiny_model, method="lora", lora_r=4)
    changed = _changed_after_a_step(model)
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)
    assert any("classifier" in n and "modules_to_save" in n for n in changed)
    assert all("lora_" in n or "modules_to_save" in n for n in changed), sorted(changed)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in changed if "lora_" in n}
    assert targets == {"query", "value"}


def test_lora_target_modules_override(tiny_model):
    model, _ = _tuned(tiny_model, method="lora", lora_target_modules=["key", "dense"])
    lora_layers = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if "lora_" in n}
    assert lora_layers == {"key", "dense"}


def test_unknown_lora_targets_fail_before_weights_load(tiny_model):
    meta_model = build_on_meta(ModelConfig(name_or_path=str(tiny_model)), 3)
    with pytest.raises(ConfigError, match=r"`tuning.lora_target_modules`: \['q_proj'\] not found .*query"):
        check_tuning(meta_model, TuningConfig(method="lora", lora_target_modules=["q_proj", "value"]))


def test_top_k_larger_than_depth(tiny_model):
    meta_model = build_on_meta(ModelConfig(name_or_path=str(tiny_model)), 3)
    with pytest.raises(ConfigError, match="`tuning.top_k_layers` is 9 but the model has 2"):
        check_tuning(meta_model, TuningConfig(method="top_k", top_k_layers=9))
