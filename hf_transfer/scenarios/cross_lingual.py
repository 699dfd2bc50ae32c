"""Cross-lingual transfer: the documents are in other languages (X_s != X_T).

Each dataset names its language through ``group_column`` (e.g. ``language`` of the built-in
``chatterbot`` data, or a column of your own files); ``filter`` picks the languages.
Strategies: ``zero_shot`` (source language(s) only), ``few_shot`` (then k labelled examples
per class in each target language), ``multi_source`` (several source languages together).

The best source-stage checkpoint is chosen on the source validation split unless
``strategy.select_on`` is ``target`` (recorded in ``results.json``; selection on the source
language is known to mislead for target languages). Only labels present in the source and in
every target language are kept (what was dropped is logged and recorded). ``results.json``
gains ``languages``: one row per language on the test split with accuracy, macro-F1 and the
gap to the source language(s).
"""

from __future__ import annotations

import logging

import datasets

from ..data.columns import column_values
from ..errors import DataError
from ..run.pipeline import Recipe, RunData

logger = logging.getLogger(__name__)


class CrossLingualRecipe(Recipe):
    scenario = "cross_lingual"

    def __init__(self, config, arm=None):
        self.dropped_labels: list[str] = []
        super().__init__(config, arm)

    def config_problems(self) -> list[str]:
        return [
            f"`data.{role}.group_column` is not set: cross-lingual runs need the column that "
            "names each document's language (e.g. `language` for the built-in chatterbot data)."
            for role in ("source", "target") if not getattr(self.config.data, role).group_column
        ]

    def align_labels(self, source: datasets.DatasetDict, target: datasets.DatasetDict):
        """Keep the labels that the source and every target language have."""
        shared = _labels(source)
        for language in _languages(target):
            shared &= _labels(target, language)
        dropped = sorted((_labels(source) | _labels(target)) - shared)
        if not shared:
            raise DataError("Source and target languages share no label: check the filters.")
        if dropped:
            logger.info("Labels not shared by every language, dropped: %s", ", ".join(dropped))
            keep = lambda row: row["label"] in shared  # noqa: E731
            source, target = source.filter(keep), target.filter(keep)
        self.dropped_labels = dropped
        return source, target

    def extra_results(self, data: RunData, matrix: dict) -> dict:
        source_row = matrix["source/test"]
        rows = {"+".join(_languages(data.source)): {**_scores(source_row), "role": "source"}}
        for language in _languages(data.target):
            row = matrix.get(f"target/test[{language}]", matrix["target/test"])
            rows[language] = {
                **_scores(row), "role": "target",
                "gap_accuracy": round(row["accuracy"] - source_row["accuracy"], 6),
                "gap_macro_f1": round(row["macro_f1"] - source_row["macro_f1"], 6),
            }
        return {"languages": rows, "dropped_labels": self.dropped_labels,
                "model_selection": f"{self.config.strategy.select_on}/validation"}


def _languages(data: datasets.DatasetDict) -> list[str]:
    return sorted({g for split in data.values() for g in split.unique("group")})


def _labels(data: datasets.DatasetDict, language=None) -> set:
    out = set()
    for split in data.values():
        if language is None:
            out |= set(split.unique("label"))
        else:
            out |= {label for label, g in zip(column_values(split, "label"), column_values(split, "group")) if g == language}
    return out


def _scores(row: dict) -> dict:
    return {"accuracy": row["accuracy"], "macro_f1": row["macro_f1"], "n": row["n"]}
