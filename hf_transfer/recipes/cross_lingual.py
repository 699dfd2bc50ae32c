"""Cross-lingual transfer: the documents are in other languages (X_s != X_T).

Each dataset names its language through ``group_column`` (e.g. ``language`` of the built-in
``chatterbot`` data, or a column of your own files); ``filter`` picks the languages.

Strategies
----------
``zero_shot``
    Train on the source language(s) only; evaluate on every language.
``few_shot``
    ``zero_shot``, then continue on ``data.target.k_shot`` labelled examples per class in
    *each* target language (seeded), selecting on ``target/validation``.
``multi_source``
    Train on several source languages together (the source data must hold two or more).

The best source-stage checkpoint is chosen on the source validation split unless
``strategy.select_on`` is ``target`` (the choice is recorded in ``results.json``; selection
on the source language is known to mislead for target languages). Only labels present in the
source and in every target language are kept (what was dropped is logged and recorded).
``results.json`` gains ``languages``: one row per language on the test split with accuracy,
macro-F1 and the gap to the source language(s).
"""

from __future__ import annotations

import logging

import datasets

from ..engine import Stage
from ..errors import DataError
from .base import Recipe, RunData

logger = logging.getLogger(__name__)


class CrossLingualRecipe(Recipe):
    scenario = "cross_lingual"
    source_only_strategies = ("zero_shot", "multi_source")  # a `source_only` baseline would repeat them
    strategies = ("zero_shot", "few_shot", "multi_source")

    def __init__(self, config):
        super().__init__(config)
        self.dropped_labels: list[str] = []

    def config_problems(self) -> list[str]:
        config = self.config
        problems = [
            f"`data.{role}.group_column` is not set: cross-lingual runs need the column that "
            "names each document's language (e.g. `language` for the built-in chatterbot data)."
            for role in ("source", "target") if not getattr(config.data, role).group_column
        ]
        if config.strategy.name == "few_shot" and config.data.target.k_shot is None:
            problems.append("`data.target.k_shot` is not set: `few_shot` trains on k labelled "
                            "examples per class in each target language; set k (e.g. 16).")
        return problems

    def stages(self, data: RunData) -> list[Stage]:
        if self.config.strategy.name == "multi_source":
            languages = _languages(data.source)
            if len(languages) < 2:
                raise DataError(f"`multi_source` needs two or more source languages; "
                                f"`data.source` holds {languages}. Widen `data.source.filter`.")
        stages = [self.source_stage(data)]
        if self.config.strategy.name == "few_shot":
            stages.append(self.target_stage(data))
        return stages

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
        target_languages = _languages(data.target)
        for language in target_languages:
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
            out |= {label for label, g in zip(split["label"], split["group"]) if g == language}
    return out


def _scores(row: dict) -> dict:
    return {"accuracy": row["accuracy"], "macro_f1": row["macro_f1"], "n": row["n"]}
