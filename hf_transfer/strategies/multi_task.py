"""Inductive multi-task transfer: the labelled source and the labelled target examples trained
together in one stage, instead of one after the other (``sequential``).

A handful of target examples beside thousands of source examples would hardly move the loss,
so the target rows are repeated until they make up `strategy.target_share` of the stage's
examples (the source rows are all kept, never dropped). Training together keeps what the source
teaches (no forgetting, which a target stage of a few batches can cause) while the target's own
examples pull the classifier toward the target's texts and label distribution. The stage selects
its checkpoint on ``target/validation``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import datasets
import numpy as np

from ..config import setting
from ..training import Stage
from .base import INDUCTIVE, Needs, Strategy
from .registry import StrategyOptions, register_strategy


@dataclass
class MultiTaskOptions(StrategyOptions):
    target_share: float = setting(
        0.25, "`multi_task`: the share of the joint stage's examples that are labelled target "
              "examples, reached by repeating them (0.25: one in four)."
    )

    def problems(self, path: str) -> list[str]:
        if not 0 < self.target_share < 1:
            return [f"`{path}.target_share` is {self.target_share}: it must be between 0 and 1 "
                    "(exclusive), e.g. 0.25."]
        return []


def target_copies(source_rows: int, target_rows: int, share: float) -> int:
    """How many times to include the target rows so they make up about ``share`` of the joint
    data: at least once (never fewer target rows than there are)."""
    wanted = share * source_rows / ((1 - share) * target_rows)
    return max(1, round(wanted))


def joint_train(source: datasets.Dataset, target: datasets.Dataset, copies: int) -> datasets.Dataset:
    """Source rows, then ``copies`` × the target rows, in the columns both have."""
    columns = [c for c in source.column_names if c in target.column_names]
    repeated = target.select(np.tile(np.arange(len(target)), copies))
    return datasets.concatenate_datasets([source.select_columns(columns), repeated.select_columns(columns)])


@register_strategy
class MultiTask(Strategy):
    name = "multi_task"
    scenarios = ("domain_adaptation",)
    family = INDUCTIVE
    summary = "train on the labelled source and the labelled target examples together (target repeated)"
    options_class = MultiTaskOptions
    needs = Needs(target_labels=True)

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.mix: dict = {}  # the joint stage's rows, for results.json

    def plan(self, ctx, stages) -> list[Stage]:
        """The source stage becomes the joint stage (the same budget, on source + target rows);
        other stages stay where they are."""
        source, target = ctx.data.source["train"], ctx.data.target["train"]
        copies = target_copies(len(source), len(target), self.options.target_share)
        self.mix = {"source_rows": len(source), "target_rows": len(target), "target_copies": copies,
                    "target_share": round(copies * len(target) / (len(source) + copies * len(target)), 4)}
        return [dataclasses.replace(stage, name="joint", train=joint_train(source, target, copies),
                                    select_on="target/validation", label_roles=("source", "target"))
                if stage.name == "source" else stage for stage in stages]

    def results(self) -> dict:
        return {"multi_task": self.mix}
