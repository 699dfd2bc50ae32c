"""Tests for the offline test assets in ``tests/tiny_assets.py``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tiny_assets import (
    LABELS,
    SPECIAL_TOKENS,
    build_tiny_bert,
    build_vocab,
    write_tiny_domain_data,
)

N_PER_CLASS = 128


@pytest.fixture
def offline(monkeypatch):
    """Hub offline mode for this test. ``HF_HUB_OFFLINE`` is read once at import time by
    huggingface_hub (and copied by datasets), so the env var alone is not enough once
    those are imported: patch the module constants too."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


# Own module-scoped fixtures (not conftest's ``tiny_model``/``tiny_data``), so these tests
# pin the defaults they check.
@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def domain_files(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_domain_data(tmp_path_factory.mktemp("tiny_data"), n_per_class=N_PER_CLASS)


def _safetensors_keys(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return set(f.keys())


# --------------------------------------------------------------------------------------
# Model folder
# --------------------------------------------------------------------------------------


def test_weights_are_deterministic_per_seed(tmp_path, bert_dir):
    again = build_tiny_bert(tmp_path / "again", seed=0)
    other = build_tiny_bert(tmp_path / "other", seed=1)
    weights = (bert_dir / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == weights
    assert (other / "model.safetensors").read_bytes() != weights
    assert (again / "tokenizer.json").read_bytes() == (bert_dir / "tokenizer.json").read_bytes()


def test_build_does_not_touch_global_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_bert(tmp_path / "m")
    assert torch.equal(torch.rand(3), expected)


def test_checkpoint_is_an_encoder_without_heads(bert_dir):
    config = json.loads((bert_dir / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    assert config["model_type"] == "bert"
    assert (config["hidden_size"], config["num_hidden_layers"]) == (32, 2)
    assert config["vocab_size"] == len(build_vocab())
    keys = _safetensors_keys(bert_dir)
    assert "embeddings.word_embeddings.weight" in keys
    assert "pooler.dense.weight" in keys
    assert not any(k.startswith(("classifier", "cls.")) for k in keys)


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------


def test_tokenizer_round_trip_offline(offline, bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bert_dir)
    assert tok.model_max_length == 128
    assert [tok.pad_token, tok.unk_token, tok.cls_token, tok.sep_token, tok.mask_token] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    ]
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == [0, 1, 2, 3, 4]

    enc = tok(["a text", "another text about the flight"], padding=True)
    assert set(enc) == {"input_ids", "token_type_ids", "attention_mask"}
    first, second = enc["input_ids"]
    assert len(first) == len(second)
    assert first[0] == second[0] == tok.cls_token_id
    assert second[-1] == tok.sep_token_id
    assert first[-1] == tok.pad_token_id and enc["attention_mask"][0][-1] == 0

    # Lower-cased, punctuation split off, decoded back.
    ids = tok("The Flight was GREAT!")["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens == ["[CLS]", "the", "flight", "was", "great", "!", "[SEP]"]
    assert tok.decode(ids, skip_special_tokens=True) == "the flight was great!"
    # Unknown ASCII words fall back to letter pieces, not [UNK].
    assert tok.unk_token_id not in tok("zyxwv qqq")["input_ids"]

    pair = tok("great seat", "awful crew")
    assert pair["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]


def test_custom_vocab_words(tmp_path, offline):
    from transformers import AutoTokenizer

    folder = build_tiny_bert(tmp_path / "m", vocab_words=["Hello", "world", "hello"])
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.tokenize("hello World") == ["hello", "world"]
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == len(tok)


# --------------------------------------------------------------------------------------
# Loading with heads
# --------------------------------------------------------------------------------------


def test_sequence_classification_head_is_fresh(offline, bert_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bert_dir)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        bert_dir, num_labels=3, output_loading_info=True
    )
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    model.eval()
    batch = tok(["the seat was great", "awful"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 3)


def test_num_labels_and_mlm_head_options(tmp_path, offline):
    from transformers import (
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    folder = build_tiny_bert(tmp_path / "m", num_labels=3, with_mlm_head=True)
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.num_labels == 3
    _, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"]  # the MLM head comes from the checkpoint
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.convert_ids_to_tokens(tok("x")["input_ids"]) == ["[CLS]", "x", "[SEP]"]


def test_masked_lm_loads_from_encoder_checkpoint(offline, bert_dir):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bert_dir)
    model = AutoModelForMaskedLM.from_pretrained(bert_dir).eval()
    # Decoder tied to the input embeddings; transform + bias freshly initialised.
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    batch = tok([f"the flight was {tok.mask_token}"], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tok))


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def test_data_files_load_and_are_balanced(offline, domain_files, tmp_path):
    from datasets import load_dataset

    def load(builder: str, key: str):
        return load_dataset(
            builder, data_files=str(domain_files[key]), split="train", cache_dir=str(tmp_path)
        )

    source = load("csv", "source")
    jsonl = load("json", "target_jsonl")
    parquet = load("parquet", "target_parquet")
    assert domain_files["target"] == domain_files["target_jsonl"]

    for ds, domain in [(source, "airline"), (jsonl, "apple"), (parquet, "apple")]:
        assert ds.column_names == ["text", "label", "domain"]
        assert Counter(ds["label"]) == {label: N_PER_CLASS for label in LABELS}
        assert set(ds["domain"]) == {domain}
        assert len(set(ds["text"])) == len(ds)  # no duplicate sentences
    assert jsonl.to_list() == parquet.to_list()
    # Different vocabularies per domain.
    assert "flight" in " ".join(source["text"]) and "flight" not in " ".join(jsonl["text"])


def test_data_is_deterministic_per_seed(tmp_path):
    a = write_tiny_domain_data(tmp_path / "a", n_per_class=8, seed=0)
    b = write_tiny_domain_data(tmp_path / "b", n_per_class=8, seed=0)
    c = write_tiny_domain_data(tmp_path / "c", n_per_class=8, seed=1)
    for key in ("source", "target_jsonl"):
        assert a[key].read_bytes() == b[key].read_bytes()
        assert a[key].read_bytes() != c[key].read_bytes()


def test_tiny_model_learns_source_and_transfers(offline, bert_dir, domain_files):
    """AdamW lr 1e-3, batch 16, 5 epochs on source.csv: > 0.8 train accuracy, and the
    sentiment words shared across domains carry it to the target well above chance."""
    import pandas as pd

    label_ids = {label: i for i, label in enumerate(LABELS)}
    source = pd.read_csv(domain_files["source"])
    target = pd.read_json(domain_files["target_jsonl"], lines=True)
    texts, y = list(source["text"]), torch.tensor([label_ids[v] for v in source["label"]])

    # One thread: for a model this small a second OpenMP thread buys nothing, and when the
    # other core is busy it made this loop ~50x slower here (64 s instead of 1.2 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        source_acc, target_acc = _train_and_score(bert_dir, texts, y, source, target, label_ids)
    finally:
        torch.set_num_threads(threads)
    assert source_acc > 0.8
    assert target_acc > 0.6


def _train_and_score(bert_dir, texts, y, source, target, label_ids):
    import pandas as pd
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(bert_dir)
    model = AutoModelForSequenceClassification.from_pretrained(bert_dir, num_labels=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        model.train()
        order = torch.randperm(len(texts), generator=generator)
        for start in range(0, len(texts), 16):
            idx = order[start : start + 16]
            batch = tok([texts[i] for i in idx], padding=True, return_tensors="pt")
            loss = model(**batch, labels=y[idx]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    def accuracy(frame: pd.DataFrame) -> float:
        model.eval()
        gold = torch.tensor([label_ids[v] for v in frame["label"]])
        with torch.no_grad():
            pred = model(**tok(list(frame["text"]), padding=True, return_tensors="pt")).logits
        return (pred.argmax(-1) == gold).float().mean().item()

    return accuracy(source), accuracy(target)
