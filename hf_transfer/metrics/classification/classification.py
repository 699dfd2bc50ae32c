# Copyright hf_transfer authors.
# Licensed under the Apache License, Version 2.0.
#
# NOTE: this file is an `evaluate` module script, loaded by path with
# `evaluate.load(<folder>)`; it is not imported as part of `hf_transfer`. The scores are
# `hf_transfer.metrics.scores` (the one implementation, also what runs call directly).
# evaluate parses this script's import lines with a regex to find its
# dependencies, so keep exactly one plain `import x` per line (no
# `import a, b`, no relative imports) and do not start any line inside a
# string with "import" or "from".
"""Accuracy, macro-F1 and per-class F1 for single-label classification."""

import datasets
import evaluate
from hf_transfer.metrics.scores import classification_scores


_DESCRIPTION = """\
Single-label classification metrics computed with plain numpy:

- accuracy: fraction of examples where prediction == reference (over all
  examples, whatever `labels` is).
- f1_per_class: for each class c in `labels` (same order),
  F1_c = 2*TP_c / (2*TP_c + FP_c + FN_c), with TP/FP/FN counted one-vs-rest.
  Convention: when the denominator is 0 -- i.e. class c appears neither in
  the predictions nor in the references -- F1_c is 0.0 (not NaN, not
  skipped). Such a class only exists in the output if it is listed in
  `labels`, and then it pulls the macro average down.
- macro_f1: unweighted mean of f1_per_class over `labels`.

This matches scikit-learn's
f1_score(references, predictions, average=None | "macro", labels=labels,
zero_division=0). Predictions/references whose value is not in `labels`
still count as FP/FN for the listed classes (as in scikit-learn).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): gold class ids, same length as predictions.
    labels (list of int, optional): the classes to score, in output order.
        Default: sorted union of the values in predictions and references.
        Must not contain duplicates. A class listed here that occurs in
        neither predictions nor references gets F1 = 0.0.
Returns:
    accuracy (float): in [0, 1].
    macro_f1 (float): mean of f1_per_class (0.0 when `labels` is empty).
    f1_per_class (list of float): F1 of each class, aligned with `labels`.
Examples:
    >>> metric = evaluate.load("path/to/hf_transfer/metrics/classification")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], labels=[0, 1, 2])
    {'accuracy': 0.666..., 'macro_f1': 0.444..., 'f1_per_class': [0.666..., 0.666..., 0.0]}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                }
            ),
            # _compute receives numpy arrays instead of python lists.
            format="numpy",
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"
            ],
        )

    def _compute(self, predictions, references, labels=None):
        return classification_scores(predictions, references, labels)
