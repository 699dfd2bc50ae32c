"""Strategies that train on the labelled source alone: what transfer gives by itself."""

from __future__ import annotations

from ..training import Stage
from .base import SOURCE_ONLY, Strategy
from .registry import register_strategy


@register_strategy
class SourceOnly(Strategy):
    """Train on the labelled source domain; evaluate on source and target. The target score is
    what transfer alone gives."""

    name = "source_only"
    scenarios = ("domain_adaptation",)
    family = SOURCE_ONLY
    summary = "train on the labelled source only; the target score is what transfer alone gives"
    source_only = True

    def stages(self, data) -> list[Stage]:
        return [self.recipe.source_stage(data)]


@register_strategy
class ZeroShot(SourceOnly):
    name = "zero_shot"
    scenarios = ("cross_lingual",)
    summary = "train on the source language(s) only; evaluate on every language"
