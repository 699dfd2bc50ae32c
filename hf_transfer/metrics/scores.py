"""The classification scores themselves, in plain numpy: the one implementation behind
:func:`hf_transfer.metrics.classification_metrics` (every evaluation of a run) and the bundled
`evaluate` module (``hf_transfer/metrics/classification``, for ``evaluate.load`` users).

Runs score here directly: importing `evaluate` pulls in transformers' pipelines (0.6-1.6 s
per process on a 2-core CPU, inside the first evaluation) and each ``compute`` goes through
an Arrow buffer (6-8 ms), for what is two ``bincount`` calls."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def classification_scores(predictions: np.ndarray, references: np.ndarray,
                          labels: Optional[Sequence[int]] = None) -> dict:
    """Accuracy, macro-F1 and F1 per class of 1-D integer class ids (same length, not empty).

    ``labels``: the classes to score, in output order (default: the sorted union of the values);
    a listed class that occurs in neither predictions nor references gets F1 = 0.0 and counts
    in the macro average, as sklearn's ``f1_score(average="macro", labels=..., zero_division=0)``.
    Returns ``{"accuracy", "macro_f1", "f1_per_class"}`` (the last aligned with ``labels``)."""
    preds, refs = _int_vector(predictions, "predictions"), _int_vector(references, "references")
    if preds.shape != refs.shape:
        raise ValueError(f"predictions and references must have the same length, got {preds.shape[0]} "
                         f"and {refs.shape[0]}")
    if preds.size == 0:
        raise ValueError("Cannot compute classification metrics on 0 examples")
    if labels is None:
        labels_arr = np.union1d(preds, refs)  # sorted, unique
    else:
        labels_arr = _int_vector(list(labels), "labels")
        if np.unique(labels_arr).size != labels_arr.size:
            raise ValueError(f"`labels` must not contain duplicates, got {list(labels)}")
    # One-vs-rest counts via bincount over a shared index of all values (memory O(n), works
    # for negative or sparse class ids too).
    n = preds.size
    _, inverse = np.unique(np.concatenate([preds, refs, labels_arr]), return_inverse=True)
    inverse = inverse.reshape(-1)
    k = int(inverse.max()) + 1
    pred_idx, ref_idx, label_idx = inverse[:n], inverse[n: 2 * n], inverse[2 * n:]
    tp = np.bincount(ref_idx[preds == refs], minlength=k)[label_idx]
    # 2*TP + FP + FN == (#predicted as c) + (#references equal to c)
    denom = np.bincount(pred_idx, minlength=k)[label_idx] + np.bincount(ref_idx, minlength=k)[label_idx]
    f1 = np.zeros(label_idx.shape, dtype=np.float64)
    np.divide(2.0 * tp, denom, out=f1, where=denom > 0)
    return {
        "accuracy": float(np.mean(preds == refs)),
        "macro_f1": float(f1.mean()) if f1.size else 0.0,
        "f1_per_class": [float(x) for x in f1],
    }


def _int_vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"`{name}` must contain integer class ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)
