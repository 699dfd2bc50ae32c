"""The prepared-data cache (hf_transfer/data/cache.py) and the column-at-once data helpers."""

import logging

import datasets
import numpy as np
import pytest

from hf_transfer.config import DatasetConfig
from hf_transfer.data import cache
from hf_transfer.data.loading import load_splits, stratified_assignment, stratified_split


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "datasets_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", folder)
    return folder / "hf_transfer"


def _write(path, rows: int, word: str = "text") -> None:
    path.write_text("text,label\n" + "".join(f"{word} {i},{['pos', 'neg', 'mid'][i % 3]}\n"
                                             for i in range(rows)) + "   ,neg\n")


def _texts(splits) -> dict:
    return {name: split["text"][:] for name, split in splits.items()}


def test_second_load_reads_the_cache_and_repeats_the_log(tmp_path, cache_dir, caplog):
    path = tmp_path / "d.csv"
    _write(path, 90)
    cfg = DatasetConfig(files={"train": str(path)})
    # On the data loggers themselves: another test (the diagnose CLI) may have quietened them.
    with caplog.at_level(logging.INFO, logger="hf_transfer.data"):
        first = load_splits(cfg, 0, "source")
    first_log = [r.getMessage() for r in caplog.records if r.name.startswith("hf_transfer.data")]
    assert len(list(cache_dir.iterdir())) == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hf_transfer.data"):
        second = load_splits(cfg, 0, "source")
    second_log = [r.getMessage() for r in caplog.records if r.name.startswith("hf_transfer.data")]
    assert _texts(second) == _texts(first)
    assert any("dropped 1 of 91 rows" in line for line in second_log)  # the warning is repeated
    assert second_log == first_log
    assert second["train"].cache_files  # memory-mapped from the cache folder
    assert len(list(cache_dir.iterdir())) == 1  # nothing new written


def test_a_changed_file_or_setting_is_prepared_again(tmp_path, cache_dir):
    path = tmp_path / "d.csv"
    _write(path, 90)
    cfg = DatasetConfig(files={"train": str(path)})
    before = load_splits(cfg, 0, "source")
    _write(path, 90, word="other")  # same size, same rows: only the content differs
    after = load_splits(cfg, 0, "source")
    assert all(text.startswith("other") for texts in _texts(after).values() for text in texts)
    assert _texts(load_splits(cfg, 1, "source")) != _texts(after)  # another seed
    assert len(list(cache_dir.iterdir())) == 3
    assert _texts(before) != _texts(after)


def test_tokenized_splits_are_cached_by_datasets(tmp_path, cache_dir, tiny_model):
    from transformers import AutoTokenizer

    from hf_transfer.data.labels import LabelSpace
    from hf_transfer.data.tokenize import tokenize

    tiny_tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    path = tmp_path / "d.csv"
    _write(path, 90)
    splits = load_splits(DatasetConfig(files={"train": str(path)}), 0, "source")
    labels = LabelSpace.from_splits(splits)
    first = tokenize(labels.encode(splits), tiny_tokenizer, 32)
    written = sorted(cache_dir.rglob("cache-*.arrow"))
    assert len(written) == 6  # labels, then tokens, for each of the three splits
    again = tokenize(labels.encode(load_splits(DatasetConfig(files={"train": str(path)}), 0, "source")),
                     tiny_tokenizer, 32)
    assert sorted(cache_dir.rglob("cache-*.arrow")) == written
    assert again["train"]["input_ids"][:] == first["train"]["input_ids"][:]
    tokenize(labels.encode(splits), tiny_tokenizer, 8)  # another max_length: other token ids
    assert len(sorted(cache_dir.rglob("cache-*.arrow"))) == 9


def test_nothing_is_cached_when_datasets_caching_is_off(tmp_path, cache_dir):
    path = tmp_path / "d.csv"
    _write(path, 30)
    datasets.disable_caching()
    try:
        load_splits(DatasetConfig(files={"train": str(path)}), 0, "source")
    finally:
        datasets.enable_caching()
    assert not cache_dir.exists()


def _reference_assignment(labels, test_size, validation_size, seed):
    """stratified_assignment as it was written before it was vectorised (row by row)."""
    assigned = ["train"] * len(labels)
    test, rest = stratified_split(labels, test_size, seed)
    for i in test:
        assigned[i] = "test"
    validation, _ = stratified_split([labels[i] for i in rest], validation_size / (1 - test_size), seed)
    for j in validation:
        assigned[rest[j]] = "validation"
    return assigned


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_vectorised_assignment_matches_the_row_by_row_one(seed):
    rng = np.random.default_rng(seed)
    labels = [str(x) for x in rng.choice(["a", "b", "c", "d"], size=1000, p=[0.6, 0.3, 0.09, 0.01])]
    expected = _reference_assignment(labels, 0.2, 0.1, seed)
    assert stratified_assignment(labels, 0.2, 0.1, seed) == expected
    column = datasets.Dataset.from_dict({"label": labels})["label"]  # a lazy datasets Column
    assert stratified_assignment(column, 0.2, 0.1, seed) == expected
    held, rest = stratified_split(labels, 0.25, seed)
    assert sorted(held + rest) == list(range(1000)) and len(held) == 250
