"""Tests for hf_transfer.metrics (the numpy scores runs use, and the bundled, offline `evaluate`
module that gives the same scores)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import hf_transfer.metrics as metrics_mod
from hf_transfer.metrics import (
    CLASSIFICATION_METRIC_PATH,
    classification_metrics,
    load_classification_metric,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    num_labels = int(rng.integers(3, 7))
    n = int(rng.integers(5, 80))
    refs = rng.integers(0, num_labels, size=n)
    preds = np.where(rng.random(n) < 0.5, refs, rng.integers(0, num_labels, size=n))
    # Class 0 is never predicted (but usually occurs in the references).
    preds[preds == 0] = 1
    return preds, refs, num_labels


# ---------------------------------------------------------------- cross-check


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_matches_sklearn(seed):
    sk = pytest.importorskip("sklearn.metrics")
    preds, refs, num_labels = _random_case(seed)
    labels = list(range(num_labels))
    names = [f"c{i}" for i in labels]

    out = classification_metrics(preds, refs, names)

    assert out["n"] == len(refs)
    assert out["accuracy"] == pytest.approx(sk.accuracy_score(refs, preds))
    assert out["macro_f1"] == pytest.approx(
        sk.f1_score(refs, preds, average="macro", labels=labels, zero_division=0)
    )
    expected = sk.f1_score(refs, preds, average=None, labels=labels, zero_division=0)
    assert list(out["f1_per_class"]) == names
    assert list(out["f1_per_class"].values()) == pytest.approx(list(expected))
    assert out["f1_per_class"]["c0"] == 0.0  # never predicted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_evaluate_module_gives_the_runs_scores(seed):
    preds, refs, num_labels = _random_case(seed)
    out = classification_metrics(preds, refs, [f"c{i}" for i in range(num_labels)])
    module = load_classification_metric().compute(predictions=preds, references=refs,
                                                  labels=list(range(num_labels)))
    assert module == {"accuracy": out["accuracy"], "macro_f1": out["macro_f1"],
                      "f1_per_class": list(out["f1_per_class"].values())}


def test_scoring_a_run_does_not_import_evaluate():
    """Runs score in numpy: `evaluate` (and the transformers pipelines it imports) stays out
    of a run's process (0.6-1.6 s inside its first evaluation on a 2-core CPU)."""
    code = ("import sys; from hf_transfer.metrics import classification_metrics; "
            "classification_metrics([0, 1, 1], [0, 1, 0], ['a', 'b', 'c']); "
            "print('evaluate' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_class_absent_from_preds_and_refs_counts_as_zero():
    sk = pytest.importorskip("sklearn.metrics")
    preds, refs = [0, 1, 1, 0, 2], [0, 1, 0, 0, 2]
    names = ["a", "b", "c", "unused"]
    out = classification_metrics(preds, refs, names)
    assert out["f1_per_class"]["unused"] == 0.0
    assert out["macro_f1"] == pytest.approx(
        sk.f1_score(refs, preds, average="macro", labels=[0, 1, 2, 3], zero_division=0)
    )
    # ... and it pulls the average down compared with scoring only the present classes.
    assert out["macro_f1"] == pytest.approx(sum(list(out["f1_per_class"].values())[:3]) / 4)


@pytest.mark.parametrize("seed", [0, 1])
def test_metric_default_labels_is_sorted_union(seed):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    refs = rng.choice([7, 2, 5, -1], size=30)
    preds = rng.choice([2, 5, 9], size=30)
    union = sorted(set(refs.tolist()) | set(preds.tolist()))
    out = load_classification_metric().compute(predictions=preds, references=refs)
    assert out["f1_per_class"] == pytest.approx(
        list(sk.f1_score(refs, preds, average=None, labels=union, zero_division=0))
    )
    assert out["macro_f1"] == pytest.approx(sk.f1_score(refs, preds, average="macro", zero_division=0))
    assert out["accuracy"] == pytest.approx(sk.accuracy_score(refs, preds))


# ---------------------------------------------------------------- edge cases


def test_perfect_predictions():
    refs = [0, 1, 2, 2, 1, 0, 2]
    out = classification_metrics(refs, refs, ["a", "b", "c"])
    assert out == {"accuracy": 1.0, "macro_f1": 1.0, "f1_per_class": {"a": 1.0, "b": 1.0, "c": 1.0}, "n": 7}


def test_all_wrong_predictions():
    refs = [0, 1, 2, 0]
    preds = [1, 2, 0, 2]
    out = classification_metrics(preds, refs, ["a", "b", "c"])
    assert out["accuracy"] == 0.0
    assert out["macro_f1"] == 0.0
    assert out["f1_per_class"] == {"a": 0.0, "b": 0.0, "c": 0.0}
    assert out["n"] == 4


def test_per_class_aligned_with_label_names():
    names = ["negative", "neutral", "positive"]
    # positive: always right; neutral: never right; negative: half.
    refs = [2, 2, 2, 1, 1, 0, 0]
    preds = [2, 2, 2, 0, 0, 0, 1]
    out = classification_metrics(preds, refs, names)
    assert list(out["f1_per_class"]) == names
    assert out["f1_per_class"]["positive"] == 1.0
    assert out["f1_per_class"]["neutral"] == 0.0
    # negative: TP=1, FP=2, FN=1 -> 2/(2+2+1)
    assert out["f1_per_class"]["negative"] == pytest.approx(2 / 5)
    assert out["n"] == 7
    assert isinstance(out["accuracy"], float) and isinstance(out["n"], int)


def test_accepts_numpy_and_torch_inputs():
    torch = pytest.importorskip("torch")
    refs = [0, 1, 1, 0]
    preds = [0, 1, 0, 0]
    expected = classification_metrics(preds, refs, ["a", "b"])
    assert classification_metrics(np.array(preds), np.array(refs), ["a", "b"]) == expected
    assert classification_metrics(torch.tensor(preds), torch.tensor(refs), ["a", "b"]) == expected


# ---------------------------------------------------------------- bad inputs


@pytest.fixture
def evaluate_must_not_run(monkeypatch):
    def _boom(*args, **kwargs):
        raise AssertionError("scoring was called before input validation")

    monkeypatch.setattr(metrics_mod, "classification_scores", _boom)


def test_length_mismatch_raises_before_evaluate(evaluate_must_not_run):
    with pytest.raises(ValueError, match=r"same length.*3 predictions and 2 references"):
        classification_metrics([0, 1, 1], [0, 1], ["a", "b"])


@pytest.mark.parametrize(
    ("preds", "refs", "match"),
    [
        ([], [], "0 examples"),
        ([0, 2], [0, 1], r"`predictions` contains class ids outside range\(0, 2\)"),
        ([0, 1], [0, -100], r"`references` contains class ids outside range\(0, 2\)"),
        ([[0.1, 0.9], [0.8, 0.2]], [1, 0], "1-D"),
        ([0.2, 0.9], [1, 0], "integer class ids"),
    ],
)
def test_bad_inputs_raise_before_evaluate(evaluate_must_not_run, preds, refs, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(preds, refs, ["a", "b"])


def test_metric_rejects_duplicate_labels():
    with pytest.raises(ValueError, match="duplicates"):
        load_classification_metric().compute(predictions=[0, 1], references=[0, 1], labels=[0, 1, 1])


# ---------------------------------------------------------------- loading


def test_metric_path_is_local_module_folder():
    assert os.path.isabs(CLASSIFICATION_METRIC_PATH)
    assert os.path.isfile(os.path.join(CLASSIFICATION_METRIC_PATH, "classification.py"))


def test_loads_offline_without_network(monkeypatch):
    evaluate = pytest.importorskip("evaluate")

    def _no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)

    # Uncached evaluate.load by path: must not touch the network.
    fresh = evaluate.load(CLASSIFICATION_METRIC_PATH, keep_in_memory=True)
    assert isinstance(fresh, evaluate.EvaluationModule)
    assert fresh.compute(predictions=[1, 0], references=[1, 1], labels=[0, 1])["accuracy"] == 0.5

    metric = load_classification_metric()
    assert isinstance(metric, evaluate.EvaluationModule)
    assert metric.info.citation == ""
    assert metric.info.description and metric.info.inputs_description


def test_loader_is_cached_and_reusable():
    metric = load_classification_metric()
    assert load_classification_metric() is metric
    first = metric.compute(predictions=[0, 0, 0], references=[0, 1, 1], labels=[0, 1])
    # A second compute sees only its own inputs (compute() resets the buffer).
    second = metric.compute(predictions=[1], references=[1], labels=[0, 1])
    assert first["accuracy"] == pytest.approx(1 / 3)
    assert second == {"accuracy": 1.0, "macro_f1": 0.5, "f1_per_class": [0.0, 1.0]}
    # Still usable after a failing compute.
    with pytest.raises(ValueError):
        metric.compute(predictions=[0], references=[0], labels=[0, 0])
    assert metric.compute(predictions=[0, 1], references=[0, 0])["accuracy"] == 0.5
    assert len(metric) == 0
