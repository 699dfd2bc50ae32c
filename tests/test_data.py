"""Data layer: sources, column mapping, filtering, splits, k-shot, label spaces, errors."""

import pytest

from hf_transfer.config import DatasetConfig
from hf_transfer.data.labels import LabelSpace
from hf_transfer.data.loading import (data_checks, grouped_assignment, load_splits, stratified_assignment,
                                      stratified_split)
from hf_transfer.errors import DataError


def _config(path, **kwargs) -> DatasetConfig:
    return DatasetConfig(files={"train": str(path)}, **kwargs)


@pytest.mark.parametrize("kind", ["source", "target", "target_parquet"])
def test_local_files_load_as_three_splits(tiny_data, kind):
    splits = load_splits(_config(tiny_data[kind], group_column="domain"), seed=0, role="source")
    assert list(splits) == ["train", "validation", "test"]
    assert set(splits["train"].column_names) == {"text", "label", "group"}
    assert sum(len(s) for s in splits.values()) == 180
    # stratified: every class appears in every carved split
    for split in splits.values():
        assert set(split["label"]) == {"negative", "neutral", "positive"}


def test_splits_are_seeded_and_disjoint(tiny_data):
    cfg = _config(tiny_data["source"])
    a, b = load_splits(cfg, 0, "source"), load_splits(cfg, 0, "source")
    c = load_splits(cfg, 1, "source")
    assert a["test"]["text"] == b["test"]["text"]
    assert a["test"]["text"] != c["test"]["text"]
    texts = [set(a[s]["text"]) for s in ("train", "validation", "test")]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_existing_splits_are_used_as_given(tiny_data):
    cfg = DatasetConfig(files={"train": str(tiny_data["source"]), "test": str(tiny_data["target"])})
    splits = load_splits(cfg, 0, "source")
    assert len(splits["test"]) == 180  # the whole target file, not carved from train


def test_column_mapping_and_filter(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,sentiment,topic\n" + "".join(
        f"text {i},{['pos', 'neg'][i % 2]},{['a', 'b'][i % 3 == 0]}\n" for i in range(60)))
    cfg = _config(path, text_column="body", label_column="sentiment", group_column="topic",
                  filter={"topic": "a"})
    splits = load_splits(cfg, 0, "source")
    rows = [r for s in splits.values() for r in s]
    assert rows and all(r["group"] == "a" for r in rows)
    assert {r["label"] for r in rows} == {"pos", "neg"}


def test_labels_are_cleaned_and_bad_rows_dropped_with_a_count(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i}, {'Pos ' if i % 2 else 'neg'}\n" for i in range(40))
                    + "   ,neg\nmissing label,\n")
    with caplog.at_level("WARNING"):
        splits = load_splits(_config(path), 0, "source")
    assert {label for s in splits.values() for label in s["label"]} == {"Pos", "neg"}
    assert sum(len(s) for s in splits.values()) == 40
    assert "dropped 2 of 42 rows" in caplog.text


def test_integer_labels_become_strings(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(f'{{"text": "t{i}", "label": {i % 3}}}\n' for i in range(30)))
    splits = load_splits(_config(path), 0, "source")
    assert set(splits["train"]["label"]) == {"0", "1", "2"}


def test_k_shot_and_caps(tiny_data):
    cfg = _config(tiny_data["source"], k_shot=4, max_eval_samples=6)
    splits = load_splits(cfg, 0, "source")
    assert len(splits["train"]) == 12
    assert sorted(splits["train"]["label"]).count("neutral") == 4
    assert len(splits["test"]) <= 6 and len(splits["validation"]) <= 6


def test_stratified_split_keeps_class_proportions():
    labels = ["a"] * 80 + ["b"] * 20
    held, rest = stratified_split(labels, 0.25, seed=3)
    assert len(held) == 25 and len(rest) == 75
    assert sum(labels[i] == "b" for i in held) == 5


# --- errors a user can make, each with a clear message ------------------------------------


def test_missing_text_column(tiny_data):
    with pytest.raises(DataError, match=r"`data.source.text_column`: column 'body' is not in split 'train'. "
                                        r"Columns there: text, label, domain"):
        load_splits(_config(tiny_data["source"], text_column="body"), 0, "source")


def test_missing_label_column(tiny_data):
    with pytest.raises(DataError, match=r"`data.target.label_column`: column 'sentiment'"):
        load_splits(_config(tiny_data["target"], label_column="sentiment"), 0, "target")


def test_unknown_builtin_dataset():
    with pytest.raises(DataError, match="tweets"):
        load_splits(DatasetConfig(builtin="imdb"), 0, "source")


def test_empty_after_filtering_lists_the_values(tiny_data):
    with pytest.raises(DataError, match=r"`data.source.filter` \{'domain': 'apple'\} keeps no rows.*airline"):
        load_splits(_config(tiny_data["source"], filter={"domain": "apple"}), 0, "source")


def test_k_larger_than_a_class(tiny_data):
    with pytest.raises(DataError, match=r"`data.target.k_shot` is 100 .*Lower `k_shot` to at most"):
        load_splits(_config(tiny_data["target"], k_shot=100), 0, "target")


def test_unknown_file_type(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("x")
    with pytest.raises(DataError, match="one file type per split"):
        load_splits(_config(path), 0, "source")


def test_target_label_missing_from_source_space(tiny_data):
    source = load_splits(_config(tiny_data["source"], filter={"label": ["negative", "positive"]}), 0, "source")
    target = load_splits(_config(tiny_data["target"]), 0, "target")
    space = LabelSpace.from_splits(source)
    assert space.names == ("negative", "positive")
    with pytest.raises(DataError, match=r"labels the source never had: \['neutral'\]"):
        space.require_covers(target, "data.target")


def test_label_space_ids_are_consistent(tiny_data):
    splits = load_splits(_config(tiny_data["source"]), 0, "source")
    space = LabelSpace.from_splits(splits)
    assert space.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    assert space.id2label[2] == "positive"
    encoded = space.encode(splits)
    assert [space.names[i] for i in encoded["train"]["labels"]] == splits["train"]["label"]


def test_keyed_split_keeps_a_key_in_one_split_across_datasets(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("text,label,key\n" + "".join(f"en {i},{i % 2},k{i}\n" for i in range(200)))
    b.write_text("text,label,key\n" + "".join(f"it {i},{i % 2},k{i}\n" for i in range(0, 200, 2)))
    split_of = {}
    for path in (a, b):
        splits = load_splits(_config(path, split_key="key", label_column="label"), 7, "source")
        for name, split in splits.items():
            for text in split["text"]:
                key = "k" + text.split()[1]
                assert split_of.setdefault(key, name) == name, f"{key} in two splits"
    assert {name for name in split_of.values()} == {"train", "validation", "test"}


def test_carved_splits_keep_identical_texts_together(tmp_path):
    # 60 texts, each written 1-4 times with changes of case and spacing (one with a second label).
    rows = [(f"{'  ' if r % 2 else ''}Text {'NUMBER' if r == 2 else 'number'}  {i}", "ab"[i % 2])
            for i in range(60) for r in range(1 + i % 4)]
    rows.append(("text number 3", "a"))
    path = tmp_path / "repeats.csv"
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    splits = load_splits(_config(path), 3, "source")
    split_of = {}
    for name, split in splits.items():
        for text in split["text"]:
            key = " ".join(text.split()).casefold()
            assert split_of.setdefault(key, name) == name, f"{text!r} in {name} and {split_of[key]}"
    assert {split_of[k] for k in split_of} == {"train", "validation", "test"}
    assert sum(len(s) for s in splits.values()) == len(rows)
    assert all(counts["also_in_train"] == 0 for counts in data_checks(splits).values())
    assert set(splits["test"]["label"]) == {"a", "b"}  # still stratified by label


def test_grouped_assignment_without_repeats_is_the_stratified_one():
    texts, labels = [f"t{i}" for i in range(97)], [i % 3 for i in range(97)]
    assert grouped_assignment(texts, labels, 0.2, 0.1, 5) == stratified_assignment(labels, 0.2, 0.1, 5)


def test_split_key_still_decides_over_identical_texts(tmp_path):
    path = tmp_path / "same.csv"
    path.write_text("text,label,key\n" + "".join(f"same text,{i % 2},k{i}\n" for i in range(200)))
    splits = load_splits(_config(path, split_key="key"), 0, "source")
    assert all(len(split) > 0 for split in splits.values())  # one text, spread by its keys


def test_k_shot_is_per_class_within_each_group(tmp_path):
    path = tmp_path / "g.csv"
    path.write_text("text,label,lang\n" + "".join(f"t{i},{'ab'[i % 2]},{'xyz'[i % 3]}\n" for i in range(300)))
    splits = load_splits(_config(path, group_column="lang", k_shot=5), 0, "target")
    pairs = list(zip(splits["train"]["label"], splits["train"]["group"]))
    assert len(pairs) == 30 and all(pairs.count(p) == 5 for p in set(pairs))
