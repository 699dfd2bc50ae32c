"""The linear probe (a logistic regression fitted on the frozen representation, LP-FT's first
step) and target stages stretched to `strategy.target_min_steps`."""

import pytest
import torch
import torch.nn.functional as F

from hf_transfer import DomainAdaptationRecipe, load_config
from hf_transfer.config import ModelConfig, TuningConfig
from hf_transfer.modeling import load_classifier_model
from hf_transfer.probe import fit_logistic_regression, output_layer
from hf_transfer.tuning import apply_tuning
from tiny_architectures import build_tiny_checkpoint


def test_the_fit_is_the_regularised_optimum():
    """At the optimum the gradient of mean cross-entropy + l2/2 |W|^2 vanishes (KKT)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=generator, dtype=torch.float64)
    y = x[:, :3].argmax(-1)  # three linearly separable classes
    weight, bias = fit_logistic_regression(x, y, 3, l2=1e-2)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * 1e-2 * weight.pow(2).sum()
    grad_w, grad_b = torch.autograd.grad(loss, [weight, bias])
    assert grad_w.abs().max() < 1e-6 and grad_b.abs().max() < 1e-6
    assert (torch.argmax(x @ weight.T + bias, -1) == y).double().mean() >= 0.9


@pytest.mark.parametrize("model_type, layer_name", [
    ("bert", "classifier"), ("roberta", "classifier.out_proj"), ("llama", "score")])
@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_output_layer_is_the_one_that_writes_the_logits(tmp_path, model_type, layer_name, method):
    folder = build_tiny_checkpoint(model_type, tmp_path / model_type)
    model, new_modules = load_classifier_model(ModelConfig(name_or_path=str(folder)), ["a", "b", "c"])
    model = apply_tuning(model, TuningConfig(method=method, lora_r=2), new_modules)
    layer = output_layer(model)
    named = dict(model.named_modules())
    name = next(n for n, m in named.items() if m is layer)
    plain = name.replace(".modules_to_save.default", "")
    assert plain.endswith(layer_name)
    if method == "lora":  # the trainable copy PEFT keeps, not the frozen original
        assert "modules_to_save" in name and layer.weight.requires_grad
    # Its weights and bias alone make the logits: it is the layer the classifier reads.
    batch = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    model.eval()
    with torch.no_grad():
        layer.weight.zero_()
        logits = model(**batch).logits
    bias = layer.bias if layer.bias is not None else torch.zeros(3)
    assert torch.allclose(logits, bias.expand(1, 3), atol=1e-6)


def test_linear_probe_fits_the_head_alone_and_saves_a_classifier_that_reloads(tiny_overrides, tmp_path, caplog):
    import logging

    from hf_transfer import load_classifier

    # `training.max_steps` (a cap meant for the training stages) must not add updates to a fit.
    overrides = {**tiny_overrides, "strategy.name": "linear_probe", "tuning.method": "frozen",
                 "data.target.k_shot": 8, "training.max_steps": 5}
    with caplog.at_level(logging.INFO, logger="hf_transfer.training.loop"):
        results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    (stage,) = results["stages"]
    assert stage["name"] == "probe" and stage["steps"] == 0 and stage["best_step"] == 0
    # Its log line names the fit, not a learning rate that nothing uses.
    assert "Stage 'probe': 24 examples, no gradient updates (the output layer is fitted)" in caplog.text
    assert not [row for row in stage["history"] if "loss" in row]
    assert stage["history"][0]["probe"]["train_rows"] == 24  # k 8 x 3 classes
    # The tiny data is learnable from the frozen random encoder's features: above chance.
    assert results["eval_matrix"]["target/test"]["accuracy"] > 0.5
    classifier = load_classifier(tmp_path / "run" / "model")
    assert classifier.predict(["great flight"])[0] in ("negative", "neutral", "positive")


def test_linear_probe_refuses_a_trained_encoder_before_anything_loads(tiny_overrides):
    from hf_transfer.errors import ConfigError

    overrides = {**tiny_overrides, "strategy.name": "linear_probe", "data.target.k_shot": 8}
    with pytest.raises(ConfigError, match="`tuning.method` is 'lora', but `linear_probe` fits the "
                                          "output layer alone on the frozen encoder: choose frozen"):
        DomainAdaptationRecipe(load_config(overrides=overrides)).run()
