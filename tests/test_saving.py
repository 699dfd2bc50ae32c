"""Saving: a saved classifier reloads with identical logits and its label names."""

import json

import pytest
import torch

from hf_transfer import load_classifier, save_classifier
from hf_transfer.config import ModelConfig, TuningConfig
from hf_transfer.errors import ConfigError
from hf_transfer.modeling import load_classifier_model, load_tokenizer
from hf_transfer.tuning import apply_tuning

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["great flight and friendly crew", "the battery is broken", "my phone update is okay"]


def trained(tiny_model, method: str):
    """A classifier on ``tiny_model`` after one real training step; (model, tokenizer, batch)."""
    model_cfg = ModelConfig(name_or_path=str(tiny_model))
    torch.manual_seed(0)
    model, new_modules = load_classifier_model(model_cfg, LABELS)
    model = apply_tuning(model, TuningConfig(method=method, lora_r=4), new_modules)
    # One real step so every trained part (LoRA B, head) differs from its initial value.
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    tokenizer = load_tokenizer(model_cfg)  # as a run loads it (a decoder gets its pad token)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    model(**batch, labels=torch.tensor([2, 0, 1])).loss.backward()
    optimizer.step()
    return model.eval(), tokenizer, batch


@pytest.mark.parametrize("method", ["full", "lora", "frozen", "top_k"])
def test_reload_gives_identical_logits_and_labels(tiny_model, tmp_path, method):
    model, tokenizer, batch = trained(tiny_model, method)
    with torch.no_grad():
        expected = model(**batch).logits
    folder = save_classifier(model, tokenizer, tmp_path / "model", LABELS, str(tiny_model), 32, method)
    meta = json.loads((folder / "hf_transfer.json").read_text())
    assert meta["labels"] == LABELS and meta["format"] == ("peft" if method == "lora" else "transformers")

    classifier = load_classifier(folder)
    with torch.no_grad():
        reloaded = classifier.model(**batch).logits
    torch.testing.assert_close(reloaded, expected, rtol=0, atol=1e-6)
    assert classifier.labels == LABELS
    assert classifier.model.config.id2label == dict(enumerate(LABELS))
    predicted = classifier.predict(TEXTS)
    assert predicted == [LABELS[i] for i in expected.argmax(-1).tolist()]
    probabilities = classifier.predict_proba(TEXTS)
    assert probabilities.shape == (3, 3)
    torch.testing.assert_close(torch.from_numpy(probabilities), expected.softmax(-1), rtol=0, atol=1e-5)


def test_lora_folder_is_an_adapter_with_the_head(tiny_model, tmp_path):
    model, tokenizer, _ = trained(tiny_model, "lora")
    folder = save_classifier(model, tokenizer, tmp_path / "m", LABELS, "org/base-model", 32, "lora")
    assert (folder / "adapter_model.safetensors").is_file()
    # The classifier under the adapter is saved too (see test_saved_folders.py); the base
    # model's Hub id is in hf_transfer.json.
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert json.loads((folder / "hf_transfer.json").read_text())["base_model"] == "org/base-model"
    from safetensors import safe_open

    with safe_open(folder / "adapter_model.safetensors", "pt") as f:
        assert any("classifier" in key for key in f.keys())


def test_loading_a_wrong_folder_says_what_to_pass(tmp_path):
    with pytest.raises(ConfigError, match="not a saved hf_transfer classifier"):
        load_classifier(tmp_path)
