"""Evaluation metrics shipped with hf_transfer.

Runs score with :func:`classification_metrics`, plain numpy (:mod:`.scores`). The same scores
are shipped as an `evaluate` module script inside this package, for code that wants an
``evaluate.EvaluationModule``: :func:`load_classification_metric` loads it *by path*, so
nothing here ever contacts the Hugging Face Hub (``evaluate.load("accuracy")`` would, and
fails offline).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from hf_transfer.errors import DataError
from hf_transfer.metrics.scores import classification_scores

if TYPE_CHECKING:  # evaluate (and datasets/pyarrow) is imported lazily
    import evaluate

__all__ = [
    "CLASSIFICATION_METRIC_PATH",
    "classification_metrics",
    "load_classification_metric",
]

#: Absolute path of the `evaluate` module folder holding ``classification.py``.
CLASSIFICATION_METRIC_PATH: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "classification")


@functools.lru_cache(maxsize=None)
def _load_cached(**kwargs: Any) -> evaluate.EvaluationModule:
    import evaluate

    return evaluate.load(CLASSIFICATION_METRIC_PATH, **kwargs)


def load_classification_metric(**kwargs: Any) -> evaluate.EvaluationModule:
    """Load the bundled classification metric (an ``evaluate.EvaluationModule``).

    ``kwargs`` are forwarded to ``evaluate.load`` (e.g. ``num_process``,
    ``process_id``, ``experiment_id``, ``cache_dir``). Defaults to
    ``keep_in_memory=True`` so that ``compute()`` buffers in RAM instead of
    writing/locking an Arrow file under ``~/.cache/huggingface/metrics`` (pass
    ``keep_in_memory=False`` for evaluate's multi-process gathering).

    Loading by local path never touches the network, with or without
    ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` / ``HF_EVALUATE_OFFLINE``.
    It does copy the script into ``HF_MODULES_CACHE`` (under a file lock) on
    every ``evaluate.load`` call, so the instance is cached per process and per
    kwargs. Reusing the instance is safe: ``EvaluationModule.compute()``
    finalizes and then clears its buffer (writer/data are reset), so each
    ``compute(predictions=..., references=...)`` only sees its own inputs.
    The shared instance is NOT safe to use from several threads at once, and
    callers must not leave pending ``add``/``add_batch`` calls on it.
    Unhashable kwargs (e.g. a ``DownloadConfig``) bypass the cache.
    """
    kwargs.setdefault("keep_in_memory", kwargs.get("num_process", 1) == 1)
    try:
        return _load_cached(**kwargs)
    except TypeError as err:
        if "unhashable" not in str(err):
            raise
        import evaluate

        return evaluate.load(CLASSIFICATION_METRIC_PATH, **kwargs)


def _to_class_ids(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"`{name}` must be a 1-D sequence of class ids, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"`{name}` must contain integer class ids, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"`{name}` must contain integer class ids (did you pass logits instead of argmax?)")
    return arr.astype(np.int64)


def classification_metrics(
    predictions: Sequence[int] | np.ndarray,
    references: Sequence[int] | np.ndarray,
    label_names: Sequence[str],
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class F1 for single-label classification.

    Class ids are ``0 .. len(label_names) - 1``; every class in ``label_names``
    is scored, and a class that occurs in neither predictions nor references
    gets F1 = 0.0 (counted in the macro average), as sklearn's
    ``f1_score(average="macro", labels=range(len(label_names)), zero_division=0)``.

    Returns ``{"accuracy": float, "macro_f1": float,
    "f1_per_class": {label_name: float}, "n": int}``.

    Raises ``hf_transfer.errors.DataError`` (a ``ValueError``) before scoring
    if the inputs have different lengths, are empty, are not 1-D
    integer class ids, or contain ids outside ``range(len(label_names))``.
    """
    label_names = list(label_names)
    if not label_names:
        raise DataError("`label_names` must not be empty")
    if len(set(label_names)) != len(label_names):
        raise DataError(f"`label_names` must be unique, got {label_names}")
    preds = _to_class_ids(predictions, "predictions")
    refs = _to_class_ids(references, "references")
    if preds.shape[0] != refs.shape[0]:
        raise DataError(
            f"predictions and references must have the same length, "
            f"got {preds.shape[0]} predictions and {refs.shape[0]} references"
        )
    if preds.shape[0] == 0:
        raise DataError("cannot compute classification metrics on 0 examples")
    num_labels = len(label_names)
    for name, arr in (("predictions", preds), ("references", refs)):
        bad = arr[(arr < 0) | (arr >= num_labels)]
        if bad.size:
            raise DataError(
                f"`{name}` contains class ids outside range(0, {num_labels}) "
                f"(len(label_names)={num_labels}): {sorted(set(bad.tolist()))[:10]}"
            )

    result = classification_scores(preds, refs, labels=range(num_labels))
    return {
        "accuracy": float(result["accuracy"]),
        "macro_f1": float(result["macro_f1"]),
        "f1_per_class": dict(zip(label_names, (float(x) for x in result["f1_per_class"]))),
        "n": int(preds.shape[0]),
    }
