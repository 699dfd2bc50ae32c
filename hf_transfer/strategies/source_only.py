"""Strategies that train on the labelled source alone: what transfer gives by itself."""

from __future__ import annotations

from .base import SOURCE_ONLY, Needs, Strategy
from .registry import register_strategy


@register_strategy
class SourceOnly(Strategy):
    """Train on the labelled source domain; evaluate on source and target. The target score is
    what transfer alone gives."""

    name = "source_only"
    scenarios = ("domain_adaptation",)
    family = SOURCE_ONLY
    summary = "train on the labelled source only; the target score is what transfer alone gives"
    needs = Needs(source_labels_only=True)  # the plan's source stage is the whole run


@register_strategy
class ZeroShot(SourceOnly):
    name = "zero_shot"
    scenarios = ("cross_lingual",)
    summary = "train on the source language(s) only; evaluate on every language"
