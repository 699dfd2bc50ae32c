"""Property-based tests of the data layer: whatever a file holds, `load_splits` either loads it
as documented or raises a clear DataError — never another exception, never a silent drop.

Documented behaviour checked here: texts are kept exactly (quotes, commas, newlines, NUL,
any Unicode); a row whose text is missing/empty/whitespace-only or whose label is missing is
dropped and counted in the log; labels are stripped, case-sensitive, whole numbers written as
integers; in CSV only an empty cell is missing; repeated rows are kept.
"""

import csv
import json
import logging
import math
import re
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hf_transfer.config import DatasetConfig
from hf_transfer.data.labels import LabelSpace
from hf_transfer.data.loading import load_splits
from hf_transfer.errors import DataError

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# 30 clean rows so that validation and test can always be carved; the generated rows add noise.
BASE = [(f"base text number {i}", ["negative", "neutral", "positive"][i % 3]) for i in range(30)]

texts = st.one_of(
    st.text(max_size=30),  # any Unicode but surrogates: controls, NUL, emoji, RTL, combining marks
    st.sampled_from(["", " ", "\t\n", "\u3000", "a,b", 'say "hi"', "line\nbreak", "cr\rlf\r\n",
                     "NA", "null", "None", "nan", "#N/A", "123", "1e5", "  padded  ", "\ufeffbom"]),
    st.integers(2_000, 20_000).map(lambda n: "long " * (n // 5)),
    st.none(),
)
string_labels = st.one_of(
    st.sampled_from(["pos", "Pos", " pos ", "POS", "neg", "1", "1.0", " 2 ", "-1", "0.5", "", "  ",
                     "nan", "None", "é", "ｐｏｓ"]),
    st.text(max_size=6),
    st.none(),
)
number_labels = st.one_of(st.integers(-2, 3), st.sampled_from([1.0, 2.0, 0.5]), st.none())


def _norm_label(cell):
    """The documented label rule, written independently of the implementation."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    text = str(cell).strip()
    if re.fullmatch(r"[+-]?[0-9]+\.0+", text):
        text = text.split(".")[0]
    return text or None


def _usable(text) -> bool:
    return isinstance(text, str) and bool(text.strip())


def _load(path: Path, **kwargs):
    return load_splits(DatasetConfig(files={"train": str(path)}, **kwargs), seed=0, role="source")


def _rows(splits) -> Counter:
    return Counter((r["text"], r["label"]) for split in splits.values() for r in split)


def _check(splits, expected: list, total: int, log: str) -> None:
    assert _rows(splits) == Counter(expected)
    dropped = total - len(expected)
    if dropped:
        assert f"dropped {dropped} of {total} rows" in log
    else:
        assert "dropped" not in log


@SETTINGS
@given(rows=st.lists(st.tuples(texts, st.one_of(string_labels, number_labels)), max_size=25),
       duplicate=st.booleans(), latin1=st.booleans())
def test_csv_rows_load_exactly_as_documented(rows, duplicate, latin1, caplog):
    rows = BASE + rows + (rows[:5] if duplicate else [])
    encoding = "latin-1" if latin1 else "utf-8"
    # What the csv module writes: None as an empty cell, numbers as str().
    cells = [("" if t is None else t, "" if l is None else str(l)) for t, l in rows]
    if latin1:
        assume(all(c.encode("latin-1", "ignore").decode("latin-1") == c for row in cells for c in row))
    expected = [(t, _norm_label(l)) for t, l in cells if _usable(t) and _norm_label(l) is not None]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        with path.open("w", newline="", encoding=encoding) as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(cells)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hf_transfer"):
            splits = _load(path, encoding=encoding)
        _check(splits, expected, len(rows), caplog.text)


@SETTINGS
@given(rows=st.lists(st.tuples(texts, st.one_of(st.lists(string_labels, min_size=1, max_size=1),
                                                st.lists(number_labels, min_size=1, max_size=1))),
                     max_size=25),
       numeric=st.booleans())
def test_jsonl_rows_load_exactly_as_documented(rows, numeric, caplog):
    # One label type per file (mixing numbers and strings is covered below).
    kind = (int, float) if numeric else str
    rows = [(t, l[0]) for t, l in rows if l[0] is None or isinstance(l[0], kind)]
    base = [(t, i % 3 if numeric else l) for i, (t, l) in enumerate(BASE)]
    rows = base + rows
    expected = [(t, _norm_label(l)) for t, l in rows if _usable(t) and _norm_label(l) is not None]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.jsonl"
        path.write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows),
                        encoding="utf-8")
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hf_transfer"):
            splits = _load(path)
        _check(splits, expected, len(rows), caplog.text)


@SETTINGS
@given(labels=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=12),
       extra=st.lists(st.text(min_size=1, max_size=8), max_size=4))
def test_label_space_is_sorted_consistent_and_names_unknown_labels(labels, extra):
    import datasets

    def dd(values):
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict({"label": values})})

    space = LabelSpace.from_splits(dd(labels))
    assert list(space.names) == sorted(set(labels))
    assert all(space.id2label[space.label2id[name]] == name for name in space.names)
    encoded = space.encode(dd(labels))["train"]["labels"]
    assert [space.names[i] for i in encoded] == labels
    unknown = sorted(set(extra) - set(labels))
    if unknown:
        with pytest.raises(DataError, match=re.escape(str(unknown))):
            space.require_covers(dd(labels + extra), "data.target")
    else:
        space.require_covers(dd(labels + extra), "data.target")


# --- rejected inputs: a clear DataError naming what to change ----------------------------


def test_a_file_that_does_not_decode_names_the_encoding_option(tmp_path):
    path = tmp_path / "tweets.csv"
    rows = "text,label\n" + "".join(f"caf\xe9 number {i},{['neg', 'pos'][i % 2]}\n" for i in range(30))
    path.write_bytes(rows.encode("latin-1"))
    with pytest.raises(DataError, match=r"`data.source.files.train`: .* is not valid utf-8 text .*"
                                        r"Set `data.source.encoding`"):
        _load(path)
    splits = _load(path, encoding="latin-1")
    assert any(text.startswith("café") for text in splits["train"]["text"])


def test_mixed_number_and_text_labels_in_json_are_a_clear_error_or_text(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 3 if i % 2 else "pos"}) + "\n"
                            for i in range(40)))
    try:
        splits = _load(path)
    except DataError as err:
        assert str(err).startswith("`data.source.files.train`: could not read")
    else:
        assert set(splits["train"]["label"]) <= {"0", "1", "2", "pos"}


def test_mixed_number_and_text_labels_in_csv_are_text(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{i % 3 if i % 2 else 'pos'}\n" for i in range(40)))
    labels = {label for split in _load(path).values() for label in split["label"]}
    assert labels == {"0", "1", "2", "pos"}


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"text,label\n", "has no rows left"),
    (b"text,label\n \t,pos\n,neg\n", "has no rows left"),
])
def test_empty_inputs_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        _load(path)


def test_list_valued_labels_are_rejected(tmp_path):
    path = tmp_path / "multi.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": ["a", "b"]}) + "\n" for i in range(30)))
    with pytest.raises(DataError, match=r"`data.source.label_column`: column 'label' .* not one text "
                                        r"or label per row"):
        _load(path)


def test_case_differences_are_kept_and_named_in_the_log(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{['Pos', 'pos', 'neg'][i % 3]}\n" for i in range(30))
                    + "t0,Pos\n")
    with caplog.at_level(logging.INFO, logger="hf_transfer"):
        splits = _load(path)
    assert {label for s in splits.values() for label in s["label"]} == {"Pos", "pos", "neg"}
    assert "labels are case-sensitive, so these are different labels: 'Pos' / 'pos'" in caplog.text
    assert "data checks" in caplog.text  # "t0,Pos" repeats a text


def test_data_checks_are_one_table_per_dataset_in_the_log_and_the_report(tmp_path, caplog):
    from hf_transfer.data.loading import split_sizes
    from hf_transfer.report import render_markdown

    # 60 distinct texts, 10 of them twice (same label), 5 of them twice with another label;
    # a given test split that shares 4 texts with train (carved splits never do).
    rows = [(f"text {i}", ["pos", "neg"][i % 2]) for i in range(60)]
    rows += [(f"text {i}", ["pos", "neg"][i % 2]) for i in range(10)]
    rows += [(f"text {i}", ["neg", "pos"][i % 2]) for i in range(50, 55)]
    path, test = tmp_path / "d.csv", tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    test.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows[:4] + [("new", "pos")] * 8))
    with caplog.at_level(logging.INFO, logger="hf_transfer"):
        splits = load_splits(DatasetConfig(files={"train": str(path), "test": str(test)}), seed=0, role="source")
    checks = [r for r in caplog.records if "data checks" in r.getMessage()]
    assert len(checks) == 1 and checks[0].levelno == logging.WARNING
    table = checks[0].getMessage().splitlines()
    assert table[1].split() == ["split", "repeated", "texts", "texts", "with", "2+", "labels", "texts",
                                "also", "in", "train"]
    assert [line.split()[0] for line in table[2:]] == ["train", "validation", "test"]
    assert not [r for r in caplog.records if re.search(r"\[(train|validation|test)\]", r.getMessage())]

    counted = split_sizes(source=splits)["source"]["checks"]
    total = lambda key: sum(c[key] for c in counted.values())  # noqa: E731
    assert total("repeated") > 0 and total("conflicting_labels") > 0 and total("also_in_train") > 0
    for line, (name, c) in zip(table[2:], counted.items()):  # the log shows the same numbers
        assert line.split() == [name, str(c["repeated"]), str(c["conflicting_labels"]), str(c["also_in_train"])]
    report = render_markdown({"data": split_sizes(source=splits)}, {})
    assert "| data | split | repeated texts | texts with 2+ labels | texts also in train |" in report
    for name, c in counted.items():
        assert f"| source | {name} | {c['repeated']} | {c['conflicting_labels']} | {c['also_in_train']} |" in report


def test_clean_data_has_no_data_checks(tmp_path, caplog):
    from hf_transfer.data.loading import split_sizes

    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"text {i},{['pos', 'neg'][i % 2]}\n" for i in range(60)))
    with caplog.at_level(logging.INFO, logger="hf_transfer"):
        splits = _load(path)
    assert "data checks" not in caplog.text
    assert "checks" not in split_sizes(source=splits)["source"]
