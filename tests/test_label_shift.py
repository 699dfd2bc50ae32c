"""Label-shift correction (`strategy.label_shift: em`): the EM estimate of the target prior,
the correction folded into the output bias, and what a run records."""

import json
from types import SimpleNamespace

import torch

from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.label_shift import correct_label_shift, em_target_prior


def test_em_recovers_a_known_target_prior():
    """A calibrated source classifier over 6 discrete "texts" with known P(x|y), trained with a
    uniform prior; target texts drawn with prior (0.7, 0.2, 0.1): EM finds that prior, the mean
    posterior alone does not."""
    generator = torch.Generator().manual_seed(0)
    p_x_given_y = torch.tensor([[0.40, 0.30, 0.10, 0.10, 0.05, 0.05],
                                [0.10, 0.10, 0.40, 0.30, 0.05, 0.05],
                                [0.05, 0.10, 0.05, 0.10, 0.35, 0.35]])
    source_prior = torch.full((3,), 1 / 3)
    target_prior = torch.tensor([0.7, 0.2, 0.1])
    labels = torch.multinomial(target_prior, 20000, replacement=True, generator=generator)
    texts = torch.stack([torch.multinomial(p_x_given_y[y], 1, generator=generator)[0] for y in labels])
    joint = p_x_given_y.T * source_prior  # [x, y]
    posteriors = (joint / joint.sum(-1, keepdim=True))[texts]
    estimate = em_target_prior(posteriors, source_prior)
    assert (estimate - target_prior).abs().max() < 0.03
    assert (posteriors.mean(0) - target_prior).abs().max() > 0.15


class _Classifier(torch.nn.Module):
    """An encoder and a linear head, like a transformers classifier (``.logits``, the encoder
    named by ``base_model_prefix``, ``config.num_labels``)."""

    base_model_prefix = "encoder"
    config = SimpleNamespace(num_labels=3, model_type="toy")

    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Linear(4, 8)
        self.classifier = torch.nn.Linear(8, 3)

    def forward(self, x):
        return SimpleNamespace(logits=self.classifier(torch.tanh(self.encoder(x))))


class _Engine:
    """What correct_label_shift uses of the Engine; a split is a tensor of inputs with labels."""

    accelerator = SimpleNamespace(unwrap_model=lambda model, **kwargs: model)

    def predict_logits(self, model, split, batch_size):
        with torch.no_grad():
            return model(split["x"]).logits, split["y"]

    def evaluate(self, model, eval_sets, batch_size):
        return {name: {"accuracy": 0.5} for name in eval_sets}


def test_the_correction_is_folded_into_the_output_layer():
    """Afterwards the model outputs logits / T + b + log(target prior / source prior)."""
    torch.manual_seed(0)
    model = _Classifier()
    source_val = {"x": torch.randn(60, 4), "y": torch.arange(60) % 3}
    target_train = {"x": torch.randn(90, 4) + 0.5, "y": torch.zeros(90, dtype=torch.long)}
    data = SimpleNamespace(labels=SimpleNamespace(names=["a", "b", "c"]),
                           source={"validation": source_val}, target={"train": target_train},
                           sizes={"target": {"label_counts": {"train": {"a": 90}}}})
    probe = torch.randn(5, 4)
    with torch.no_grad():
        before = model(probe).logits
    report = correct_label_shift(_Engine(), model, data, {"target/test": None}, 32, "mean")
    t, b = report["calibration"]["temperature"], torch.tensor(report["calibration"]["bias"])
    source = torch.tensor(list(report["source_prior"].values()))
    target = torch.tensor(list(report["estimated_target_prior"].values()))
    expected = before / t + b + target.log() - source.log()
    with torch.no_grad():
        after = model(probe).logits
    assert torch.allclose(after - after.mean(-1, keepdim=True), expected - expected.mean(-1, keepdim=True), atol=1e-3)
    assert abs(source.sum() - 1) < 1e-3 and abs(target.sum() - 1) < 1e-3
    assert report["before_correction"] == {"target/test": {"accuracy": 0.5}}


def test_a_run_records_the_correction_and_saves_the_corrected_classifier(tiny_overrides, tiny_data, tmp_path):
    overrides = {**tiny_overrides, "training.num_epochs": 1, "strategy.label_shift": "em", "output.report": False}
    results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    shift = results["label_shift"]
    assert shift["method"] == "em" and list(results)[:5] == [
        "hf_transfer_version", "scenario", "strategy", "labels", "eval_matrix"] and "label_shift" in results
    assert set(shift["before_correction"]) == {"source/validation", "source/test", "target/validation", "target/test"}
    assert abs(sum(shift["estimated_target_prior"].values()) - 1) < 1e-3
    texts = [json.loads(line)["text"] for line in tiny_data["target"].read_text().splitlines()[:20]]
    assert len(load_classifier(tmp_path / "run" / "model").predict(texts)) == 20


def test_label_shift_is_not_applied_to_a_strategy_that_trains_on_target_labels(tiny_overrides, caplog):
    """The quick start's config turns it on; `--strategy.name sequential` on top of it trains on
    labelled target data, which has the target's distribution already: a note, no correction."""
    overrides = {**tiny_overrides, "strategy.name": "sequential", "strategy.label_shift": "mean",
                 "strategy.target_num_epochs": 1, "training.num_epochs": 1, "output.report": False}
    with caplog.at_level("INFO", logger="hf_transfer"):
        results = DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    assert "label_shift" not in results
    assert "`strategy.label_shift` mean is not applied: `sequential` trains on labelled target data" in caplog.text


def test_a_classifier_that_predicts_one_class_is_left_as_it_is(caplog):
    """Its outputs carry no estimate of the target's classes: re-weighting them would only move
    every text to the class the estimate favours (measured: accuracy 0.321 -> 0.172)."""
    model = _Classifier()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([3.0, 0.0, 0.0]))
    source_val = {"x": torch.randn(60, 4), "y": torch.arange(60) % 3}
    data = SimpleNamespace(labels=SimpleNamespace(names=["a", "b", "c"]), source={"validation": source_val},
                           target={"train": {"x": torch.randn(90, 4), "y": torch.zeros(90, dtype=torch.long)}})
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level("WARNING", logger="hf_transfer"):
        report = correct_label_shift(_Engine(), model, data, {"target/test": None}, 32, "mean")
    assert report["applied"] is False and "predicts one class ('a')" in report["reason"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert "`strategy.label_shift` mean not applied" in caplog.text
