"""Test assets for the recipes that start from a source classifier (label space, conditional
shift): a small trained source classifier saved like a run's model, and tiny target data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from transformers import AutoTokenizer

from tiny_assets import LABELS

TEXTS = ["great flight and friendly crew", "the battery is broken", "my phone update is okay"]


def train_source_classifier(folder: Path, tiny_model: Path, source_csv: Path,
                            method: str = "full", epochs: int = 6) -> Path:
    """Train a tiny sentiment classifier on ``source_csv`` with a plain loop and save it with
    ``save_classifier`` (a full model, or a LoRA adapter): what a finished run leaves."""
    from hf_transfer.config import ModelConfig, TuningConfig
    from hf_transfer.modeling import load_classifier_model
    from hf_transfer.saving import save_classifier
    from hf_transfer.tuning import apply_tuning

    rows = list(csv.DictReader(Path(source_csv).open()))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, new_modules = load_classifier_model(ModelConfig(name_or_path=str(tiny_model)), list(LABELS))
        model = apply_tuning(model, TuningConfig(method=method, lora_r=4), new_modules)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=2e-3 if method == "full" else 1e-2)
        model.train()
        order = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            for batch_rows in torch.randperm(len(rows), generator=order).split(16):
                batch = tokenizer([rows[i]["text"] for i in batch_rows], padding=True,
                                  return_tensors="pt")
                labels = torch.tensor([LABELS.index(rows[i]["label"]) for i in batch_rows])
                model(**batch, labels=labels).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
    model.eval()
    return save_classifier(model, tokenizer, folder, list(LABELS), str(tiny_model), 32, method)


def shared_source_classifier(tmp_path_factory, tiny_model: Path, source_csv: Path) -> Path:
    """One trained source classifier per test session (both test modules use it)."""
    folder = Path(tmp_path_factory.getbasetemp()) / "shared_source_classifier"
    if not (folder / "hf_transfer.json").is_file():
        train_source_classifier(folder, tiny_model, source_csv)
    return folder


def write_topic_data(folder: Path, tiny_data: dict) -> Path:
    """Other labels: the topic (airline / apple) of the tiny source and target rows."""
    rows = [{**r, "topic": r["domain"]} for r in csv.DictReader(tiny_data["source"].open())]
    rows += [{**r, "topic": r["domain"]} for r in _jsonl(tiny_data["target"])]
    return _write_csv(Path(folder) / "topics.csv", rows)


def write_renamed_data(folder: Path, tiny_data: dict) -> Path:
    """Overlapping labels: the apple rows with `neutral` renamed to `meh` (negative and
    positive keep their names)."""
    rows = [{**r, "label": "meh" if r["label"] == "neutral" else r["label"]}
            for r in _jsonl(tiny_data["target"])]
    return _write_csv(Path(folder) / "renamed.csv", rows)


SHIFT_WORDS = ("okay", "average")


def write_shifted_data(folder: Path, tiny_data: dict) -> Path:
    """A conditional shift: the apple rows where neutral texts with `okay` or `average` are now
    labelled positive (column `policy`: moved / unchanged)."""
    rows = []
    for r in _jsonl(tiny_data["target"]):
        moved = r["label"] == "neutral" and any(w in r["text"].split() for w in SHIFT_WORDS)
        rows.append({**r, "label": "positive" if moved else r["label"],
                     "policy": "moved" if moved else "unchanged"})
    return _write_csv(Path(folder) / "shifted.csv", rows)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_word_shift_data(folder: Path, n: int = 120, seed: int = 0) -> dict:
    """A learnable domain shift for the transductive strategies (`dann`, `self_training`):
    binary sentiment where the class is one shared sentiment word and the domain shows in three
    domain words (airline nouns and brands -> source.csv; apple ones -> target.csv), shuffled."""
    import random

    from tiny_assets import DOMAINS, SENTIMENT_WORDS

    paths = {}
    for role, domain, offset in (("source", "airline", 1), ("target", "apple", 2)):
        rng, words = random.Random(seed * 10 + offset), DOMAINS[domain]
        rows = []
        for i in range(n):
            label = ("negative", "positive")[i % 2]
            text = [rng.choice(SENTIMENT_WORDS[label]), rng.choice(words["nouns"]),
                    rng.choice(words["brands"]), rng.choice(words["nouns"])]
            rng.shuffle(text)
            rows.append({"text": " ".join(text), "label": label, "domain": domain})
        paths[role] = _write_csv(Path(folder) / f"{role}.csv", rows)
    return paths
