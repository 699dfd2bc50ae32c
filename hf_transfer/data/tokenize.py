"""Tokenize once, pad per batch (dynamic padding), build data loaders.

Padding is the main waste of a transformer on short texts: a random batch of tweets pads
every row to its longest one. With ``group_by_length`` the training loader draws batches of
similar lengths (:class:`LengthGroupedSampler`, seeded and re-shuffled every epoch) and the
evaluation loader visits rows longest first (:class:`LongestFirstSampler`); both keep the
row index ``idx`` so results are matched to rows whatever the order.
"""

from __future__ import annotations

import json
from typing import Iterator, Optional, Sequence

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader, Sampler
from datasets.fingerprint import Hasher

from .cache import data_code_hash
from .columns import column_values

# Columns that reach the model; anything else (text, group, length) stays on the host.
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")
# How many batches one sorted "megabatch" holds: larger pads less, smaller mixes more.
MEGABATCH_BATCHES = 50


def tokenize(data: datasets.DatasetDict, tokenizer, max_length: int,
             text_prefix: str = "") -> datasets.DatasetDict:
    """Add token ids (truncated to ``max_length``, unpadded), their count ``length`` and a row
    index ``idx``.

    ``idx`` travels through evaluation so predictions can be matched to rows (and their
    group) whatever order the distributed sampler returns them in. Each split's result is
    fingerprinted from its input's fingerprint and these settings (cheaply, without pickling
    the tokenizer), so data read from the prepared-data cache (:mod:`.cache`) is tokenized
    once and then read from ``datasets``' cache.
    """
    def encode(batch, indices):
        texts = [text_prefix + text for text in batch["text"]] if text_prefix else batch["text"]
        out = tokenizer(texts, truncation=True, max_length=max_length)
        out["length"] = [len(ids) for ids in out["input_ids"]]
        out["idx"] = indices
        return out

    settings = ("tokenize", tokenizer_fingerprint(tokenizer), max_length, text_prefix)
    return datasets.DatasetDict({
        name: split.map(encode, batched=True, with_indices=True, desc="Tokenizing",
                        new_fingerprint=derived_fingerprint(split, settings))
        for name, split in data.items()})


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the token ids a tokenizer gives: for a fast tokenizer its whole
    serialised pipeline (vocabulary, normaliser, added tokens, post-processor) and truncation
    side, hashed in milliseconds; otherwise ``datasets``' hash of the pickled object."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return Hasher.hash(tokenizer)
    pipeline = json.loads(backend.to_str())
    # Truncation and padding are set per call (the call's max_length): not the tokenizer's own.
    pipeline.pop("truncation", None), pipeline.pop("padding", None)
    return Hasher.hash((type(tokenizer).__name__, json.dumps(pipeline, sort_keys=True),
                        tokenizer.truncation_side, list(tokenizer.model_input_names)))


def derived_fingerprint(split: datasets.Dataset, settings: tuple) -> str:
    """The fingerprint of what a transform with ``settings`` makes of ``split``: the input's
    fingerprint, the settings and the data code's source (a changed transform is a new one)."""
    return Hasher.hash((split._fingerprint, settings, data_code_hash()))


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
    return np.array([len(ids) for ids in column_values(split, "input_ids")], dtype=np.int64)


class PaddedBatches(torch.utils.data.Dataset):
    """Tokenized rows read a batch at a time; a list of row indices becomes one padded batch.

    What ``DataCollatorWithPadding`` makes of the same rows (each token column padded to the
    batch's longest row, rounded up to ``pad_to_multiple_of``, on the tokenizer's padding
    side; int64 tensors), but gathered with one Arrow ``take`` and a few numpy operations per
    batch instead of one dict of tensors per row and a Python collation (the loaders' host work
    per step). The rows stay in the dataset's memory-mapped Arrow files: a corpus larger than
    memory is read batch by batch, never held. A ``DataLoader`` passes each batch's indices to
    :meth:`__getitems__` at once.
    """

    def __init__(self, split: datasets.Dataset, columns: Sequence[str], tokenizer,
                 pad_to_multiple_of: Optional[int] = None):
        self.source = split.select_columns(list(columns)).with_format("arrow")
        self.multiple = pad_to_multiple_of
        self.right = tokenizer.padding_side == "right"
        schema = self.source.features.arrow_schema
        self.token_columns = {name: _pad_value(tokenizer, name) for name in columns
                              if _is_list(schema.field(name).type)}
        self.row_columns = [name for name in columns if name not in self.token_columns]

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, row: int) -> dict:
        return {name: values[0] for name, values in self.__getitems__([row]).items()}

    def __getitems__(self, rows: Sequence[int]) -> dict:
        table = self.source[[int(r) for r in rows]]
        batch = {}
        if self.token_columns:
            first = table.column(next(iter(self.token_columns))).combine_chunks()
            lengths = pc.list_value_length(first).to_numpy(zero_copy_only=False).astype(np.int64)
            width = int(lengths.max())
            if self.multiple:
                width = -(-width // self.multiple) * self.multiple
            positions = np.arange(width)
            real = positions < lengths[:, None] if self.right else positions >= (width - lengths)[:, None]
            for name, pad in self.token_columns.items():
                # The flattened list column holds the real tokens row after row: the order of
                # the True cells of `real`.
                flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
                padded = np.full((len(lengths), width), pad, dtype=np.int64)
                padded[real] = flat
                batch[name] = torch.from_numpy(padded)
        for name in self.row_columns:
            values = table.column(name).to_numpy().astype(np.int64)
            batch[name] = torch.from_numpy(values)
        return batch


def _is_list(arrow_type) -> bool:
    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)


def _pad_value(tokenizer, column: str) -> int:
    """What ``tokenizer.pad`` fills ``column`` with."""
    if column == "input_ids":
        if tokenizer.pad_token_id is None:
            raise ValueError("The tokenizer has no padding token: batches cannot be padded.")
        return tokenizer.pad_token_id
    if column == "token_type_ids":
        return tokenizer.pad_token_type_id
    return 0  # attention_mask


def _batch_as_is(batch: dict) -> dict:
    """The collate function: :meth:`PaddedBatches.__getitems__` made the batch already."""
    return batch


def make_loader(split: datasets.Dataset, tokenizer, batch_size: int, shuffle: bool,
                seed: int = 0, group_by_length: bool = False, num_processes: int = 1,
                pad_to_multiple_of: Optional[int] = None) -> DataLoader:
    """A loader over the model's columns (and ``idx``), padded per batch
    (:class:`PaddedBatches`); on CUDA its batches are in pinned memory, so the copy to the
    GPU can overlap (the Accelerator's ``non_blocking``).

    ``shuffle`` with ``group_by_length``: :class:`LengthGroupedSampler`; without it, seeded
    random order. Not shuffled with ``group_by_length``: longest rows first; without it, in
    order.
    """
    columns = [c for c in (*MODEL_COLUMNS, "idx") if c in split.column_names]
    data = PaddedBatches(split, columns, tokenizer, pad_to_multiple_of)
    # A generator of its own keeps the loader off the global RNG (dropout): without one, even
    # a sampler that never draws makes each new iterator take a seed from it, so a resumed run
    # would see other dropout masks than an uninterrupted one.
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    options = dict(batch_size=batch_size, collate_fn=_batch_as_is, generator=generator,
                   pin_memory=torch.cuda.is_available())
    if group_by_length:
        lengths = row_lengths(split)
        sampler = LengthGroupedSampler(lengths, batch_size, seed, num_processes) if shuffle \
            else LongestFirstSampler(lengths)
        return DataLoader(data, sampler=sampler, **options)
    return DataLoader(data, shuffle=shuffle, **options)
