"""Tiny, offline test assets: a small BERT checkpoint and small domain datasets.

Plain functions, importable from tests and ``conftest.py``. Nothing here touches the
network: the tokenizer is built with the ``tokenizers`` library from a fixed word list
and the model is randomly initialised from a fixed seed.

- :func:`build_tiny_bert` writes a folder that ``AutoTokenizer``,
  ``AutoModelForSequenceClassification`` and ``AutoModelForMaskedLM`` load offline.
  The checkpoint is an encoder only (``BertModel`` weights, like a real pretrained
  encoder such as MiniLM), so classification and MLM heads are freshly initialised on
  load unless ``with_mlm_head=True``.
- :func:`write_tiny_domain_data` writes a learnable 3-class sentiment task for two
  domains (airline -> ``source.csv``; apple -> ``target.jsonl`` / ``target.parquet``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_LENGTH = 128

# --------------------------------------------------------------------------------------
# Vocabulary of the tiny datasets
# --------------------------------------------------------------------------------------

DOMAINS: dict[str, dict[str, list[str]]] = {
    "airline": {
        "nouns": [
            "flight", "seat", "crew", "airport", "luggage", "pilot", "boarding", "gate",
            "plane", "ticket", "lounge", "meal", "landing", "baggage", "cabin", "checkin",
        ],
        "brands": ["united", "delta", "jetblue", "southwest", "virgin", "americanair"],
        "actions": ["flew", "booked", "boarded", "checked"],
    },
    "apple": {
        "nouns": [
            "phone", "laptop", "store", "battery", "screen", "iphone", "ipad", "charger",
            "update", "keyboard", "watch", "camera", "macbook", "app", "headphones", "ios",
        ],
        "brands": ["apple", "iphone", "genius", "itunes", "icloud", "siri"],
        "actions": ["bought", "used", "installed", "ordered"],
    },
}

# Shared across domains, so a sentiment classifier trained on one transfers to the other.
SENTIMENT_WORDS: dict[str, list[str]] = {
    "positive": [
        "great", "love", "excellent", "amazing", "wonderful", "fantastic", "perfect",
        "awesome", "friendly", "best",
    ],
    "negative": [
        "terrible", "awful", "delayed", "horrible", "broken", "worst", "rude", "poor",
        "disappointing", "useless",
    ],
    "neutral": [
        "okay", "scheduled", "informed", "standard", "average", "usual", "normal",
        "ordinary", "listed", "expected",
    ],
}

# Templates: {noun}, {brand}, {action}, and two different sentiment words {s}, {s2} of
# the row's class. The same templates serve every class and both domains, so only the
# sentiment words carry the label. Two sentiment words per sentence (rather than one) make
# the tiny random-init encoder leave its initial plateau reliably within a few epochs.
TEMPLATES: tuple[str, ...] = (
    "the {noun} was {s} , {s2}",
    "{s} {noun} , {s2} {brand}",
    "@{brand} {s} {noun} , {s2}",
    "i {action} with {brand} : {s} and {s2}",
    "{s} , {s2} {noun} today",
    "{brand} {noun} is {s} and {s2}",
    "my {noun} : {s} , really {s2}",
    "{s} {noun} again , {s2} as always",
)

# About 200 common English words (function words, pronouns, frequent verbs and nouns).
COMMON_WORDS: tuple[str, ...] = tuple(
    """
    the of and to in is it you that he was for on are as with his they at be this
    have from or one had by word but not what all were we when your can said there
    use an each which she do how their if will up other about out many then them
    these so some her would make like him into time has look two more write go see
    number no way could people my than first water been call who oil its now find
    long down day did get come made may part over new sound take only little work
    know place year live me back give most very after thing our just name good
    sentence man think say help low line differ turn cause much mean before move
    right boy old too same tell does set three want air well also play small end put
    home read hand port large spell add even land here must big high such follow act
    why ask men change went light kind off need house picture try us again animal
    point mother world near build self earth father i am really service customer
    staff bad happy sad today thanks
    """.split()
)

PUNCTUATION: tuple[str, ...] = tuple(".,!?'\"-:;()@#/&$%*+=_")


def _dataset_words() -> list[str]:
    words: list[str] = []
    for domain in DOMAINS.values():
        for group in domain.values():
            words.extend(group)
    for group in SENTIMENT_WORDS.values():
        words.extend(group)
    for template in TEMPLATES:
        for piece in template.replace("{", " {").replace("}", "} ").split():
            if not piece.startswith("{"):
                words.append(piece)
    return words


def default_vocab_words() -> list[str]:
    """The built-in word list: common English words plus every word of the tiny data."""
    return list(COMMON_WORDS) + _dataset_words()


def build_vocab(vocab_words: list[str] | None = None) -> dict[str, int]:
    """Token -> id. Special tokens first ([PAD]=0 ... [MASK]=4), then punctuation,
    single letters/digits and their ``##`` continuations (so any lower-case ASCII word
    splits into known pieces instead of [UNK]), then the lower-cased words, deduplicated
    in first-seen order."""
    words = default_vocab_words() if vocab_words is None else vocab_words
    chars = [*"abcdefghijklmnopqrstuvwxyz", *"0123456789"]
    ordered = [
        *SPECIAL_TOKENS,
        *PUNCTUATION,
        *chars,
        *(f"##{c}" for c in chars),
        *(w.lower() for w in words),
    ]
    vocab: dict[str, int] = {}
    for token in ordered:
        token = token.strip()
        if token and token not in vocab:
            vocab[token] = len(vocab)
    return vocab


# --------------------------------------------------------------------------------------
# Tiny BERT
# --------------------------------------------------------------------------------------


def build_tiny_tokenizer(vocab: dict[str, int]):
    """A BERT-style WordPiece ``PreTrainedTokenizerFast`` over ``vocab``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_LENGTH,
        padding_side="right",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def tiny_bert_config(vocab_size: int, num_labels: int | None = None):
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=0,
        # 0.05 rather than BERT's 0.02: with 0.02 the random tiny encoder often stalls for
        # many steps at chance or with two classes merged (AdamW lr 1e-3, batch 16); with
        # 0.05 it learns the tiny sentiment task in ~5 epochs for every seed tried. Trained
        # encoders have larger weights than a 0.02 init anyway. The fresh classifier head
        # is initialised from this value too.
        initializer_range=0.05,
    )
    if num_labels is not None:
        config.num_labels = num_labels
    return config


def build_tiny_bert(
    folder: Path,
    vocab_words: list[str] | None = None,
    num_labels: int | None = None,
    seed: int = 0,
    *,
    with_mlm_head: bool = False,
) -> Path:
    """Write a tiny pretrained-encoder folder (config, safetensors weights, tokenizer).

    The weights are an encoder-only ``BertModel`` checkpoint (unprefixed keys
    ``embeddings.*``, ``encoder.*``, ``pooler.*``; ``architectures=["BertModel"]``), so
    ``AutoModelForSequenceClassification.from_pretrained(folder, num_labels=k)`` gives a
    freshly initialised ``classifier``, exactly as for a real pretrained encoder.
    ``num_labels`` only sets ``config.num_labels`` (default 2, transformers' default).
    With ``with_mlm_head=True`` the checkpoint is a ``BertForPreTraining`` one (like
    ``bert-base-uncased``), so ``AutoModelForMaskedLM`` also finds its MLM head.

    Deterministic: the same ``seed`` (and vocabulary) gives byte-identical
    ``model.safetensors``.
    """
    import torch
    from transformers import BertForPreTraining, BertModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(vocab_words)
    config = tiny_bert_config(len(vocab), num_labels)

    # Seed a private generator state without leaking into the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if with_mlm_head:
            config.architectures = ["BertForPreTraining"]
            model = BertForPreTraining(config)
        else:
            config.architectures = ["BertModel"]
            model = BertModel(config, add_pooling_layer=True)
    model.eval()
    # Quiet the "Writing model shards" progress bar of this save only.
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)  # writes model.safetensors
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()

    tokenizer = build_tiny_tokenizer(vocab)
    tokenizer.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------------------
# Tiny domain datasets
# --------------------------------------------------------------------------------------


def make_domain_rows(domain: str, n_per_class: int = 128, seed: int = 0) -> list[dict[str, str]]:
    """``n_per_class`` rows per label for ``domain`` ("airline" or "apple"), shuffled.

    Every sentence is a template filled with a domain noun/brand/verb and one sentiment
    word; the same templates serve all classes, so the sentiment word decides the label.
    Sentences are unique within a class as long as the combinations allow it.
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose from {sorted(DOMAINS)}")
    rng = random.Random(f"{domain}-{seed}")
    parts = DOMAINS[domain]
    rows: list[dict[str, str]] = []
    for label in LABELS:
        seen: set[str] = set()
        tries = 0
        while len(seen) < n_per_class:
            s, s2 = rng.sample(SENTIMENT_WORDS[label], 2)
            text = rng.choice(TEMPLATES).format(
                noun=rng.choice(parts["nouns"]),
                brand=rng.choice(parts["brands"]),
                action=rng.choice(parts["actions"]),
                s=s,
                s2=s2,
            )
            tries += 1
            if text in seen and tries < 100 * n_per_class:
                continue
            seen.add(text)
            rows.append({"text": text, "label": label, "domain": domain})
    rng.shuffle(rows)
    return rows


def write_tiny_domain_data(folder: Path, n_per_class: int = 128, seed: int = 0) -> dict[str, Path]:
    """Write ``source.csv`` (airline), ``target.jsonl`` and ``target.parquet`` (apple,
    same rows) with columns ``text``, ``label`` (a name from :data:`LABELS`), ``domain``.

    Returns ``{"source": ..csv, "target": ..jsonl, "target_jsonl": ..jsonl,
    "target_parquet": ..parquet}``.
    """
    import csv

    import pandas as pd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source_rows = make_domain_rows("airline", n_per_class, seed)
    target_rows = make_domain_rows("apple", n_per_class, seed)
    columns = ["text", "label", "domain"]

    source = folder / "source.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(source_rows)

    target_jsonl = folder / "target.jsonl"
    with target_jsonl.open("w", encoding="utf-8") as f:
        for row in target_rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    target_parquet = folder / "target.parquet"
    pd.DataFrame(target_rows, columns=columns).to_parquet(target_parquet, index=False)

    return {
        "source": source,
        "target": target_jsonl,
        "target_jsonl": target_jsonl,
        "target_parquet": target_parquet,
    }
