"""Conditional shift: plain continued training of the source classifier (head kept: same
labels) on the target with ``tuning.method``."""

from __future__ import annotations

from .registry import register_strategy
from .target_stages import TargetStageStrategy


@register_strategy
class Finetune(TargetStageStrategy):
    name = "finetune"
    scenarios = ("conditional_shift",)
    summary = "continue training the source classifier on the target"
