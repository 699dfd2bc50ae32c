"""`dann`: the confusion objective (what reaches the encoder and the discriminator; the
reversal objective pushes even where the discriminator is undecided), the domain-accuracy
measures in results.json, and a run on a learnable toy shift that keeps both classes on the
target. The reversal layer itself, resume and two processes: tests/test_domain_adaptation_unlabeled.py."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_transfer import DomainAdaptationRecipe, load_config
from hf_transfer.errors import ConfigError
from hf_transfer.strategies.dann import DomainAdversarialModel, frozen_forward, probe_accuracy
from source_assets import write_word_shift_data

# --- the objective ----------------------------------------------------------------------------


def _wrapped(tiny_model, objective="confusion"):
    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    source = dict(tokenizer(["great flight", "rude crew , delayed"], padding=True, return_tensors="pt"))
    source["labels"] = torch.tensor([1, 0])
    target = dict(tokenizer(["my iphone is broken", "love the ipad"], padding=True, return_tensors="pt"))
    return DomainAdversarialModel(classifier, 16, objective), source, target


def _encoder_grads(model) -> dict:
    return {n: p.grad.clone() for n, p in model.classifier.named_parameters() if p.grad is not None}


def test_frozen_forward_is_the_discriminator_without_its_gradient(tiny_model):
    model, _, _ = _wrapped(tiny_model)
    model.eval()
    x = torch.randn(3, model.classifier.config.hidden_size, requires_grad=True)
    out = frozen_forward(model.discriminator, x)
    assert torch.allclose(out, model.discriminator(x))
    out.sum().backward()
    assert x.grad is not None and all(p.grad is None for p in model.discriminator.parameters())


def test_confusion_pull_vanishes_when_the_discriminator_is_undecided(tiny_model):
    """With a discriminator that answers 1/2 for everything, the encoder receives the
    classification gradient only, whatever lambda (the reversal objective would still push);
    the discriminator still learns from the domain loss."""
    grads = {}
    for lambda_ in (0.0, 5.0):
        model, source, target = _wrapped(tiny_model)
        model.eval()  # no dropout: the same forward for both lambdas
        torch.nn.init.zeros_(model.discriminator[-1].weight)
        torch.nn.init.zeros_(model.discriminator[-1].bias)
        model(**source, target_batch=target, grl_lambda=lambda_).loss.backward()
        grads[lambda_] = _encoder_grads(model)
        assert model.discriminator[-1].weight.grad.abs().sum() > 0
    assert all(torch.allclose(grads[0.0][n], grads[5.0][n]) for n in grads[0.0])

    model, source, target = _wrapped(tiny_model)
    model.classifier(**source).loss.backward()  # the classification loss alone
    alone = _encoder_grads(model)
    assert all(torch.allclose(alone[n], grads[0.0][n], atol=1e-6) for n in alone)


def test_reversal_objective_pushes_even_an_undecided_discriminator_s_features(tiny_model):
    grads = {}
    for lambda_ in (0.0, 5.0):
        model, source, target = _wrapped(tiny_model, "reversal")
        model.eval()
        torch.nn.init.zeros_(model.discriminator[-1].bias)
        model(**source, target_batch=target, grl_lambda=lambda_).loss.backward()
        grads[lambda_] = _encoder_grads(model)
    assert any(not torch.allclose(grads[0.0][n], grads[5.0][n]) for n in grads[0.0])


def test_probe_accuracy_reads_separable_and_identical_domains():
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(200, 8, generator=generator)
    assert probe_accuracy(source, source + 3.0) == 1.0
    same = probe_accuracy(source[:100], source[100:])
    assert 0.3 < same < 0.7


def test_an_unknown_objective_is_refused_before_any_model(tiny_overrides):
    with pytest.raises(ConfigError, match="`strategy.dann_objective` is 'adversarial': choose one of confusion, reversal"):
        DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, "strategy.name": "dann",
                                                      "strategy.dann_objective": "adversarial"}))


# --- a run on a learnable toy shift ------------------------------------------------------------


def _toy_run(tiny_overrides, tmp_path, objective: str, weight: float = 1.0) -> dict:
    """Binary sentiment where one shared word carries the class and three domain words the
    domain (tests/source_assets.py): a source classifier transfers, so only the adversary can
    make the target predictions collapse. Full tuning, five epochs, one evaluation at the end."""
    data = write_word_shift_data(tmp_path / "data", n=120)
    overrides = {**tiny_overrides, "strategy.name": "dann", "tuning.method": "full", "model.max_length": 16,
                 "data.source": {"files": {"train": str(data["source"])}},
                 "data.target": {"files": {"train": str(data["target"])}},
                 "training.num_epochs": 5, "training.learning_rate": 2e-3, "training.eval_strategy": "steps",
                 "training.eval_steps": 1000, "strategy.dann_objective": objective, "strategy.dann_weight": weight,
                 "output.dir": str(tmp_path / objective)}
    return DomainAdaptationRecipe(load_config(overrides=overrides)).run()


def _predicted_per_class(results: dict) -> list[int]:
    matrix = results["confusion_matrix"]["matrix"]  # rows gold, columns predicted (target/test)
    return [sum(column) for column in zip(*matrix)]


def test_a_run_on_a_toy_shift_keeps_both_classes_and_reports_domain_accuracy(tiny_overrides, tmp_path):
    results = _toy_run(tiny_overrides, tmp_path, "confusion")
    assert min(_predicted_per_class(results)) > 0, results["confusion_matrix"]
    assert results["eval_matrix"]["target/test"]["macro_f1"] > 0.6
    accuracy = results["dann"]["domain_accuracy"]
    assert 0 <= accuracy["discriminator"]["balanced"] <= 1 and 0 <= accuracy["linear_probe"] <= 1
    assert accuracy["rows"] == {"source": 12, "target": 12}
