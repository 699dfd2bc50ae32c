"""Tokenize once, pad per batch (dynamic padding), build data loaders.

Padding is the main waste of a transformer on short texts: a random batch of tweets pads
every row to its longest one. With ``group_by_length`` the training loader draws batches of
similar lengths (:class:`LengthGroupedSampler`, seeded and re-shuffled every epoch) and the
evaluation loader visits rows longest first (:class:`LongestFirstSampler`); both keep the
row index ``idx`` so results are matched to rows whatever the order.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import DataCollatorWithPadding

# Columns that reach the model; anything else (text, group, length) stays on the host.
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")
# How many batches one sorted "megabatch" holds: larger pads less, smaller mixes more.
MEGABATCH_BATCHES = 50


def tokenize(data: datasets.DatasetDict, tokenizer, max_length: int,
             text_prefix: str = "") -> datasets.DatasetDict:
    """Add token ids (truncated to ``max_length``, unpadded), their count ``length`` and a row
    index ``idx``.

    ``idx`` travels through evaluation so predictions can be matched to rows (and their
    group) whatever order the distributed sampler returns them in.
    """
    def encode(batch, indices):
        texts = [text_prefix + text for text in batch["text"]] if text_prefix else batch["text"]
        out = tokenizer(texts, truncation=True, max_length=max_length)
        out["length"] = [len(ids) for ids in out["input_ids"]]
        out["idx"] = indices
        return out

    return data.map(encode, batched=True, with_indices=True, desc="Tokenizing")


class LengthGroupedSampler(Sampler[int]):
    """Row indices in an order where every ``batch_size`` consecutive ones have similar lengths.

    Per epoch (seeded by the seed and the epoch, so a resumed run sees the same batches): shuffle
    the rows, cut them into megabatches of ``MEGABATCH_BATCHES`` batches, sort each by length,
    cut it into batches, then shuffle the batches in groups of ``num_processes`` neighbours
    (under DDP the processes of one step get batches of similar lengths, so none waits on a
    longer one). The one partial batch, if any, stays last: a ``BatchSampler`` over this
    order then yields exactly these batches, and every row once per epoch.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, num_processes: int = 1):
        self.lengths = torch.as_tensor(np.asarray(lengths, dtype=np.int64))
        self.batch_size = batch_size
        self.seed = seed
        self.num_processes = max(1, num_processes)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        # One index at a time: a list of every row's would cost ~36 bytes a row (a large corpus).
        return map(int, self.order().numpy())

    def order(self) -> torch.Tensor:
        """This epoch's order, flat."""
        # Not seed + epoch: seed 7 at epoch 1 would repeat seed 8 at epoch 0.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator)
        size = self.batch_size * MEGABATCH_BATCHES
        batches = []
        for start in range(0, len(order), size):
            mega = order[start:start + size]
            mega = mega[torch.argsort(self.lengths[mega], descending=True, stable=True)]
            batches += [mega[i:i + self.batch_size] for i in range(0, len(mega), self.batch_size)]
        last = batches.pop() if batches and len(batches[-1]) < self.batch_size else None
        groups = [batches[i:i + self.num_processes] for i in range(0, len(batches), self.num_processes)]
        shuffled = [b for g in torch.randperm(len(groups), generator=generator).tolist() for b in groups[g]]
        if last is not None:
            shuffled.append(last)
        return torch.cat(shuffled) if shuffled else torch.empty(0, dtype=torch.long)


class LongestFirstSampler(Sampler[int]):
    """Evaluation order: longest rows first (similar lengths share a batch, and a batch that
    does not fit in memory fails at once, not at the end)."""

    def __init__(self, lengths: Sequence[int]):
        self.order = torch.argsort(torch.as_tensor(np.asarray(lengths, dtype=np.int64)), descending=True,
                                   stable=True).tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)


def row_lengths(split: datasets.Dataset) -> np.ndarray:
    """Token counts per row: the ``length`` column :func:`tokenize` adds (one array, not a
    Python int per row), or counted."""
    if "length" in split.column_names:
        return split.with_format("numpy", columns=["length"])[:]["length"]
    return np.array([len(ids) for ids in split["input_ids"]], dtype=np.int64)


def make_loader(split: datasets.Dataset, tokenizer, batch_size: int, shuffle: bool,
                seed: int = 0, group_by_length: bool = False, num_processes: int = 1,
                pad_to_multiple_of: Optional[int] = None) -> DataLoader:
    """A loader over the model's columns (and ``idx``), padded per batch.

    ``shuffle`` with ``group_by_length``: :class:`LengthGroupedSampler`; without it, seeded
    random order. Not shuffled with ``group_by_length``: longest rows first; without it, in
    order.
    """
    columns = [c for c in (*MODEL_COLUMNS, "idx") if c in split.column_names]
    collate = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    data = split.with_format("torch", columns=columns)
    # A generator of its own keeps the loader off the global RNG (dropout): without one, even
    # a sampler that never draws makes each new iterator take a seed from it, so a resumed run
    # would see other dropout masks than an uninterrupted one.
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    if group_by_length:
        lengths = row_lengths(split)
        sampler = LengthGroupedSampler(lengths, batch_size, seed, num_processes) if shuffle \
            else LongestFirstSampler(lengths)
        return DataLoader(data, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                          generator=generator)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
                      generator=generator)
