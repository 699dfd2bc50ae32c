"""Load one dataset as ``train``/``validation``/``test`` splits with columns text, label[, group].

Everything here is plain data work (no model, no tokenizer), so every data problem is found
before a model loads. Steps, in order:

1. read the data: built-in dataset, local files or a Hub id;
2. check that the configured columns exist, then rename them to ``text``, ``label``, ``group``;
3. apply ``filter``; drop rows with an empty text or a missing label (counted in the log);
4. make labels strings with stray whitespace removed (integers become ``"0"``, ``"1"``, ...,
   ``1.0`` becomes ``"1"``, a ``ClassLabel`` column gives its names). Case is kept: ``"Pos"``
   and ``"pos"`` are two labels (a warning names such pairs). Texts are kept exactly as they
   are (numbers become their text); repeated texts are kept and counted in the log;
5. carve ``validation``/``test`` from train when the data has no such split (seeded, stratified);
6. cap sizes (``max_train_samples``, ``max_eval_samples``) and take ``k_shot`` per class. With
   ``k_shot`` and a carved validation split, that split keeps ``validation_k_shot`` (default
   ``k_shot``) examples per class too: few-shot selection reads no more labels than training
   (Perez et al. 2021). Training and carved-validation rows left out are kept apart
   (:func:`load_splits_with_rest`): the unlabelled target text of a semi-supervised run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Optional

import datasets
import numpy as np

from ..config import DatasetConfig
from ..errors import DataError
from .builtin import load_builtin
from .cache import cached
from .columns import as_list, column_values

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


# The rows of a dataset that sampling left out of train and a carved validation split.
NOT_SAMPLED = "not_sampled"


def load_splits(cfg: DatasetConfig, seed: int, role: str) -> datasets.DatasetDict:
    """The dataset of ``role`` (``source`` or ``target``) as train/validation/test splits,
    prepared once and then read from the on-disk cache (:mod:`.cache`)."""
    return load_splits_with_rest(cfg, seed, role)[0]


def load_splits_with_rest(cfg: DatasetConfig, seed: int,
                          role: str) -> tuple[datasets.DatasetDict, Optional[datasets.Dataset]]:
    """:func:`load_splits`, and the labelled rows that ``k_shot`` / ``max_train_samples`` left
    out of train and of a carved validation split (None when nothing was left out)."""
    prepared = cached(cfg, seed, role, lambda: _prepare_splits(cfg, seed, role))
    rest = prepared[NOT_SAMPLED] if NOT_SAMPLED in prepared else None
    return datasets.DatasetDict({name: prepared[name] for name in SPLITS}), rest


def _prepare_splits(cfg: DatasetConfig, seed: int, role: str) -> datasets.DatasetDict:
    where = f"data.{role}"
    raw = read_dataset(cfg, where)
    raw = _standardise_columns(raw, cfg, where)
    raw = datasets.DatasetDict({name: _clean(split, f"{where} [{name}]") for name, split in raw.items()})
    _report_label_case(raw, where)
    splits, carved = _make_splits(raw, cfg, seed, where)
    left_out = []
    splits["train"], rest = _sample_train(splits["train"], cfg, seed, where)
    left_out.append(rest)
    if cfg.k_shot is not None and "validation" in carved:
        splits["validation"], rest = _few_shot_validation(splits["validation"], cfg, seed, where)
        left_out.append(rest)
    for name in ("validation", "test"):
        splits[name] = _limit(splits[name], cfg.max_eval_samples, seed)
    logger.info("%s: %s", where, ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    _log_data_checks(data_checks(splits), where)  # on the rows the run uses
    left_out = [r for r in left_out if len(r)]
    if left_out:
        splits[NOT_SAMPLED] = datasets.concatenate_datasets(left_out)
    return splits


def _sample_train(train: datasets.Dataset, cfg: DatasetConfig, seed: int,
                  where: str) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``max_train_samples``, then ``k_shot`` per class: the sample, and the rows left out."""
    kept = np.arange(len(train))
    if cfg.max_train_samples is not None and len(train) > cfg.max_train_samples:
        kept, _ = stratified_split(column_values(train, "label"), cfg.max_train_samples / len(train), seed)
        kept = np.asarray(kept)
    if cfg.k_shot is not None:
        kept = kept[k_per_class_rows(train.select(kept), cfg.k_shot, seed, f"{where}.k_shot")]
    return _select_and_rest(train, kept)


def _few_shot_validation(validation: datasets.Dataset, cfg: DatasetConfig, seed: int,
                         where: str) -> tuple[datasets.Dataset, datasets.Dataset]:
    """A carved validation split cut to ``validation_k_shot`` (default ``k_shot``) per class, at
    most what a class has: selecting on hundreds of labels behind a 16-example training set
    would overstate a few-shot result."""
    k = cfg.validation_k_shot or cfg.k_shot
    kept = k_per_class_rows(validation, k, seed, f"{where}.validation_k_shot", at_most=True)
    logger.info("%s: few-shot selection: the carved validation split keeps %d per class (%d of %d rows); "
                "`validation_k_shot` sets another number.", where, k, len(kept), len(validation))
    return _select_and_rest(validation, np.asarray(kept, dtype=np.int64))


def _select_and_rest(split: datasets.Dataset, kept) -> tuple[datasets.Dataset, datasets.Dataset]:
    rest = np.ones(len(split), dtype=bool)
    rest[np.asarray(kept, dtype=np.int64)] = False
    return split.select(sorted(int(i) for i in kept)), split.select(np.flatnonzero(rest))


# --- reading -------------------------------------------------------------------------------


def read_dataset(cfg: DatasetConfig, where: str) -> datasets.DatasetDict:
    if cfg.builtin:
        return datasets.DatasetDict({"train": load_builtin(cfg.builtin)})
    if cfg.files:
        return _read_files(cfg.files, where, cfg.encoding)
    try:
        loaded = datasets.load_dataset(cfg.hub_id, cfg.hub_config)
    except Exception as err:  # datasets raises many types for "not reachable / not found"
        raise DataError(
            f"`{where}.hub_id` {cfg.hub_id!r} could not be loaded ({type(err).__name__}: {err}). "
            "Check the id and your connection, or use local `files` instead."
        ) from err
    return loaded


def _read_files(files: dict, where: str, encoding: str = "utf-8") -> datasets.DatasetDict:
    """Read local files by split. CSV cells are read as text, exactly as written: only an empty
    cell is missing ("NA", "null", "None" are values), numbers are not re-typed, and a file that
    does not decode with ``encoding`` is an error (never silently altered)."""
    out = {}
    for split, paths in files.items():
        paths = paths if isinstance(paths, list) else [paths]
        field = f"`{where}.files.{split}`"
        kinds = {FILE_BUILDERS.get(_suffix(p)) for p in paths}
        if None in kinds or len(kinds) != 1:
            raise DataError(
                f"{field}: use one file type per split out of "
                f"{', '.join(FILE_BUILDERS)} (got {paths})."
            )
        kind = kinds.pop()
        if kind == "json":  # pyarrow reads invalid UTF-8 into strings that fail much later
            for file in paths:
                _require_utf8(file, field)
        try:
            options = {}
            if kind == "csv":
                columns = _csv_columns(paths, encoding, field)
                options = dict(encoding=encoding, encoding_errors="strict", keep_default_na=False,
                               na_values=[""], features=datasets.Features(
                                   {c: datasets.Value("string") for c in columns}))
            out[split] = datasets.load_dataset(kind, data_files=paths, split="train", **options)
        except DataError:
            raise
        except Exception as err:
            bad_line = _first_bad_json_line(paths) if kind == "json" else None
            if bad_line:
                raise DataError(f"{field}: {bad_line[0]} line {bad_line[1]} is not valid JSON "
                                f"({bad_line[2]}): fix or remove that line.") from err
            raise _read_error(err, field, paths, encoding, f"{where}.encoding") from err
    return datasets.DatasetDict(out)


def _require_utf8(path: str, field: str, chunk: int = 1 << 20) -> None:
    """Raise DataError naming the line when ``path`` is not valid UTF-8 (JSON must be)."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    lines = 1
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                # The error's position is within the bytes the decoder held plus this block.
                start = max(0, err.start - (len(err.object) - len(block)))
                line = lines + block[:start].count(b"\n")
                raise DataError(
                    f"{field}: {path} is not valid UTF-8 (line {line}, byte "
                    f"{err.object[err.start:err.start + 1]!r}); JSON files must be UTF-8: save it "
                    "as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or use csv with `encoding`."
                ) from None
            if not block:
                return
            lines += block.count(b"\n")


def _first_bad_json_line(paths: list) -> Optional[tuple]:
    """``(path, line number, reason)`` of the first line of a JSON-lines file that does not
    parse; None for a file that is one JSON document (or when every line parses)."""
    import json

    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.read(1)
            if first in ("[", "{") and not str(path).endswith(".jsonl"):
                continue  # a single JSON document: its parser's message is the useful one
            f.seek(0)
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        json.loads(line)
                    except json.JSONDecodeError as err:
                        return path, number, f"{err.msg} at column {err.colno}"
    return None


def _csv_columns(paths: list, encoding: str, field: str) -> list[str]:
    """The header of the csv files of one split (they must agree)."""
    import pandas as pd

    headers = []
    for path in paths:
        try:
            headers.append(list(pd.read_csv(path, nrows=0, encoding=encoding,
                                            encoding_errors="strict").columns))
        except pd.errors.EmptyDataError:
            raise DataError(f"{field}: {path} is empty (not even a header row).") from None
    if any(h != headers[0] for h in headers):
        raise DataError(f"{field}: the files have different columns: "
                        + "; ".join(f"{p}: {', '.join(map(str, h))}" for p, h in zip(paths, headers)))
    return [str(c) for c in headers[0]]


def _read_error(err: Exception, field: str, paths: list, encoding: str, encoding_field: str) -> DataError:
    cause = err
    while cause is not None:
        if isinstance(cause, UnicodeDecodeError):
            return DataError(
                f"{field}: {paths} is not valid {encoding} text ({cause.reason}, byte "
                f"{cause.object[cause.start:cause.start + 1]!r} at position {cause.start}). Set "
                f"`{encoding_field}` to the file's encoding (e.g. latin-1 or cp1252) for csv; "
                "JSON files must be UTF-8."
            )
        cause = cause.__cause__ or cause.__context__
    if "corresponds to no data" in str(err):
        return DataError(f"{field}: {paths} has no data rows; the split has no rows left.")
    hint = ""
    if "changed from" in str(err) or "mixed" in str(err).lower():
        hint = " A column seems to mix numbers and text: write all its values one way."
    return DataError(f"{field}: could not read {paths}: {type(err).__name__}: {err}{hint}")


def _suffix(path: str) -> str:
    return Path(path).suffix.lower()


# --- columns and cleaning -------------------------------------------------------------------


def _standardise_columns(raw: datasets.DatasetDict, cfg: DatasetConfig, where: str):
    wanted = {cfg.text_column: "text", cfg.label_column: "label"}
    if cfg.group_column:
        wanted[cfg.group_column] = "group"
    if cfg.split_key:
        wanted[cfg.split_key] = "split_key"
    roles = {cfg.text_column: "text_column", cfg.label_column: "label_column",
             cfg.group_column: "group_column", cfg.split_key: "split_key"}
    out = {}
    for name, split in raw.items():
        columns = split.column_names
        for column in [*wanted, *(cfg.filter or {})]:
            if column not in columns:
                field = roles.get(column, f"filter.{column}")
                raise DataError(
                    f"`{where}.{field}`: column {column!r} is not in split {name!r}. "
                    f"Columns there: {', '.join(columns)}.{_delimiter_hint(columns)}"
                )
        split = apply_filter(split, cfg.filter, f"{where}.filter", name)
        for column, field in ((cfg.text_column, "text_column"), (cfg.label_column, "label_column")):
            require_scalar(split, column, f"`{where}.{field}`", name)
        split = _labels_as_strings(split, cfg.label_column)
        split = texts_as_strings(split, cfg.text_column)
        split = split.select_columns(list(wanted)).rename_columns(
            {k: v for k, v in wanted.items() if k != v}
        )
        out[name] = split
    return datasets.DatasetDict(out)


def apply_filter(split: datasets.Dataset, filters: Optional[dict], where: str, name: str):
    if not filters:
        return split
    columns = list(filters)
    # Batched, into an Arrow cache on disk: the columns are never all in memory. datasets
    # hashes sets in sorted order, so every process (DDP) finds the same cache.
    allowed = [set(map(str, v if isinstance(v, list) else [v])) for v in filters.values()]
    kept = split.filter(_matches_filter, batched=True, input_columns=columns,
                        fn_kwargs={"allowed": allowed}, desc=where)
    if len(split) and not len(kept):
        present = "; ".join(
            f"{col}: {', '.join(sorted(map(str, split.unique(col)))[:12])}" for col in columns
        )
        raise DataError(
            f"`{where}` {filters} keeps no rows of split {name!r}. Values present: {present}."
        )
    return kept


def _matches_filter(*columns: list, allowed: list[set]) -> list[bool]:
    """Per row of a batch (one list per filtered column): every value is an allowed one."""
    return [all(str(value) in ok for value, ok in zip(values, allowed)) for values in zip(*columns)]


def _labels_as_strings(split: datasets.Dataset, label_column: str) -> datasets.Dataset:
    feature = split.features[label_column]
    if isinstance(feature, datasets.ClassLabel):
        names = feature.names
        return split.map(lambda b: {label_column: [None if v is None or v < 0 else names[v]
                                                    for v in b[label_column]]},
                         batched=True, features=_with_string(split.features, label_column))
    return split.map(
        lambda b: {label_column: [_label_text(v) for v in b[label_column]]},
        batched=True, features=_with_string(split.features, label_column),
    )


def require_scalar(split: datasets.Dataset, column: str, field: str, name: str) -> None:
    feature = split.features[column]
    if isinstance(feature, (datasets.Value, datasets.ClassLabel)):
        return
    # e.g. a JSON column mixing numbers and strings: fine while every value is a scalar.
    if not all(v is None or isinstance(v, (str, int, float, bool)) for v in column_values(split, column)):
        raise DataError(
            f"{field}: column {column!r} of split {name!r} holds {type(feature).__name__} values "
            "(lists or records), not one text or label per row. Multi-label data is not supported."
        )


def texts_as_strings(split: datasets.Dataset, text_column: str) -> datasets.Dataset:
    """Numbers or booleans in the text column become their text; NaN becomes missing."""
    feature = split.features[text_column]
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        return split
    if isinstance(feature, datasets.ClassLabel):
        names = feature.names
        convert = lambda v: None if v is None or v < 0 else names[v]  # noqa: E731
    else:
        convert = lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)  # noqa: E731
    return split.map(lambda b: {text_column: [convert(v) for v in b[text_column]]},
                     batched=True, features=_with_string(split.features, text_column))


def _delimiter_hint(columns: list[str]) -> str:
    """One column whose name holds another delimiter: the file is not comma-separated."""
    if len(columns) == 1:
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if delimiter in columns[0]:
                return (f" The file seems separated by {name}, not commas: save it as a "
                        "comma-separated CSV.")
    return ""


def _with_string(features: datasets.Features, column: str) -> datasets.Features:
    features = features.copy()
    features[column] = datasets.Value("string")
    return features


def _label_text(value) -> Optional[str]:
    """A label as text: surrounding whitespace stripped, case kept (``"Pos"`` and ``"pos"`` are
    two labels), a whole number written as an integer (``1.0``, ``"1.0"`` -> ``"1"``);
    None, NaN, an empty or whitespace-only value -> None (missing)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if _WHOLE_NUMBER.fullmatch(text):
        text = text.split(".")[0]
    return text or None


_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+\.0+")


def _clean(split: datasets.Dataset, where: str) -> datasets.Dataset:
    """Drop rows with no usable text (missing, empty or whitespace only) or no label, saying
    how many and why; warn when most texts are plain numbers. Texts are otherwise kept exactly
    as they are."""
    texts = column_values(split, "text")  # read once: each read of a column builds a Python list of it
    no_text = [not (isinstance(text, str) and text.strip()) for text in texts]
    no_label = [label is None for label in column_values(split, "label")]
    keep = [not (a or b) for a, b in zip(no_text, no_label)]
    kept = sum(keep)
    if kept < len(keep):
        logger.warning("%s: dropped %d of %d rows with an empty text or a missing label "
                       "(%d without text, %d without label).",
                       where, len(keep) - kept, len(keep), sum(no_text), sum(no_label))
        split = split.select(np.flatnonzero(keep))
    numbers = sum(bool(_NUMBER.fullmatch(text.strip())) for text, ok in zip(texts, keep) if ok)
    if numbers > kept // 2:  # an id or score column, most likely, not the documents
        logger.warning("%s: %d of %d texts are plain numbers: is `%s.text_column` the column "
                       "that holds the documents?", where, numbers, kept, where.split(" ")[0])
    return split


_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _report_label_case(data: datasets.DatasetDict, where: str) -> None:
    """Labels are case-sensitive; say so when some differ only in case."""
    by_folded: dict = {}
    for label in {label for split in data.values() for label in split.unique("label")}:
        by_folded.setdefault(label.casefold(), set()).add(label)
    clashes = [sorted(v) for v in by_folded.values() if len(v) > 1]
    if clashes:
        logger.warning("%s: labels are case-sensitive, so these are different labels: %s. Write "
                       "them one way in the data if they mean the same class.",
                       where, "; ".join(" / ".join(map(repr, c)) for c in sorted(clashes)))


# Columns of the data-checks table: key in results.json, heading.
DATA_CHECKS = (("repeated", "repeated texts"), ("conflicting_labels", "texts with 2+ labels"),
               ("also_in_train", "texts also in train"))


def data_checks(splits: datasets.DatasetDict) -> dict:
    """Per split: rows that repeat a text already in the split, texts that occur with
    different labels, and (evaluation splits) rows whose text is also in train, which makes
    their scores optimistic. The rows are kept as they are. ``{}`` when all are 0."""
    import pandas as pd

    train_texts = pd.unique(pd.Series(column_values(splits["train"], "text"), dtype=object)) \
        if "train" in splits else []
    checks = {}
    for name, split in splits.items():
        rows = pd.DataFrame({"text": column_values(split, "text"), "label": column_values(split, "label")},
                            dtype=object)
        labels_per_text = rows.groupby("text", sort=False, dropna=False)["label"].nunique(dropna=False)
        checks[name] = {
            "repeated": len(rows) - len(labels_per_text),
            "conflicting_labels": int((labels_per_text > 1).sum()),
            "also_in_train": 0 if name == "train" else int(rows["text"].isin(train_texts).sum()),
        }
    return checks if any(any(counts.values()) for counts in checks.values()) else {}


def _log_data_checks(checks: dict, where: str) -> None:
    """One table per dataset: a warning when labels conflict or evaluation texts are also in
    train (both distort scores), else a note."""
    if not checks:
        return
    headings = ["split"] + [heading for _, heading in DATA_CHECKS]
    rows = [[name] + [str(counts[key]) for key, _ in DATA_CHECKS] for name, counts in checks.items()]
    widths = [max(len(row[i]) for row in [headings, *rows]) for i in range(len(headings))]
    lines = ["  " + "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [headings, *rows]]
    serious = any(c["conflicting_labels"] or c["also_in_train"] for c in checks.values())
    logger.log(logging.WARNING if serious else logging.INFO,
               "%s: data checks (rows kept as they are; texts also in train make scores optimistic):\n%s",
               where, "\n".join(lines))


# --- splits and sampling --------------------------------------------------------------------


def _make_splits(raw: datasets.DatasetDict, cfg: DatasetConfig, seed: int, where: str):
    names = {"train": cfg.train_split, "validation": cfg.validation_split, "test": cfg.test_split}
    if names["train"] not in raw:
        raise DataError(
            f"`{where}.train_split` {cfg.train_split!r} is not a split of this dataset. "
            f"Splits: {', '.join(raw)}."
        )
    train = raw[names["train"]]
    _require_rows(train, f"{where} [{cfg.train_split}]")
    missing = [role for role in ("test", "validation") if names[role] not in raw]
    if cfg.split_key:
        assigned = keyed_assignment(train["split_key"], cfg.test_size, cfg.validation_size, seed)
        how = f"by a seeded hash of `{cfg.split_key}`"
    else:
        assigned = grouped_assignment(train["text"], train["label"], cfg.test_size, cfg.validation_size, seed)
        how = "seeded, stratified, identical texts kept together"
    splits = {role: raw[names[role]] for role in ("test", "validation") if role not in missing}
    for role in missing:
        splits[role] = train.select([i for i, a in enumerate(assigned) if a == role])
        logger.info("%s: no %r split; carved %d of %d train rows (%s).",
                    where, names[role], len(splits[role]), len(train), how)
    splits["train"] = train.select([i for i, a in enumerate(assigned) if a not in missing])
    if cfg.split_key:
        splits = {role: split.remove_columns("split_key") for role, split in splits.items()}
    for role in SPLITS:
        _require_rows(splits[role], f"{where} [{role}]")
    return datasets.DatasetDict({role: splits[role] for role in SPLITS}), missing


def stratified_assignment(labels: list, test_size: float, validation_size: float,
                          seed: int) -> list[str]:
    """"test" / "validation" / "train" per row: stratified by label, seeded."""
    labels = as_list(labels)
    assigned = np.full(len(labels), "train", dtype=object)
    test, rest = stratified_split(labels, test_size, seed)
    assigned[test] = "test"
    # The validation fraction is of the whole, taken from what the test split left.
    fraction = validation_size / (1 - test_size)
    validation, _ = stratified_split([labels[i] for i in rest], fraction, seed)
    assigned[np.asarray(rest, dtype=np.int64)[validation]] = "validation"
    return assigned.tolist()


def normalised_text(text: str) -> str:
    """The text as a reader would compare it: case folded, whitespace collapsed and stripped."""
    return " ".join(text.split()).casefold()


def grouped_assignment(texts: list, labels: list, test_size: float, validation_size: float,
                       seed: int) -> list[str]:
    """:func:`stratified_assignment` over groups of rows whose normalised texts are identical,
    so a repeated text never lands on both sides of a carved split (its test score would
    measure memory). Each group is stratified by its most common label; without repeats this
    is exactly :func:`stratified_assignment`."""
    rows_of: dict = {}
    for i, text in enumerate(texts):
        rows_of.setdefault(normalised_text(text), []).append(i)
    groups = list(rows_of.values())
    group_labels = [Counter(labels[i] for i in rows).most_common(1)[0][0] for rows in groups]
    assigned = [""] * len(texts)
    for rows, role in zip(groups, stratified_assignment(group_labels, test_size, validation_size, seed)):
        for i in rows:
            assigned[i] = role
    return assigned


def keyed_assignment(keys: list, test_size: float, validation_size: float, seed: int) -> list[str]:
    """"test" / "validation" / "train" decided by a seeded hash of each row's key alone, so rows
    sharing a key (e.g. translations of one dialog) land in the same split in every dataset."""
    def unit(key) -> float:
        digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    return ["test" if u < test_size else "validation" if u < test_size + validation_size
            else "train" for u in map(unit, as_list(keys))]


def _require_rows(split: datasets.Dataset, where: str) -> None:
    if len(split) == 0:
        raise DataError(f"{where} has no rows left: check the filter, the split names and the sizes.")


def stratified_split(labels: list, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split indices into (held, rest) with ``round(fraction * n)`` held, spread over classes in
    proportion (largest remainders), at least one per class that has two or more examples.
    Deterministic for a seed; index order kept within each part."""
    labels = as_list(labels)
    rng = np.random.default_rng(seed)
    by_label = _indices_by_label(labels)
    counts = _allocate({label: len(ix) for label, ix in by_label.items()}, fraction)
    held = [i for label, ix in by_label.items() for i in rng.permutation(ix)[: counts[label]]]
    rest = np.ones(len(labels), dtype=bool)
    rest[held] = False
    return sorted(held), np.flatnonzero(rest).tolist()


def _allocate(sizes: dict, fraction: float) -> dict:
    """Per-class counts summing to ``round(fraction * total)`` (largest-remainder rounding)."""
    total = int(round(fraction * sum(sizes.values())))
    exact = {label: fraction * n for label, n in sizes.items()}
    counts = {label: int(value) for label, value in exact.items()}
    by_remainder = sorted(exact, key=lambda label: exact[label] - counts[label], reverse=True)
    for label in by_remainder[: total - sum(counts.values())]:
        counts[label] += 1
    # Every class with 2+ examples keeps one example on each side of the split.
    return {label: min(max(c, 1 if sizes[label] > 1 else 0), sizes[label] - 1) if sizes[label] > 1
            else c for label, c in counts.items()}


def _limit(split: datasets.Dataset, cap: Optional[int], seed: int) -> datasets.Dataset:
    """A seeded, stratified sample of ``cap`` rows (the split itself when it is small enough)."""
    if cap is None or len(split) <= cap:
        return split
    held, _ = stratified_split(column_values(split, "label"), cap / len(split), seed)
    return split.select(held)


def take_k_per_class(split: datasets.Dataset, k: int, seed: int, where: str) -> datasets.Dataset:
    """k examples of every class — of every class within each group (language, domain) when
    the data has a group column, so few-shot data covers each target group equally."""
    return split.select(k_per_class_rows(split, k, seed, f"{where}.k_shot"))


def k_per_class_rows(split: datasets.Dataset, k: int, seed: int, field: str, at_most: bool = False) -> list[int]:
    """Sorted rows of k examples of every class (and group); a class with fewer is an error
    naming ``field``, or, ``at_most``, keeps what it has."""
    labels = column_values(split, "label")
    groups = column_values(split, "group") if "group" in split.column_names else [None] * len(labels)
    by_key = _indices_by_label(list(zip(labels, groups)))
    too_small = {key: len(ix) for key, ix in by_key.items() if len(ix) < k}
    if too_small and not at_most:
        sizes = ", ".join(f"{label!r}{f' in {group!r}' if group is not None else ''} has {n}"
                          for (label, group), n in sorted(too_small.items()))
        raise DataError(
            f"`{field}` is {k} but some classes have fewer examples ({sizes}). "
            f"Lower `{field.rsplit('.', 1)[-1]}` to at most {min(too_small.values())}."
        )
    rng = np.random.default_rng(seed)
    return sorted(int(i) for ix in by_key.values() for i in rng.permutation(ix)[:k])


def _indices_by_label(labels: list) -> dict:
    out: dict = {}
    for i, label in enumerate(labels):
        out.setdefault(label, []).append(i)
    return dict(sorted(out.items()))


def label_counts(split: datasets.Dataset) -> dict[str, int]:
    return dict(sorted(Counter(column_values(split, "label")).items()))


def split_sizes(**roles: datasets.DatasetDict) -> dict:
    """Rows, label counts and data checks (:func:`data_checks`, when any is not 0) of every
    split of each role (``source=..., target=...``), for results.json; a role without splits
    is left out."""
    out = {}
    for role, dd in roles.items():
        if len(dd):
            out[role] = {"splits": {k: len(v) for k, v in dd.items()},
                         "label_counts": {k: label_counts(v) for k, v in dd.items()}}
            checks = data_checks(dd)
            if checks:
                out[role]["checks"] = checks
    return out
