"""Base of the strategies that adapt a source *classifier* on labelled target data (the
label-space and conditional-shift scenarios). The scenario brings the source classifier
(trained in the run or loaded) and builds the target model; the strategy says which stages
train it, with which tuning method each, and which head rows start from the source head."""

from __future__ import annotations

from typing import Optional

from ..training import Stage
from .base import INDUCTIVE, Needs, Strategy
from .registry import TargetStageOptions


class TargetStageStrategy(Strategy):
    family = INDUCTIVE
    options_class = TargetStageOptions
    needs = Needs(target_labels=True)

    def plan(self, ctx, stages) -> list[Stage]:
        return stages + [ctx.target_stage(ctx.data, self.options)]

    def head_rows(self, target_labels: list[str], source_labels: Optional[list[str]]) -> Optional[dict]:
        """{target label: source label} whose rows of a new head start as the source head's
        rows (None: a fresh head). Called before any weights load."""
        return None
