"""Tokenize once, pad per batch (dynamic padding), build data loaders."""

from __future__ import annotations

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

# Columns that reach the model; anything else (text, group) stays on the host.
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def tokenize(data: datasets.DatasetDict, tokenizer, max_length: int,
             text_prefix: str = "") -> datasets.DatasetDict:
    """Add token ids (truncated to ``max_length``, unpadded) and a row index ``idx``.

    ``idx`` travels through evaluation so predictions can be matched to rows (and their
    group) whatever order the distributed sampler returns them in.
    """
    def encode(batch, indices):
        texts = [text_prefix + text for text in batch["text"]] if text_prefix else batch["text"]
        out = tokenizer(texts, truncation=True, max_length=max_length)
        out["idx"] = indices
        return out

    return data.map(encode, batched=True, with_indices=True, desc="Tokenizing")


def make_loader(split: datasets.Dataset, tokenizer, batch_size: int, shuffle: bool,
                seed: int = 0) -> DataLoader:
    columns = [c for c in (*MODEL_COLUMNS, "idx") if c in split.column_names]
    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None)
    # A generator of its own keeps shuffling independent of the global RNG (dropout), so a
    # resumed run sees the same batches and the same dropout masks as an uninterrupted one.
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        split.with_format("torch", columns=columns), batch_size=batch_size, shuffle=shuffle,
        collate_fn=collate, generator=generator,
    )
