"""`model.dtype`: a half-precision checkpoint trains with float32 master weights; a frozen base
may stay in half precision (LoRA, frozen) while what trains is float32; full tuning in half
precision is refused before anything loads."""

import shutil

import pytest
import torch
from transformers import AutoModel

from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.config import ModelConfig, TuningConfig
from hf_transfer.errors import ConfigError
from hf_transfer.modeling import load_classifier_model
from hf_transfer.tuning import apply_tuning

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module", params=["float16", "bfloat16"])
def half_checkpoint(request, tiny_model, tmp_path_factory):
    """The tiny BERT saved the way many Hub checkpoints are: in half precision."""
    folder = tmp_path_factory.mktemp(f"tiny_{request.param}")
    shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
    AutoModel.from_pretrained(tiny_model, dtype=getattr(torch, request.param)).save_pretrained(folder)
    return folder


def _one_step(model) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    batch = {"input_ids": torch.randint(5, 50, (4, 10)), "attention_mask": torch.ones(4, 10, dtype=torch.long),
             "labels": torch.tensor([0, 1, 2, 0])}
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()


def test_a_half_precision_checkpoint_loads_and_trains_in_float32(half_checkpoint):
    model, new = load_classifier_model(ModelConfig(name_or_path=str(half_checkpoint)), LABELS)
    model = apply_tuning(model, TuningConfig(method="full"), new)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    _one_step(model)  # transformers 5 alone would keep fp16 and crash on the CPU (mixed dtype)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("method", ["lora", "frozen"])
def test_a_half_precision_base_trains_float32_adapters_and_head(tiny_model, method, dtype):
    model_cfg = ModelConfig(name_or_path=str(tiny_model), dtype=dtype)
    model, new = load_classifier_model(model_cfg, LABELS)
    model = apply_tuning(model, TuningConfig(method=method), new)
    trainable = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.dtype for n, p in model.named_parameters() if not p.requires_grad}
    assert set(trainable.values()) == {torch.float32}, trainable
    assert set(frozen.values()) == {getattr(torch, dtype)}
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    _one_step(model)
    changed = {n for n, p in model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])}
    assert any(".classifier." in f".{n}" for n in changed), changed
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}


@pytest.mark.parametrize("method", ["full", "top_k"])
def test_half_precision_with_pretrained_weights_training_is_refused(tiny_overrides, method):
    with pytest.raises(ConfigError, match=r"`model.dtype` is bfloat16.*`tuning.method` " + method):
        DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, "model.dtype": "bfloat16",
                                                      "tuning.method": method}))


def test_unknown_dtype_is_refused(tiny_overrides):
    with pytest.raises(ConfigError, match=r"`model.dtype`.*float32"):
        DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, "model.dtype": "fp8"}))


def test_a_run_from_a_half_checkpoint_and_a_bf16_lora_run_finish(half_checkpoint, tiny_overrides, tmp_path):
    """One step a run: the fp16/bf16 checkpoint (full tuning, float32 weights), then the same
    checkpoint held in bfloat16 under LoRA; both save a classifier that reloads in float32."""
    for name, changes in {"full": {"tuning.method": "full"},
                          "lora_bf16": {"tuning.method": "lora", "model.dtype": "bfloat16"}}.items():
        overrides = {**tiny_overrides, **changes, "model.name_or_path": str(half_checkpoint),
                     "training.max_steps": 1, "training.num_epochs": 1, "output.dir": str(tmp_path / name)}
        results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
        assert results["eval_matrix"]["target/test"]["n"] > 0
        classifier = load_classifier(tmp_path / name / "model")
        assert {p.dtype for p in classifier.model.parameters()} == {torch.float32}
        assert classifier.predict(["great flight"])[0] in LABELS
