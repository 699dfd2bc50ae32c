"""`coral` (deep CORAL, Sun & Saenko 2016): the loss, and the strategy on the tiny model in one
and two processes, never reading target labels."""

import json

import pytest
import torch

from conftest import launch, overrides_to_args
from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.errors import ConfigError
from hf_transfer.strategies.coral import CoralModel, CoralOptions, coral_loss, covariance
from hf_transfer.strategies.features import features_only

SCRIPT = "recipes/domain_adaptation.py"


# --- the loss --------------------------------------------------------------------------------


def test_coral_loss_is_zero_for_identical_and_for_shifted_feature_batches():
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    assert coral_loss(x, x.clone()).item() == 0.0
    # Covariance ignores the mean: a shifted copy has the same second-order statistics.
    assert coral_loss(x, x + 3.0).item() == pytest.approx(0.0, abs=1e-10)


def test_coral_loss_matches_a_hand_computed_value():
    # Source [[0,0],[2,0]]: centred [[-1,0],[1,0]], C_s = [[2,0],[0,0]] (n - 1 = 1).
    # Target [[0,0],[0,2]]: C_t = [[0,0],[0,2]]. ||C_s - C_t||_F^2 = 4 + 4 = 8; d = 2:
    # 8 / (4 * 2^2) = 0.5.
    source = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert torch.equal(covariance(source), torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
    assert coral_loss(source, target).item() == pytest.approx(0.5)


def test_coral_loss_is_torch_cov_based_and_differentiable():
    torch.manual_seed(1)
    s, t = torch.randn(10, 4, requires_grad=True), torch.randn(12, 4)
    expected = (torch.cov(s.T) - torch.cov(t.T)).pow(2).sum() / (4 * 4 * 4)
    loss = coral_loss(s, t)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


# --- the strategy ------------------------------------------------------------------------------


def _coral_overrides(tiny_overrides, tmp_path, **extra):
    return {**tiny_overrides, "strategy.name": "coral", "tuning.method": "full",
            "training.num_epochs": 1, "output.dir": str(tmp_path / "run"), **extra}


def test_config_errors_before_any_model(tiny_overrides, tmp_path):
    with pytest.raises(ConfigError, match="`strategy.coral_weight` is -1"):
        DomainAdaptationRecipe(load_config(overrides=_coral_overrides(
            tiny_overrides, tmp_path, **{"strategy.coral_weight": -1})))
    # k_shot no longer excludes it: the target rows k_shot leaves out are its unlabelled text.
    DomainAdaptationRecipe(load_config(overrides=_coral_overrides(tiny_overrides, tmp_path, **{"data.target.k_shot": 4})))


def test_target_labels_never_reach_training(tiny_overrides, tiny_data, tmp_path):
    """Every target training label corrupted: the same losses, evaluations and weights."""
    rows = [json.loads(line) for line in tiny_data["target"].read_text().splitlines()]
    parts = {"train": rows[::3] + rows[1::3], "validation": rows[2::6], "test": rows[5::6]}
    labels = ["negative", "neutral", "positive"]
    outcomes = {}
    for variant in ("true", "corrupt"):
        files = {}
        for split, part in parts.items():
            if variant == "corrupt" and split == "train":
                part = [{**r, "label": labels[(labels.index(r["label"]) + 1) % 3]} for r in part]
            files[split] = tmp_path / f"{variant}_{split}.jsonl"
            files[split].write_text("\n".join(map(json.dumps, part)) + "\n")
        recipe = DomainAdaptationRecipe(load_config(overrides=_coral_overrides(
            tiny_overrides, tmp_path, **{"data.target": {"files": {k: str(v) for k, v in files.items()}},
                                         "output.dir": str(tmp_path / variant)})))
        results = recipe.run()
        assert all("label" not in split.column_names for split in recipe.context.data.target_text.values())
        outcomes[variant] = ([s["history"] for s in results["stages"]], recipe.model.state_dict())
    assert outcomes["corrupt"][0] == outcomes["true"][0]
    assert all(torch.equal(outcomes["true"][1][k], outcomes["corrupt"][1][k]) for k in outcomes["true"][1])


def _feature_distance(model, tokenizer, source_texts, target_texts) -> float:
    model.eval()
    with torch.no_grad():
        fs = features_only(model, dict(tokenizer(source_texts, padding=True, return_tensors="pt")))
        ft = features_only(model, dict(tokenizer(target_texts, padding=True, return_tensors="pt")))
    return coral_loss(fs, ft).item()


def test_the_penalty_pulls_the_feature_covariances_together(tiny_overrides, tiny_data, tmp_path):
    """With a large weight the final classifier's source and target features have closer
    covariances than without the penalty (weight 0: plain source training)."""
    source_texts = [line.rsplit(",", 2)[0].strip('"')
                    for line in tiny_data["source"].read_text().splitlines()[1:]][:60]
    target_texts = [json.loads(line)["text"] for line in tiny_data["target"].read_text().splitlines()][:60]
    distance = {}
    for weight in (0.0, 1e4):
        overrides = _coral_overrides(tiny_overrides, tmp_path, **{
            "strategy.coral_weight": weight, "training.num_epochs": 3, "training.learning_rate": 2e-3,
            "output.dir": str(tmp_path / f"w{weight}")})
        DomainAdaptationRecipe(load_config(overrides=overrides)).run()
        classifier = load_classifier(tmp_path / f"w{weight}" / "model")
        distance[weight] = _feature_distance(classifier.model, classifier.tokenizer, source_texts, target_texts)
    assert distance[1e4] < 0.5 * distance[0.0], distance


def test_coral_model_is_the_classifier_outside_training(tiny_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    classifier = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=3).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    batch = dict(tokenizer(["great flight", "broken phone"], padding=True, return_tensors="pt"))
    wrapped = CoralModel(classifier, 1.0).eval()
    torch.testing.assert_close(wrapped(**batch).logits, classifier(**batch).logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match="must be unlabelled"):
        wrapped(**batch, labels=torch.tensor([0, 1]), target_batch={**batch, "labels": torch.tensor([0, 1])})


def test_two_processes(tiny_overrides, tmp_path):
    overrides = _coral_overrides(tiny_overrides, tmp_path)
    done = launch(SCRIPT, overrides_to_args(overrides), num_processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["environment"]["num_processes"] == 2
    assert results["strategy"] == "coral" and results["coral"]["weight"] == CoralOptions().coral_weight
    for name, row in results["eval_matrix"].items():
        if "[" not in name:  # every example counted once across the two processes
            role, split = name.split("/")
            assert row["n"] == results["data"][role]["splits"][split]
    assert load_classifier(tmp_path / "run" / "model").predict(["great flight"])[0] in results["labels"]
