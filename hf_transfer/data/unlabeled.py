"""Unlabelled text: a corpus for domain-adaptive pretraining, or a labelled split with its
labels removed.

Strategies that learn from unlabelled target text (``tapt``, ``dapt``, ``dann``) read text
only through :func:`text_only`, so the datasets they train on have no label column at all:
a label can not reach a loss by accident.

A corpus may be larger than memory: reading, filtering, sampling (and tokenizing, later) are
batched passes into datasets' memory-mapped Arrow caches, never a Python list of its rows.
"""

from __future__ import annotations

import logging
from typing import Iterable

import datasets
import numpy as np

from ..config import DatasetConfig
from ..errors import DataError
from .loading import apply_filter, require_scalar, texts_as_strings, read_dataset

logger = logging.getLogger(__name__)


def text_only(split: datasets.Dataset) -> datasets.Dataset:
    """The ``text`` column alone: labels (and groups) dropped."""
    return split.select_columns(["text"])


def _worth_training_on(texts: list, excluded: set) -> list[bool]:
    """Per text of a batch: not empty and not one of ``excluded``."""
    return [isinstance(t, str) and bool(t.strip()) and t not in excluded for t in texts]


def _in_sample(indices: list, sampled: np.ndarray) -> list[bool]:
    """Per row index of a batch: whether the sample holds it."""
    return sampled[indices].tolist()


def load_unlabeled_text(cfg: DatasetConfig, seed: int, exclude: Iterable[str] = (),
                        where: str = "data.unlabeled") -> datasets.Dataset:
    """The text of ``cfg``'s train split as a one-column (``text``) dataset.

    Steps: read; check the text (and filter) columns; apply ``filter``; drop empty texts and
    texts in ``exclude`` (e.g. the target's evaluation texts, which must never be trained on,
    not even without labels); a seeded random sample of ``max_train_samples``. The label column
    is never read.
    """
    raw = read_dataset(cfg, where)
    if cfg.train_split not in raw:
        raise DataError(f"`{where}.train_split` {cfg.train_split!r} is not a split of this dataset. "
                        f"Splits: {', '.join(raw)}.")
    split = raw[cfg.train_split]
    for column, field in [(cfg.text_column, "text_column"),
                          *((c, f"filter.{c}") for c in (cfg.filter or {}))]:
        if column not in split.column_names:
            raise DataError(f"`{where}.{field}`: column {column!r} is not in split "
                            f"{cfg.train_split!r}. Columns there: {', '.join(split.column_names)}.")
    split = apply_filter(split, cfg.filter, f"{where}.filter", cfg.train_split)
    require_scalar(split, cfg.text_column, f"`{where}.text_column`", cfg.train_split)
    split = texts_as_strings(split, cfg.text_column).select_columns([cfg.text_column])
    if cfg.text_column != "text":
        split = split.rename_column(cfg.text_column, "text")
    read = len(split)
    # Batched, into an Arrow cache on disk: the texts are never all in memory. A `set` (not a
    # frozenset): datasets hashes it in sorted order, so every process finds the same cache.
    split = split.filter(_worth_training_on, batched=True, input_columns="text",
                         fn_kwargs={"excluded": set(exclude)}, desc=f"{where}: dropping texts")
    if len(split) < read:
        logger.info("%s: dropped %d of %d texts (empty, or also in the target's evaluation "
                    "splits).", where, read - len(split), read)
    if len(split) == 0:
        raise DataError(f"{where} has no texts left: check the filter, `text_column` and the split.")
    if cfg.max_train_samples is not None and len(split) > cfg.max_train_samples:
        # The rows `select(sorted(rows))` would give, but as a filter: `select` turns an array of
        # indices into a Python list (~40 bytes a row), a filter's indices go to an Arrow cache.
        rows = np.random.default_rng(seed).permutation(len(split))[: cfg.max_train_samples]
        sampled = np.zeros(len(split), dtype=bool)
        sampled[rows] = True
        split = split.filter(_in_sample, batched=True, with_indices=True, input_columns=[],
                             fn_kwargs={"sampled": sampled}, desc=f"{where}: sampling")
    logger.info("%s: %d texts", where, len(split))
    return split
