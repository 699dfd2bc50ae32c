"""Self-training (pseudo-labelling) on the target's unlabelled text: the classic transductive
method (Yarowsky 1995; class-balanced as in Zou et al., ECCV 2018).

Stage ``source`` trains on the labelled source. Each round then predicts the target's
training text (its labels are never read for training), keeps the predictions whose
probability reaches `strategy.pseudo_label_threshold`, at most the same number per predicted
class (the most confident first), and continues training on the source plus those
pseudo-labelled texts (stage ``round_<r>``). Balancing per class keeps a classifier that
favours one class from teaching itself to predict nothing else.

Every process computes the same pseudo-labels: the predictions are gathered from every
process, each row once, in row order, before they are selected. A resumed run
computes them again from the same weights (the previous stage's restored checkpoint), so a
round resumed midway reads the same examples.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional

import datasets
import torch
from torch import nn

from ..config import setting
from ..data.tokenize import MODEL_COLUMNS
from ..training import Stage
from .registry import StrategyOptions, register_strategy
from .base import source_labelled
from .unlabeled import UnlabeledTargetStrategy

logger = logging.getLogger("hf_transfer")

ROUND_PREFIX = "round_"


def select_pseudo_labels(probabilities: torch.Tensor, threshold: float,
                         per_class: Optional[int] = None) -> tuple[list[int], list[int], dict]:
    """Rows to pseudo-label and their labels (the predicted class), class-balanced.

    A row qualifies when its highest probability is at least ``threshold``. Each predicted
    class keeps its most confident qualifying rows, at most ``n`` of them: ``per_class`` when
    given, else as many as the class with the fewest qualifying rows has — so a class that
    nobody predicts confidently stops the round (``n`` = 0) rather than letting a classifier
    that favours one class teach itself to predict nothing else. Returns ``(rows, labels,
    counts)``; ``counts``: qualifying and kept rows per class index, and ``n``.
    """
    confidence, predicted = probabilities.max(dim=-1)
    qualifying = [torch.nonzero((predicted == c) & (confidence >= threshold)).flatten()
                  for c in range(probabilities.shape[-1])]
    n = per_class if per_class is not None else min(len(rows) for rows in qualifying)
    rows, labels = [], []
    for c, candidates in enumerate(qualifying):
        # Most confident first; the stable sort breaks ties by row order (the same everywhere).
        order = torch.argsort(confidence[candidates], descending=True, stable=True)
        kept = candidates[order[:n]].tolist()
        rows += kept
        labels += [c] * len(kept)
    counts = {"qualifying": [len(r) for r in qualifying], "kept": [labels.count(c) for c in range(len(qualifying))],
              "per_class": n}
    return rows, labels, counts


def with_pseudo_labels(source: datasets.Dataset, target_text: datasets.Dataset, rows: list[int],
                       labels: list[int]) -> datasets.Dataset:
    """The labelled source followed by the chosen target rows with their pseudo-labels, in the
    columns the training loader reads, with a fresh row index ``idx``."""
    columns = [c for c in (*MODEL_COLUMNS, "length") if c in source.column_names
               and (c == "labels" or c in target_text.column_names)]
    source = source.select_columns(columns)
    pseudo = target_text.select(rows).select_columns([c for c in columns if c != "labels"])
    pseudo = pseudo.add_column("labels", labels).cast(source.features)
    mixed = datasets.concatenate_datasets([source, pseudo])
    return mixed.add_column("idx", list(range(len(mixed))))


@dataclass
class SelfTrainingOptions(StrategyOptions):
    self_training_rounds: int = setting(
        2, "`self_training`: rounds of pseudo-labelling the target text and training on the source "
        "plus those texts, after the source stage."
    )
    pseudo_label_threshold: float = setting(
        0.7, "`self_training`: a target text is pseudo-labelled when the classifier's highest class "
        "probability reaches this value (0 < threshold < 1)."
    )
    pseudo_labels_per_class: Optional[int] = setting(
        None, "`self_training`: at most this many pseudo-labelled texts per predicted class and "
        "round, the most confident first. null: as many as the predicted class with the fewest "
        "texts above the threshold has (equal numbers per class; none at all when a class has "
        "none, so a classifier that favours one class cannot reinforce it)."
    )
    round_epochs: float = setting(
        1, "`self_training`: epochs of each round over the source plus the pseudo-labelled texts."
    )

    def problems(self, path: str) -> list[str]:
        out = []
        if self.self_training_rounds < 1:
            out.append(f"`{path}.self_training_rounds` is {self.self_training_rounds}: use at least 1.")
        if not 0 < self.pseudo_label_threshold < 1:
            out.append(f"`{path}.pseudo_label_threshold` is {self.pseudo_label_threshold}: use a "
                       "probability between 0 and 1 (exclusive), e.g. 0.7.")
        if self.pseudo_labels_per_class is not None and self.pseudo_labels_per_class < 1:
            out.append(f"`{path}.pseudo_labels_per_class` is {self.pseudo_labels_per_class}: use at "
                       "least 1, or null for equal numbers per class.")
        if self.round_epochs <= 0:
            out.append(f"`{path}.round_epochs` is {self.round_epochs}: use a positive number of epochs.")
        return out


@register_strategy
class SelfTraining(UnlabeledTargetStrategy):
    """Rounds of pseudo-labelling after the plan so far. The rounds train on the labelled
    source, the labelled target examples when the run has them apart from its unlabelled text
    (`k_shot`, or `data.target_unlabeled`: self-training seeded by the labelled examples), and
    the round's pseudo-labelled texts."""

    name = "self_training"
    scenarios = ("domain_adaptation",)
    summary = "train on the source, then on the source plus confident, class-balanced pseudo-labels of the target text"
    options_class = SelfTrainingOptions

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.rounds: list[dict] = []  # per round: counts, and pseudo-label accuracy (evaluation only)

    def plan(self, ctx, stages) -> list[Stage]:
        # The rounds take the budget of the plan's first stage on source labels (`source`, or
        # `multi_task`'s `joint`); their rows are made when each round starts.
        source = next(s for s in stages if source_labelled(s))
        labelled = ("source", "target") if ctx.data.labelled_target else ("source",)
        return stages + [dataclasses.replace(source, name=f"{ROUND_PREFIX}{r}", num_epochs=self.options.round_epochs,
                                             label_roles=labelled, aux=None, loss_fn=None)
                         for r in range(1, self.options.self_training_rounds + 1)]

    def enter_stage(self, ctx, stage: Stage, model):
        if stage.name.startswith(ROUND_PREFIX):
            stage = dataclasses.replace(stage, train=self._pseudo_labelled(ctx, stage, model))
        return stage, model

    def _pseudo_labelled(self, ctx, stage: Stage, model: nn.Module) -> datasets.Dataset:
        """The round's training set, from the current model's predictions of the target text."""
        text = ctx.data.target_text["train"]
        # Placeholder labels: the prediction loop reads a `labels` column; there are no real ones.
        unread = text.add_column("labels", [0] * len(text))
        logits, _ = ctx.engine.predict_logits(model, unread, self.config.training.eval_batch_size)
        o = self.options
        rows, labels, counts = select_pseudo_labels(logits.softmax(-1), o.pseudo_label_threshold,
                                                    o.pseudo_labels_per_class)
        self.rounds.append(self._report(ctx, stage.name, rows, labels, counts))
        logger.info("Stage %r: %d pseudo-labelled target texts (%s per class; %s above %.2f)", stage.name,
                    len(rows), counts["kept"], counts["qualifying"], o.pseudo_label_threshold)
        if not rows:
            logger.warning("Stage %r: no pseudo-labels (texts above `strategy.pseudo_label_threshold` %s per "
                           "predicted class: %s); the round trains on the labelled data alone. A class no text "
                           "is confidently predicted as stops equal numbers per class: lower the threshold, or "
                           "set `strategy.pseudo_labels_per_class` to allow unequal numbers.",
                           stage.name, o.pseudo_label_threshold, counts["qualifying"])
        labelled = ctx.data.source["train"]
        if "target" in stage.label_roles:
            target = ctx.data.target["train"]
            columns = [c for c in labelled.column_names if c in target.column_names]
            labelled = datasets.concatenate_datasets([labelled.select_columns(columns),
                                                      target.select_columns(columns).cast(labelled.select_columns(columns).features)])
        return with_pseudo_labels(labelled, text, rows, labels)

    def _report(self, ctx, stage_name: str, rows: list[int], labels: list[int], counts: dict) -> dict:
        """What results.json says of a round. The pseudo-labels' accuracy is evaluation only,
        against the target's training labels where the text is that split (read here and
        nowhere in training); unlabelled text given apart has none."""
        names = list(ctx.data.labels.names)
        report = {"stage": stage_name, "texts": len(ctx.data.target_text["train"]),
                  "above_threshold": dict(zip(names, counts["qualifying"])),
                  "pseudo_labels": dict(zip(names, counts["kept"])), "per_class_cap": counts["per_class"]}
        gold = ctx.data.target["train"]
        if not ctx.data.labelled_target and "labels" in gold.column_names and rows:
            column = gold["labels"]
            truth = [column[r] for r in rows]
            report["accuracy"] = round(sum(t == p for t, p in zip(truth, labels)) / len(rows), 4)
        return report

    def results(self) -> dict:
        o = self.options
        return {self.name: {"rounds": self.rounds, "threshold": o.pseudo_label_threshold,
                            "pseudo_labels_per_class": o.pseudo_labels_per_class, "round_epochs": o.round_epochs,
                            "accuracy_against": "the target's training labels (never read in training)"}}
