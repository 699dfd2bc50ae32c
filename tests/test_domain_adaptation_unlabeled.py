"""Domain adaptation with unlabelled target text: `tapt`, `dapt` (masked-LM stage, then the
classifier) and `dann` (domain-adversarial training), on the tiny model.

What is checked: the gradient-reversal layer; config errors before any model loads; the MLM
stage lowers the masked-LM loss on held-out target text and its encoder is reusable; target
labels never reach training; resume across the two stages and inside the DANN stage (where
the target batches must continue where they were); the saved classifier reloads to the same
logits; two processes (gloo DDP).
"""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import launch, overrides_to_args
from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.config import load_config as load_config_checked
from hf_transfer.strategies.dann import DomainAdversarialModel, dann_lambda, reverse_gradient
from hf_transfer.data.loading import load_splits
from hf_transfer.errors import ConfigError

SCRIPT = "recipes/domain_adaptation.py"
TEXTS = ["great flight , friendly crew", "my iphone : broken , useless", "the ipad was okay , normal"]


def _run(overrides: dict) -> tuple[DomainAdaptationRecipe, dict]:
    recipe = DomainAdaptationRecipe(load_config(overrides=overrides))
    return recipe, recipe.run()


def _logits(model, tokenizer, texts=TEXTS) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


def _stage_trace(results: dict) -> list:
    """What training did, step by step: losses, evaluations, selected steps."""
    return [(s["name"], s["steps"], s["best_step"], s["best_metric"], s["history"])
            for s in results["stages"]]


# --- the gradient-reversal layer ------------------------------------------------------------


@pytest.mark.parametrize("lambda_", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_multiplies_gradients_by_minus_lambda(lambda_):
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    y = reverse_gradient(x, lambda_)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.allclose(x.grad, -lambda_ * upstream)


def test_dann_lambda_schedule_rises_from_zero_to_the_weight():
    assert dann_lambda(0.0, 0.5) == 0.0
    assert dann_lambda(0.5, 1.0) == pytest.approx(2 / (1 + torch.e ** -5) - 1)
    assert dann_lambda(1.0, 0.5) == pytest.approx(0.5 * (2 / (1 + torch.e ** -10) - 1))
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values) and values[-1] < 1


def test_discriminator_gradient_reaches_the_encoder_reversed(tiny_model):
    """The encoder's gradient from the domain loss flips sign with the reversal layer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=3)
    classifier.eval()  # no dropout: both passes see the same function
    model = DomainAdversarialModel(classifier, hidden=8).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    source = dict(tokenizer(TEXTS[:2], padding=True, return_tensors="pt"), labels=torch.tensor([2, 0]))
    target = dict(tokenizer(TEXTS[2:], padding=True, return_tensors="pt"))
    pooler = classifier.bert.pooler.dense.weight

    def grads(lambda_):
        model.zero_grad()
        model(**source, target_batch=target, grl_lambda=lambda_).loss.backward()
        return pooler.grad.clone(), model.discriminator[0].weight.grad.clone()

    # The encoder's gradient is g_classification - lambda * g_domain: linear in lambda, and
    # lambda = 0 leaves only the classification part; the discriminator's does not depend on it.
    (encoder_0, disc_0), (encoder_half, disc_half), (encoder_1, disc_1) = map(grads, (0.0, 0.5, 1.0))
    assert torch.allclose(disc_0, disc_1) and torch.allclose(disc_half, disc_1)
    assert (encoder_1 - encoder_0).abs().sum() > 0
    assert torch.allclose(encoder_half - encoder_0, 0.5 * (encoder_1 - encoder_0), atol=1e-7)
    model.zero_grad()
    classifier(**source).loss.backward()
    assert torch.allclose(pooler.grad, encoder_0)  # lambda 0: the classification gradient alone
    with pytest.raises(ValueError, match="unlabelled"):
        model(**source, target_batch={**target, "labels": torch.tensor([1])})


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    ({"strategy.name": "dapt"}, "`data.unlabeled` is not set"),
    ({"strategy.name": "tapt", "data.unlabeled.builtin": "tweets"}, "only `dapt` uses that corpus"),
    ({"strategy.name": "tapt", "tuning.method": "frozen"}, "`tuning.method` is 'frozen'"),
])
def test_strategy_config_errors_name_the_field_and_come_before_any_model(tiny_overrides, monkeypatch,
                                                                      overrides, message):
    import hf_transfer.run.pipeline as base

    monkeypatch.setattr(base, "load_classifier_model", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DomainAdaptationRecipe(load_config(overrides={**tiny_overrides, **overrides}))


@pytest.mark.parametrize("overrides, message", [
    ({"strategy.name": "tapt", "strategy.mlm_probability": 1.5}, "`strategy.mlm_probability` is 1.5"),
    ({"strategy.name": "dann", "strategy.dann_weight": -1}, "`strategy.dann_weight` is -1"),
    ({"strategy.name": "dann", "strategy.discriminator_hidden": 0}, "`strategy.discriminator_hidden` is 0"),
    ({"strategy.name": "dapt", "strategy.mlm_num_epochs": 0}, "`strategy.mlm_num_epochs` is 0"),
    # A strategy's own setting under another strategy is named, with its owner.
    ({"strategy.dann_weight": 0.5}, "`strategy.dann_weight` is a setting of `dann`, but `strategy.name` is 'source_only'"),
    ({"data.unlabeled.builtin": "tweets", "data.unlabeled.k_shot": 3}, "`data.unlabeled.k_shot` is set"),
])
def test_new_fields_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config_checked(overrides=overrides)


# --- tapt / dapt ----------------------------------------------------------------------------


def test_tapt_lowers_the_masked_lm_loss_and_its_encoder_is_reusable(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "strategy.name": "tapt", "tuning.method": "full",
                 "training.learning_rate": 2e-3, "strategy.mlm_num_epochs": 3,
                 "strategy.mlm_learning_rate": 5e-3}
    recipe, results = _run(overrides)
    mlm = results["masked_lm"]
    assert mlm["new_head"] is True  # the tiny checkpoint, like MiniLM, has no MLM head
    assert mlm["loss_after"] < mlm["loss_before"] - 0.3, mlm
    stage = results["stages"][0]
    assert (stage["name"], stage["metric_for_best"], stage["select_on"]) == ("mlm", "mlm_loss", "target/validation:text")
    evals = [h["mlm_loss"] for h in stage["history"] if "mlm_loss" in h]
    assert len(evals) == 3 and stage["best_metric"] == min(evals) == mlm["loss_after"]
    assert mlm["texts"]["train"] == results["data"]["target"]["splits"]["train"]

    # The saved encoder is a plain pretrained-encoder folder: a run from it is the tapt run's
    # classification stage exactly (same seed: same head, same batches).
    encoder = tmp_path / "run" / "mlm_encoder"
    assert json.loads((encoder / "config.json").read_text())["architectures"] == ["BertModel"]
    plain = {k: v for k, v in overrides.items() if not k.startswith("strategy.mlm_")}  # tapt's own
    _, again = _run({**plain, "strategy.name": "source_only", "model.name_or_path": str(encoder),
                     "output.dir": str(tmp_path / "from_encoder")})
    assert again["eval_matrix"] == results["eval_matrix"]
    assert _stage_trace(again) == _stage_trace(results)[1:]

    # The saved classifier reloads to the trained model's logits.
    classifier = load_classifier(tmp_path / "run" / "model")
    assert torch.equal(_logits(classifier.model, classifier.tokenizer),
                       _logits(recipe.model, classifier.tokenizer))


def test_tapt_lora_saves_a_standalone_classifier(tiny_overrides, tmp_path):
    recipe, results = _run({**tiny_overrides, "strategy.name": "tapt", "training.num_epochs": 1})
    assert results["masked_lm"]["loss_after"] < results["masked_lm"]["loss_before"]
    meta = json.loads((tmp_path / "run" / "model" / "hf_transfer.json").read_text())
    assert meta["format"] == "transformers"  # adapter merged: its base exists only in this run
    classifier = load_classifier(tmp_path / "run" / "model")
    assert torch.allclose(_logits(classifier.model, classifier.tokenizer),
                          _logits(recipe.model, classifier.tokenizer), atol=1e-5)


def test_dapt_pretrains_on_the_corpus_text_never_on_target_evaluation_text(tiny_overrides, tiny_data, tmp_path):
    target_cfg = load_config(overrides=tiny_overrides).data.target
    target = load_splits(target_cfg, 42, "target")
    held_out = set(target["validation"]["text"]) | set(target["test"]["text"])
    corpus = tmp_path / "corpus.csv"  # text only: no label column at all
    texts = [line.rsplit(",", 2)[0].strip('"') for line in tiny_data["source"].read_text().splitlines()[1:]]
    texts += sorted(held_out)[:5]
    corpus.write_text("body\n" + "\n".join(f'"{t}"' for t in texts) + "\n")
    recipe, results = _run({**tiny_overrides, "strategy.name": "dapt", "training.num_epochs": 1,
                            "data.unlabeled": {"files": {"train": str(corpus)}, "text_column": "body"}})
    trained_on = set(recipe.context.data.corpus["text"])
    assert not trained_on & held_out
    assert results["masked_lm"]["texts"]["train"] == len(set(texts) - held_out) == len(trained_on)
    assert results["masked_lm"]["loss_after"] < results["masked_lm"]["loss_before"]
    assert (tmp_path / "run" / "mlm_encoder" / "model.safetensors").is_file()


# --- dann -----------------------------------------------------------------------------------


def test_dann_checkpoints_the_discriminator_and_saves_the_plain_classifier(tiny_overrides, tmp_path):
    recipe, results = _run({**tiny_overrides, "strategy.name": "dann", "tuning.method": "full",
                            "training.learning_rate": 2e-3, "training.save_total_limit": 10})
    assert results["dann"]["target_texts"] == results["data"]["target"]["splits"]["train"]
    checkpoints = sorted((tmp_path / "run" / "checkpoints" / "source").glob("step_*"))
    first, last = (load_file(str(c / "model.safetensors")) for c in (checkpoints[0], checkpoints[-1]))
    assert any(k.startswith("discriminator.") for k in first)  # in checkpoints: resume restores it
    assert not torch.equal(first["discriminator.0.weight"], last["discriminator.0.weight"])  # it trains

    saved = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert not any("discriminator" in k for k in saved)
    classifier = load_classifier(tmp_path / "run" / "model")
    assert torch.equal(_logits(classifier.model, classifier.tokenizer),
                       _logits(recipe.model, classifier.tokenizer))


# --- no target label is ever used -------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["tapt", "dann", "self_training"])
def test_target_labels_never_reach_training(tiny_overrides, tiny_data, tmp_path, strategy):
    """Corrupting every target training label changes nothing in training: same losses, same
    evaluations, same weights."""
    rows = [json.loads(line) for line in tiny_data["target"].read_text().splitlines()]
    parts = {"train": rows[::3] + rows[1::3], "validation": rows[2::6], "test": rows[5::6]}
    labels = ["negative", "neutral", "positive"]
    for variant in ("true", "corrupt"):
        for split, part in parts.items():
            if variant == "corrupt" and split == "train":  # every label wrong
                part = [{**r, "label": labels[(labels.index(r["label"]) + 1) % 3]} for r in part]
            (tmp_path / f"{variant}_{split}.jsonl").write_text("\n".join(map(json.dumps, part)) + "\n")
    outcomes = {}
    for variant in ("true", "corrupt"):
        files = {s: str(tmp_path / f"{variant}_{s}.jsonl") for s in parts}
        recipe, results = _run({**tiny_overrides, "strategy.name": strategy, "tuning.method": "full",
                                "training.num_epochs": 1, "data.target": {"files": files},
                                "output.dir": str(tmp_path / variant)})
        for name, split in recipe.context.data.target_text.items():
            assert "label" not in split.column_names and "labels" not in split.column_names, name
        outcomes[variant] = (_stage_trace(results), recipe.model.state_dict())
    assert outcomes["corrupt"][0] == outcomes["true"][0]
    true_weights, corrupt_weights = outcomes["true"][1], outcomes["corrupt"][1]
    assert true_weights.keys() == corrupt_weights.keys()
    assert all(torch.equal(true_weights[k], corrupt_weights[k]) for k in true_weights)


# --- resume -----------------------------------------------------------------------------------


def _interrupt(full, copy, stage: str, keep: int):
    """What a run killed in ``stage`` after its first ``keep`` checkpoints leaves on disk."""
    shutil.copytree(full, copy)
    for path in ("results.json", "model", "report.md", "report", f"checkpoints/{stage}/result.json"):
        target = copy / path
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for later in sorted((copy / "checkpoints" / stage).glob("step_*"))[keep:]:
        shutil.rmtree(later)


def test_tapt_resumes_across_its_two_stages(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "strategy.name": "tapt", "tuning.method": "full",
                 "training.learning_rate": 2e-3, "training.eval_strategy": "steps",
                 "training.eval_steps": 6, "training.save_total_limit": 100,
                 "output.dir": str(tmp_path / "full")}
    _, uninterrupted = _run(overrides)
    # Killed after the MLM stage finished (before any source checkpoint), and in the middle
    # of the source stage.
    for name, keep in (("mlm_done", 0), ("source_midway", 2)):
        _interrupt(tmp_path / "full", tmp_path / name, "source", keep)
        _, resumed = _run({**overrides, "output.dir": str(tmp_path / name),
                           "output.resume_from_checkpoint": "latest"})
        assert resumed["eval_matrix"] == uninterrupted["eval_matrix"], name
        assert resumed["best_step"] == uninterrupted["best_step"], name
        assert resumed["masked_lm"]["loss_after"] == uninterrupted["masked_lm"]["loss_after"]
        assert resumed["stages"][0] == uninterrupted["stages"][0]  # restored, not rerun


def test_dann_resumes_midway_with_the_target_batches_where_they_were(tiny_overrides, tmp_path):
    overrides = {**tiny_overrides, "strategy.name": "dann", "tuning.method": "full",
                 "training.learning_rate": 2e-3, "training.eval_strategy": "steps",
                 "training.eval_steps": 10, "training.save_total_limit": 100,
                 "output.dir": str(tmp_path / "full")}
    _, uninterrupted = _run(overrides)
    # 16 batches per epoch: step 20 is in the second pass over the target text.
    _interrupt(tmp_path / "full", tmp_path / "cut", "source", keep=2)
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints" / "source").glob("step_*"))[-1] == "step_0000020"
    _, resumed = _run({**overrides, "output.dir": str(tmp_path / "cut"),
                       "output.resume_from_checkpoint": "latest"})
    assert resumed["eval_matrix"] == uninterrupted["eval_matrix"]
    assert _stage_trace(resumed) == _stage_trace(uninterrupted)


# --- two processes ------------------------------------------------------------------------------


# ~30 s each on 2 busy cores: dann (the wrapped discriminator under DDP, the sharded target
# batches) runs by default, tapt with `-m slow`.
@pytest.mark.parametrize("strategy", ["dann", "self_training", pytest.param("tapt", marks=pytest.mark.slow)])
def test_two_processes(tiny_overrides, tmp_path, strategy):
    run_dir = tmp_path / "run"
    overrides = {**tiny_overrides, "strategy.name": strategy, "training.num_epochs": 1}
    done = launch(SCRIPT, overrides_to_args(overrides), num_processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["environment"]["num_processes"] == 2
    for role in ("source", "target"):
        for split in ("validation", "test"):
            assert results["eval_matrix"][f"{role}/{split}"]["n"] == results["data"][role]["splits"][split]
    if strategy == "self_training":  # every process selected the same pseudo-labels (else DDP hangs)
        assert len(results["self_training"]["rounds"]) == 2
    if strategy == "tapt":
        assert results["masked_lm"]["loss_after"] < results["masked_lm"]["loss_before"]
        assert (run_dir / "mlm_encoder" / "config.json").is_file()
    classifier = load_classifier(run_dir / "model")
    assert classifier.predict(["great flight"])[0] in results["labels"]
