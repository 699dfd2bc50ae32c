"""The bad-input catalogue (docs/reliability.md, "Bad inputs"): every kind of bad data,
configuration, file, weights and interruption tried on the library, each with its exact
outcome, and proof that nothing the user wrote changed.

A case builds its bad input inside a fresh user folder (a copy of the tiny data, and the
run's output folder ``run/``), runs the domain-adaptation recipe on it, and asserts one of:

* ``error``: one HfTransferError whose message matches (it names the field, file or line and
  the fix); no weights load before a check that needs none;
* ``handled``: the run finishes and its log says what was done (a count where rows were dropped);
* ``refused``: an error that protects what is already there (a run folder, a checkpoint).

Every file in the user folder before the run is byte-identical after it (hashes), nothing of it
vanished, and new files appear only inside the run's own output folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import shutil
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from hf_transfer import DomainAdaptationRecipe, load_config
from hf_transfer.errors import HfTransferError, Preempted

ERROR, HANDLED, REFUSED = "error", "handled", "refused"
GROUPS = ("data", "config", "output", "resume", "weights", "interruption")


@dataclass
class Case:
    kind: str
    group: str
    outcome: str
    expect: str  # regex: in the error message (error, refused) or in the run's log (handled)
    make: Callable  # (user folder, overrides) -> overrides of the bad run
    weights_may_load: bool = False  # False: the error must come before any weights load
    results: Callable = lambda results: True  # handled: what the finished run's results must show


@dataclass
class Bench:
    """What a case builds on: the user folder and the run's good settings."""

    user: Path
    overrides: dict
    tiny_model: Path
    finished_run: Path  # a finished run's folder (not the user's): copied in by resume cases
    monkeypatch: pytest.MonkeyPatch

    @property
    def run_dir(self) -> Path:
        return self.user / "run"

    def rows(self) -> list[dict]:
        return list(csv.DictReader((self.user / "data" / "source.csv").open(encoding="utf-8")))

    def write_csv(self, name: str, rows: list[dict], **kwargs) -> str:
        path = self.user / "data" / name
        with path.open("w", newline="", encoding=kwargs.pop("encoding", "utf-8")) as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), **kwargs)
            writer.writeheader()
            writer.writerows(rows)
        return str(path)

    def write_jsonl(self, name: str, rows: list[dict]) -> str:
        path = self.user / "data" / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return str(path)

    def with_source(self, path: str, **more) -> dict:
        return {**self.overrides, "data.source": {"files": {"train": path}, **more}}

    def with_target(self, path: str, **more) -> dict:
        return {**self.overrides, "data.target": {"files": {"train": path}, **more}}

    def model_copy(self) -> Path:
        copy = self.user / "model"
        shutil.copytree(self.tiny_model, copy)
        return copy


# --- data -------------------------------------------------------------------------------------


def _latin1_jsonl(b: Bench) -> dict:
    path = b.user / "data" / "latin1.jsonl"
    rows = b.rows()
    rows[5]["text"] = "caf\u00e9 " + rows[5]["text"]
    path.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("latin-1"))
    return b.with_target(str(path))


def _broken_jsonl_line(b: Bench) -> dict:
    lines = [json.dumps(r) for r in b.rows()]
    lines[7] = '{"text": "broken", "label": '
    path = b.user / "data" / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return b.with_target(str(path))


def _empty_file(b: Bench) -> dict:
    (b.user / "data" / "empty.csv").write_text("")
    return b.with_target(str(b.user / "data" / "empty.csv"))


def _header_only(b: Bench) -> dict:
    (b.user / "data" / "header.csv").write_text("text,label,domain\n")
    return b.with_target(str(b.user / "data" / "header.csv"))


def _without_column(column: str) -> Callable:
    def make(b: Bench) -> dict:
        return b.with_target(b.write_csv("cut.csv", [{k: v for k, v in r.items() if k != column}
                                                     for r in b.rows()]))
    return make


def _one_class(b: Bench) -> dict:
    path = b.write_csv("one.csv", [r for r in b.rows() if r["label"] == "positive"])
    return {**b.with_source(path), "data.target": {"files": {"train": path}}}


def _label_column_is_text_column(b: Bench) -> dict:
    return {**b.overrides, "data.source.label_column": "text"}


def _empty_texts_and_labels(b: Bench) -> dict:
    rows = b.rows()
    rows[0]["text"], rows[1]["text"], rows[2]["label"] = "", "   ", ""
    return b.with_source(b.write_csv("gaps.csv", rows))


def _labels_differ_by_case(b: Bench) -> dict:
    rows = b.rows()
    rows[0]["label"] = rows[0]["label"].capitalize()
    return b.with_source(b.write_csv("cased.csv", rows))


def _repeated_rows(b: Bench) -> dict:
    rows = b.rows()
    return b.with_source(b.write_csv("repeats.csv", rows + rows[:5]))


def _conflicting_labels(b: Bench) -> dict:
    rows = b.rows()
    twin = dict(rows[40], label=next(r["label"] for r in rows if r["label"] != rows[40]["label"]))
    files = {"train": b.write_csv("train.csv", rows[40:] + [twin]),
             "validation": b.write_csv("validation.csv", rows[:20]), "test": b.write_csv("test.csv", rows[20:40])}
    return {**b.overrides, "data.source": {"files": files}}


def _evaluation_text_in_train(b: Bench) -> dict:
    rows = b.rows()
    files = {"train": b.write_csv("train.csv", rows[20:] + rows[:10]),
             "validation": b.write_csv("validation.csv", rows[:10]), "test": b.write_csv("test.csv", rows[10:20])}
    return {**b.overrides, "data.source": {"files": files}}


def _target_label_unknown_to_source(b: Bench) -> dict:
    rows = b.rows()
    rows[3]["label"] = "furious"
    return b.with_target(b.write_csv("new_label.csv", rows))


def _files_with_different_columns(b: Bench) -> dict:
    rows = b.rows()
    first = b.write_csv("part1.csv", rows[:60])
    second = b.write_csv("part2.csv", [dict(r, extra="x") for r in rows[60:]])
    return {**b.overrides, "data.target": {"files": {"train": [first, second]}}}


def _folder_as_file(b: Bench) -> dict:
    (b.user / "data" / "folder.csv").mkdir()
    return b.with_target(str(b.user / "data" / "folder.csv"))


def _missing_file(b: Bench) -> dict:
    return b.with_target(str(b.user / "data" / "nowhere.csv"))


def _unknown_format(b: Bench) -> dict:
    (b.user / "data" / "notes.docx").write_bytes(b"PK\x03\x04 not a table")
    return b.with_target(str(b.user / "data" / "notes.docx"))


def _semicolon_csv(b: Bench) -> dict:
    return b.with_target(b.write_csv("semicolon.csv", b.rows(), delimiter=";"))


def _filter_keeps_nothing(b: Bench) -> dict:
    return {**b.overrides, "data.target.filter": {"domain": "nowhere"}}


def _numbers_as_labels(b: Bench) -> dict:
    names = {"negative": 0, "neutral": 1, "positive": 2}
    rows = [dict(r, label=names[r["label"]]) for r in b.rows()]
    return {**b.with_source(b.write_jsonl("numbers_src.jsonl", rows)),
            "data.target": {"files": {"train": b.write_jsonl("numbers_tgt.jsonl", rows)}}}


def _numbers_as_texts(b: Bench) -> dict:
    rows = [dict(r, text=i * 7) for i, r in enumerate(b.rows())]
    return b.with_target(b.write_jsonl("numeric_text.jsonl", rows))


def _lists_as_labels(b: Bench) -> dict:
    rows = [dict(r, label=[r["label"], "extra"]) for r in b.rows()]
    return b.with_target(b.write_jsonl("list_labels.jsonl", rows))


def _too_few_rows_to_split(b: Bench) -> dict:
    rows = b.rows()
    return b.with_target(b.write_csv("tiny.csv", [next(r for r in rows if r["label"] == name)
                                                  for name in ("negative", "neutral", "positive")]))


# --- configuration ----------------------------------------------------------------------------


def _set(**changes) -> Callable:
    return lambda b: {**b.overrides, **{k.replace("__", "."): v for k, v in changes.items()}}


def _broken_yaml(b: Bench) -> dict:
    path = b.user / "config.yaml"
    path.write_text("training:\n  batch_size: 8\n   learning_rate: 1e-3\n", encoding="utf-8")
    return {"config_file": path}


def _yaml_not_a_mapping(b: Bench) -> dict:
    path = b.user / "config.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    return {"config_file": path}


# --- output folder ----------------------------------------------------------------------------


def _output_under_a_file(b: Bench) -> dict:
    (b.user / "a_file").write_text("not a folder")
    return {**b.overrides, "output.dir": str(b.user / "a_file" / "run")}


def _user_files_in_output(overwrite: bool) -> Callable:
    def make(b: Bench) -> dict:
        (b.run_dir / "logs").mkdir(parents=True)
        (b.run_dir / "logs" / "notes.txt").write_text("my notes")
        return {**b.overrides, "output.overwrite": overwrite}
    return make


def _a_finished_run(b: Bench) -> dict:
    _copy_finished_run(b)
    return b.overrides


def _copy_finished_run(b: Bench) -> None:
    """The module's finished run, as if it had been made in this user folder (the settings it
    recorded name this folder's data files)."""
    shutil.copytree(b.finished_run, b.run_dir)
    recorded = b.run_dir / "run_config.json"
    recorded.write_text(recorded.read_text().replace(str(b.finished_run.parent), str(b.user)))


def _rerun_after_a_failed_check(b: Bench) -> dict:
    """A run that stopped at a data check left its settings record in the folder; run again
    with the input fixed, it trains (it used to be refused: "already holds a run")."""
    bad = b.user / "data" / "latin1.jsonl"
    bad.write_bytes('{"text": "caf\u00e9", "label": "positive"}\n'.encode("latin-1"))
    with pytest.raises(HfTransferError, match="not valid UTF-8"):
        _run(b.with_target(str(bad)))
    return b.overrides


def _no_free_space(b: Bench) -> dict:
    usage = shutil.disk_usage(b.user)
    b.monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=2**10))
    return b.overrides


# --- resume -----------------------------------------------------------------------------------


def _interrupted(b: Bench) -> Path:
    """The finished run, as a kill after its first checkpoint leaves it."""
    _copy_finished_run(b)
    stage = b.run_dir / "checkpoints" / "source"
    for path in [b.run_dir / "results.json", stage / "result.json"]:
        path.unlink()
    for later in sorted(stage.glob("step_*"))[1:]:
        shutil.rmtree(later)
    shutil.rmtree(b.run_dir / "model")
    return sorted(stage.glob("step_*"))[0]


def _resume(b: Bench, **changes) -> dict:
    return {**b.overrides, "output.resume_from_checkpoint": "latest", **changes}


def _resume_without_checkpoints(b: Bench) -> dict:
    return _resume(b)


def _resume_with_other_settings(b: Bench) -> dict:
    _interrupted(b)
    return _resume(b, **{"training.batch_size": 4, "training.learning_rate": 1e-5})


def _resume_with_other_labels(b: Bench) -> dict:
    """The data file edited in place between the interruption and the resume."""
    _interrupted(b)
    b.write_csv("source.csv", [r for r in b.rows() if r["label"] != "neutral"])
    target = b.user / "data" / "target.jsonl"
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    b.write_jsonl("target.jsonl", [r for r in rows if r["label"] != "neutral"])
    return _resume(b)


def _resume_with_other_rows(b: Bench) -> dict:
    _interrupted(b)
    b.write_csv("source.csv", b.rows()[:-9])
    return _resume(b)


def _resume_from_a_foreign_folder(b: Bench) -> dict:
    _interrupted(b)
    return _resume(b, **{"output.resume_from_checkpoint": str(b.user / "data")})


def _damaged_checkpoint(file_name: str, how: str) -> Callable:
    def make(b: Bench) -> dict:
        checkpoint = _interrupted(b)
        _damage_file(checkpoint / file_name, how)
        return _resume(b)
    return make


def _damage_file(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:  # random bytes, same length
        path.write_bytes(bytes((i * 7919 + 13) % 256 for i in range(len(data))))


# --- weights ----------------------------------------------------------------------------------


def _damaged_weights(how: str) -> Callable:
    def make(b: Bench) -> dict:
        model = b.model_copy()
        weights = model / "model.safetensors"
        if how == "nan":  # a valid header, every float32 of the tensors NaN
            data = weights.read_bytes()
            header = 8 + int.from_bytes(data[:8], "little")
            n = (len(data) - header) // 4
            weights.write_bytes(data[:header] + b"\xff\xff\xff\x7f" * n + data[header + 4 * n:])
        elif how == "missing":
            weights.unlink()
        else:
            _damage_file(weights, how)
        return {**b.overrides, "model.name_or_path": str(model)}
    return make


def _half_precision_checkpoint(b: Bench) -> dict:
    """A checkpoint stored in float16 (many Hub checkpoints are): trained with float32 weights,
    not in pure half precision (whose updates round away; on the CPU a dtype crash)."""
    from safetensors.torch import load_file, save_file

    model = b.model_copy()
    weights = model / "model.safetensors"
    save_file({k: v.half() for k, v in load_file(weights).items()}, weights, metadata={"format": "pt"})
    return {**b.overrides, "model.name_or_path": str(model), "tuning.method": "full"}


def _broken_model_config(b: Bench) -> dict:
    model = b.model_copy()
    (model / "config.json").write_text('{"model_type": "bert", "hidden_size": ', encoding="utf-8")
    return {**b.overrides, "model.name_or_path": str(model)}


def _no_tokenizer(b: Bench) -> dict:
    model = b.model_copy()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (model / name).unlink(missing_ok=True)
    return {**b.overrides, "model.name_or_path": str(model)}


# --- interruptions ----------------------------------------------------------------------------


def _signal_after_first_checkpoint(signum: int) -> Callable:
    """A stop signal right after the first checkpoint (Ctrl-C is SIGINT; a scheduler's
    preemption SIGTERM): the run checkpoints at the next update and stops with Preempted (exit
    75 from a script); a resume then finishes the run."""
    def make(b: Bench) -> dict:
        from hf_transfer.training.checkpoints import CheckpointStore

        save = CheckpointStore.save

        def save_then_signal(self, checkpoint, state):
            save(self, checkpoint, state)
            if state.step == 3:
                signal.raise_signal(signum)

        b.monkeypatch.setattr(CheckpointStore, "save", save_then_signal)
        return {**b.overrides, "output.report": False}
    return make


CASES = [
    # data
    Case("data: JSON lines not in UTF-8", "data", ERROR,
         r"latin1.jsonl is not valid UTF-8 \(line 6, byte b'\\xe9'\); JSON files must be UTF-8", _latin1_jsonl),
    Case("data: a broken JSON line", "data", ERROR,
         r"broken.jsonl line 8 is not valid JSON \(.*\): fix or remove that line", _broken_jsonl_line),
    Case("data: an empty file", "data", ERROR, r"empty.csv is empty \(not even a header row\)", _empty_file),
    Case("data: a header and no rows", "data", ERROR,
         r"`data.target.files.train`: \['.*header.csv'\] has no data rows", _header_only),
    Case("data: no text column", "data", ERROR,
         r"`data.target.text_column`: column 'text' is not in split 'train'. Columns there: label, domain",
         _without_column("text")),
    Case("data: no label column", "data", ERROR,
         r"`data.target.label_column`: column 'label' is not in split 'train'. Columns there: text, domain",
         _without_column("label")),
    Case("data: one class only", "data", ERROR,
         r"one class only \(\['positive'\]\): a classifier needs at least two", _one_class),
    Case("data: label column = text column", "data", ERROR,
         r"`data.source.label_column` and `data.source.text_column` are both 'text'",
         _label_column_is_text_column),
    Case("data: empty texts and missing labels", "data", HANDLED,
         r"dropped 3 of \d+ rows with an empty text or a missing label", _empty_texts_and_labels),
    Case("data: labels that differ only in case", "data", HANDLED,
         r"labels are case-sensitive.*Negative|labels are case-sensitive.*Neutral|labels are "
         r"case-sensitive.*Positive",
         _labels_differ_by_case),
    Case("data: repeated rows", "data", HANDLED, r"data.source: data checks .*repeated texts", _repeated_rows,
         results=lambda r: sum(c["repeated"] + c["also_in_train"] for c in r["data"]["source"]["checks"].values()) >= 5),
    Case("data: one text with two labels", "data", HANDLED, r"data.source: data checks .*texts with 2\+ labels",
         _conflicting_labels, results=lambda r: r["data"]["source"]["checks"]["train"]["conflicting_labels"] == 1),
    Case("data: evaluation texts also in train", "data", HANDLED, r"data.source: data checks .*texts also in train",
         _evaluation_text_in_train,
         results=lambda r: r["data"]["source"]["checks"]["validation"]["also_in_train"] == 10),
    Case("data: a target label the source lacks", "data", ERROR,
         r"`data.target` has labels the source never had: \['furious'\]",
         _target_label_unknown_to_source),
    Case("data: files with different columns", "data", ERROR, r"the files have different columns",
         _files_with_different_columns),
    Case("data: a folder given as a file", "data", ERROR,
         r"`data.target.files.train`: '.*folder.csv' is a folder; name the data file\(s\) in it", _folder_as_file),
    Case("data: a file that does not exist", "data", ERROR,
         r"`data.target.files.train`: no such file '.*nowhere.csv'", _missing_file),
    Case("data: a file of an unknown format", "data", ERROR,
         r"`data.target.files.train`: use one file type per split out of .csv, .json, .jsonl, .parquet "
         r"\(got \['.*notes.docx'\]\)", _unknown_format),
    Case("data: a CSV with another delimiter", "data", ERROR,
         r"Columns there: text;label;domain. The file seems separated by semicolons, not commas", _semicolon_csv),
    Case("data: a filter that keeps nothing", "data", ERROR,
         r"`data.target.filter` \{'domain': 'nowhere'\} keeps no rows of split 'train'. Values present: domain: "
         r"apple",
         _filter_keeps_nothing),
    Case("data: numbers as labels", "data", HANDLED, r"data.source: train 126, validation 18, test 36",
         _numbers_as_labels, results=lambda r: r["labels"] == ["0", "1", "2"]),
    Case("data: numbers as texts", "data", HANDLED,
         r"data.target \[train\]: \d+ of \d+ texts are plain numbers: is `data.target.text_column` the column",
         _numbers_as_texts),
    Case("data: lists as labels", "data", ERROR,
         r"`data.target.label_column`: column 'label' of split 'train' holds List values .* Multi-label data",
         _lists_as_labels),
    Case("data: too few rows to split", "data", ERROR,
         r"data.target \[validation\] has no rows left: check the filter, the split names and the sizes",
         _too_few_rows_to_split),
    # configuration
    Case("config: a misspelt setting", "config", ERROR,
         r"`training.batchsize` is not a known setting. Did you mean `batch_size`\?", _set(training__batchsize=8)),
    Case("config: a value of the wrong type", "config", ERROR, r"`training.batch_size` must be int, got 'eight'",
         _set(training__batch_size="eight")),
    Case("config: a negative learning rate", "config", ERROR,
         r"`training.learning_rate` is -1.0: use a positive value", _set(training__learning_rate=-1)),
    Case("config: batch size 0", "config", ERROR, r"`training.batch_size` is 0: use a positive integer",
         _set(training__batch_size=0)),
    Case("config: an unknown strategy", "config", ERROR,
         r"`strategy.name` is 'nope': choose one of ", _set(strategy__name="nope")),
    Case("config: an unknown tuning method", "config", ERROR,
         r"`tuning.method` is 'qlora': choose one of .* Did you mean `lora`\?", _set(tuning__method="qlora")),
    Case("config: a composition naming an unknown strategy", "config", ERROR,
         r"`strategy.name` has 'nope', which is not a strategy of this scenario: choose from",
         _set(strategy__name=["tapt", "nope"])),
    Case("config: a strategy twice in a composition", "config", ERROR,
         r"`strategy.name` \['sequential', 'sequential'\] names `sequential` twice",
         _set(strategy__name=["sequential", "sequential"])),
    Case("config: two strategies that replace one loss", "config", ERROR,
         r"`strategy.name` composes `dann` and `coral`, which both replace the loss .*: keep one",
         _set(strategy__name=["dann", "coral"])),
    Case("config: auto inside a composition", "config", ERROR,
         r"`strategy.name` composes `auto`, which runs each candidate .*: use it alone",
         _set(strategy__name=["auto", "sequential"])),
    Case("config: labels asked of the unlabelled target text", "config", ERROR,
         r"`data.target_unlabeled.k_shot` is set, but unlabelled text has no labels",
         lambda b: {**b.overrides, "data.target_unlabeled": {**b.overrides["data.target"], "k_shot": 2}}),
    Case("data: k_shot larger than a class", "data", ERROR,
         r"`data.target.k_shot` is 500 but some classes have fewer examples .* Lower `k_shot` to at most",
         lambda b: {**b.overrides, "data.target": {**b.overrides["data.target"], "k_shot": 500}}),
    Case("config: a setting of another strategy", "config", ERROR,
         r"`strategy.dann_weight` is a setting of `dann`", _set(strategy__dann_weight=1.0)),
    Case("config: an unknown baseline", "config", ERROR,
         r"`strategy.baselines` is 'oracle': choose one of target_only, source_only",
         _set(strategy__baselines=["oracle"])),
    Case("config: LoRA targets the model lacks", "config", ERROR,
         r"`tuning.lora_target_modules`: \['q_proj'\] not found in this bert model. Its linear layers are: ",
         _set(tuning__lora_target_modules=["q_proj"])),
    Case("config: max_length beyond the model's positions", "config", ERROR,
         r"`model.max_length` is 100000, but .* reads at most 128 tokens: use at most 128",
         _set(model__max_length=100000)),
    Case("config: a half-precision base with full tuning", "config", ERROR,
         r"`model.dtype` is bfloat16, but `tuning.method` full", _set(model__dtype="bfloat16", tuning__method="full")),
    Case("config: a model folder that does not exist", "config", ERROR,
         r"`model.name_or_path` '/nonexistent/model' is neither a folder here nor a Hub model id",
         _set(model__name_or_path="/nonexistent/model")),
    Case("config: YAML that does not parse", "config", ERROR,
         r"`--config` .*config.yaml is not valid YAML: mapping values are not allowed here.*line 3, column 17",
         _broken_yaml),
    Case("config: YAML that is not a mapping", "config", ERROR,
         r"`--config` .*config.yaml must hold a mapping of sections, not list",
         _yaml_not_a_mapping),
    # output folder
    Case("output: a parent that is a file", "output", ERROR,
         r"`output.dir` '.*a_file/run' cannot be written \(Not a directory\)", _output_under_a_file),
    Case("output: the user's files there", "output", REFUSED,
         r"holds logs, which hf_transfer did not write.*Choose another `--output.dir`", _user_files_in_output(False)),
    Case("output: the user's files there, with overwrite", "output", REFUSED,
         r"holds logs, which hf_transfer did not write.*Choose another `--output.dir`", _user_files_in_output(True)),
    Case("output: an earlier run there", "output", REFUSED, r"already holds a run .*--output.overwrite true",
         _a_finished_run),
    Case("output: a rerun after a failed check", "output", HANDLED, r"data.target: train \d+, validation",
         _rerun_after_a_failed_check, results=lambda r: r["stages"][0]["steps"] == 6),
    Case("output: no free space", "output", ERROR,
         r"`output.dir` .* has 0.0 MiB free, but this run needs about 0.1 MiB for its saved model: free some",
         _no_free_space),
    # resume
    Case("resume: no checkpoints", "resume", ERROR, r"has no checkpoints/ folder", _resume_without_checkpoints),
    Case("resume: other settings", "resume", REFUSED,
         r"other settings: `training.batch_size` was 8, now 4; `training.learning_rate` was 0.005, now 1e-05",
         _resume_with_other_settings),
    Case("resume: other labels", "resume", REFUSED,
         r"started on other data: the labels were \['negative', 'neutral', 'positive'\]; now "
         r"\['negative', 'positive'\]", _resume_with_other_labels),
    Case("resume: other rows", "resume", REFUSED,
         r"started on other data: the rows were source/train 126, source/validation 18, source/test 36, "
         r"target/train 126, target/validation 18, target/test 36; now source/train 120, ", _resume_with_other_rows),
    Case("resume: a folder that is not a checkpoint", "resume", ERROR, r"is not a checkpoint of this run",
         _resume_from_a_foreign_folder),
    Case("resume: truncated checkpoint weights", "resume", ERROR,
         r"Checkpoint .*step_0000003 cannot be loaded \(.*\): it is damaged",
         _damaged_checkpoint("model.safetensors", "truncated"), weights_may_load=True),
    Case("resume: overwritten optimizer state", "resume", ERROR,
         r"Checkpoint .*step_0000003 cannot be loaded \(.*\): it is damaged",
         _damaged_checkpoint("optimizer.bin", "random"), weights_may_load=True),
    # weights
    Case("weights: truncated safetensors", "weights", ERROR,
         r"safetensors weights of '.*model' are damaged \(.*\): the file is truncated", _damaged_weights("truncated"),
         weights_may_load=True),
    Case("weights: random bytes", "weights", ERROR, r"safetensors weights of '.*model' are damaged",
         _damaged_weights("random"), weights_may_load=True),
    Case("weights: NaN values", "weights", ERROR, r"'.*model' has non-finite \(NaN/inf\) weights",
         _damaged_weights("nan"), weights_may_load=True),
    Case("weights: no weights file", "weights", ERROR,
         r"'.*model' has no safetensors weights \(only pickle files such as pytorch_model.bin, or none\)",
         _damaged_weights("missing"), weights_may_load=True),
    Case("weights: a half-precision checkpoint", "weights", HANDLED, r"tuning full: [\d,]+ of [\d,]+ parameters train",
         _half_precision_checkpoint, results=lambda r: r["stages"][0]["steps"] == 6),
    Case("weights: a broken config.json", "weights", ERROR,
         r"`model.name_or_path` '.*model' is a folder, but its model could not be loaded: .*config.json.* is not a "
         r"valid JSON file", _broken_model_config),
    Case("weights: no tokenizer", "weights", ERROR,
         r"`model.name_or_path` '.*model' has no tokenizer files .* knows only its 5 special tokens", _no_tokenizer),
    # interruptions
    Case("interruption: Ctrl-C during training", "interruption", HANDLED,
         r"Received SIGINT: stopped stage 'source' at optimizer step 4",
         _signal_after_first_checkpoint(signal.SIGINT)),
    Case("interruption: SIGTERM during training", "interruption", HANDLED,
         r"Received SIGTERM: stopped stage 'source' at optimizer step 4",
         _signal_after_first_checkpoint(signal.SIGTERM)),
]


# --- the harness ------------------------------------------------------------------------------


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _run(overrides: dict) -> dict:
    config_file = overrides.pop("config_file", None)
    config = load_config(config_file, overrides=overrides) if config_file else load_config(overrides=overrides)
    return DomainAdaptationRecipe(config).run()


@pytest.fixture(scope="module")
def finished_run(tiny_model, tiny_data, tmp_path_factory) -> tuple[Path, dict]:
    """One small finished run (checkpoints at steps 3 and 6) and its settings."""
    folder = tmp_path_factory.mktemp("catalogue")
    data = folder / "data"
    data.mkdir()
    shutil.copy(tiny_data["source"], data / "source.csv")
    shutil.copy(tiny_data["target"], data / "target.jsonl")
    overrides = {
        "model.name_or_path": str(tiny_model), "model.max_length": 32,
        "data.source": {"files": {"train": str(data / "source.csv")}},
        "data.target": {"files": {"train": str(data / "target.jsonl")}},
        "tuning.method": "lora", "training.max_steps": 6, "training.eval_strategy": "steps",
        "training.eval_steps": 3, "training.batch_size": 8, "training.eval_batch_size": 64,
        "training.learning_rate": 5e-3, "output.report": False, "output.dir": str(folder / "run"),
    }
    _run(dict(overrides))
    return folder, overrides


@pytest.fixture
def bench(finished_run, tiny_model, tmp_path, monkeypatch) -> Bench:
    source_folder, overrides = finished_run
    user = tmp_path / "user"
    shutil.copytree(source_folder / "data", user / "data")
    moved = json.loads(json.dumps(overrides).replace(str(source_folder), str(user)))
    return Bench(user, moved, tiny_model, source_folder / "run", monkeypatch)


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input(case: Case, bench: Bench, caplog):
    overrides = case.make(bench)
    if not case.weights_may_load and case.outcome != HANDLED:
        import hf_transfer.run.pipeline as pipeline

        bench.monkeypatch.setattr(pipeline, "load_classifier_model",
                                  lambda *a, **k: pytest.fail("weights loaded before the check"))
    before = _hashes(bench.user)
    with caplog.at_level(logging.INFO, logger="hf_transfer"):
        if case.outcome == HANDLED:
            _run_handled(case, overrides, caplog)
        else:
            with pytest.raises(HfTransferError) as err:
                _run(overrides)
            assert re.search(case.expect, str(err.value), re.S), str(err.value)
            assert "Traceback" not in str(err.value)
            print(f"CATALOGUE {case.kind}: {err.value}")
    after = _hashes(bench.user)
    # A run that finishes rewrites its own folder's records (a rerun: run_config.json); an error
    # or a refusal changes nothing at all.
    own = "run/" if case.outcome == HANDLED else None
    changed = [p for p, h in before.items() if after.get(p) != h and not (own and p.startswith(own))]
    assert not changed, f"the run changed or removed the user's files: {changed}"
    outside = [p for p in set(after) - set(before) if not p.startswith("run/")]
    assert not outside, f"the run wrote outside its output folder: {outside}"


def _run_handled(case: Case, overrides: dict, caplog) -> None:
    if case.group == "interruption":
        with pytest.raises(Preempted, match=case.expect):
            _run(dict(overrides))
        results = _run({**overrides, "output.resume_from_checkpoint": "latest"})
        assert results["stages"][0]["steps"] == 6
        return
    results = _run(overrides)
    assert results["eval_matrix"] and case.results(results)
    assert re.search(case.expect, caplog.text, re.S), caplog.text[-3000:]


def test_the_catalogue_is_documented_and_large_enough():
    """docs/reliability.md lists every kind, and the counts it states are this table's."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text(encoding="utf-8")
    missing = [c.kind for c in CASES if f"| {c.kind} |" not in doc]
    assert not missing, f"not in docs/reliability.md: {missing}"
    counts = Counter(c.outcome for c in CASES)
    assert len(CASES) >= 40 and set(c.group for c in CASES) == set(GROUPS)
    assert (f"{len(CASES)} kinds: {counts[ERROR]} clear errors, {counts[HANDLED]} handled, "
            f"{counts[REFUSED]} refused") in doc
