"""Every common classifier architecture, tiny and random (no downloads): full and LoRA train a
step through the recipe, the saved classifier reloads to the same logits, a padded batch gives
each row's logits alone, and a LoRA adapter merges into a standalone classifier."""

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.merging import merge_adapter
from tiny_architectures import ARCHITECTURES, DECODERS, build_tiny_checkpoint

TEXTS = ["great flight", "the seat was awful , rude crew and delayed luggage again", "okay"]


@pytest.fixture(scope="module", params=ARCHITECTURES)
def checkpoint(request, tmp_path_factory):
    return build_tiny_checkpoint(request.param, tmp_path_factory.mktemp(request.param))


def _logits(model, tokenizer, texts) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


# LoRA on the architecture's default targets (`hf_transfer.tuning.lora_targets`), and on
# every linear layer; `lora_all_linear` runs on a few architectures to keep the matrix fast.
METHODS = {"full": {"tuning.method": "full"}, "lora": {"tuning.method": "lora"},
           "lora_all_linear": {"tuning.method": "lora", "tuning.lora_target_modules": ["all-linear"]}}
ALL_LINEAR_ON = ("bert", "modernbert", "gpt2", "llama")


@pytest.mark.parametrize("method", METHODS)
def test_architecture_trains_saves_reloads_and_merges(checkpoint, method, tiny_overrides, tmp_path):
    model_type = AutoConfig.from_pretrained(checkpoint).model_type
    if method == "lora_all_linear" and model_type not in ALL_LINEAR_ON:
        pytest.skip("all-linear LoRA runs on a few architectures only")
    run_dir = tmp_path / "run"
    overrides = {**tiny_overrides, **METHODS[method], "model.name_or_path": str(checkpoint),
                 "training.max_steps": 1, "training.learning_rate": 1e-3, "output.dir": str(run_dir)}
    recipe = DomainAdaptationRecipe(load_config(overrides=overrides))
    results = recipe.run()
    assert results["stages"][0]["steps"] == 1

    classifier = load_classifier(run_dir / "model")
    tokenizer = classifier.tokenizer
    trained = _logits(recipe.model, tokenizer, TEXTS)
    reloaded = _logits(classifier.model, tokenizer, TEXTS)
    torch.testing.assert_close(reloaded, trained, rtol=0, atol=1e-5)
    # Padding changes nothing: each row alone gives the logits it has in the padded batch.
    alone = torch.cat([_logits(classifier.model, tokenizer, [t]) for t in TEXTS])
    torch.testing.assert_close(alone, reloaded, rtol=0, atol=1e-5)
    if model_type in DECODERS:  # shipped padding on the left, most without a pad token
        shipped = AutoTokenizer.from_pretrained(checkpoint)
        assert tokenizer.pad_token == (shipped.pad_token or shipped.eos_token)
        assert tokenizer.padding_side == "right"
        assert classifier.model.config.pad_token_id == tokenizer.pad_token_id

    if method != "full":
        merged = load_classifier(merge_adapter(run_dir / "model", tmp_path / "merged"))
        assert not hasattr(merged.model, "peft_config")
        torch.testing.assert_close(_logits(merged.model, merged.tokenizer, TEXTS), reloaded,
                                   rtol=0, atol=1e-4)


def test_mean_pooling_trains_saves_and_reloads_on_every_architecture(checkpoint, tmp_path):
    """`model.pooling: mean` on each architecture: LoRA and the new head train, the saved folder
    reloads to the same logits, and padding changes nothing (the mean skips the pad tokens)."""
    from hf_transfer import save_classifier
    from hf_transfer.config import ModelConfig, TuningConfig
    from hf_transfer.modeling import load_classifier_model, load_tokenizer
    from hf_transfer.tuning import apply_tuning

    cfg = ModelConfig(name_or_path=str(checkpoint), pooling="mean")
    torch.manual_seed(0)
    model, new_modules = load_classifier_model(cfg, ["a", "b", "c"])
    model = apply_tuning(model, TuningConfig(method="lora", lora_r=4), new_modules)
    tokenizer = load_tokenizer(cfg)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    model(**batch, labels=torch.tensor([2, 0, 1])).loss.backward()
    optimizer.step()
    folder = save_classifier(model, tokenizer, tmp_path / "model", ["a", "b", "c"], str(checkpoint), 32, "lora")
    classifier = load_classifier(folder)
    reloaded = _logits(classifier.model, classifier.tokenizer, TEXTS)
    torch.testing.assert_close(reloaded, _logits(model, tokenizer, TEXTS), rtol=0, atol=1e-5)
    alone = torch.cat([_logits(classifier.model, classifier.tokenizer, [t]) for t in TEXTS])
    torch.testing.assert_close(alone, reloaded, rtol=0, atol=1e-5)
