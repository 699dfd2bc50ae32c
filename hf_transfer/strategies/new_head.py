"""Label space: the source classifier's encoder under a freshly initialised head with one
output per target label, trained on the target with ``tuning.method``."""

from __future__ import annotations

from .registry import register_strategy
from .target_stages import TargetStageStrategy


@register_strategy
class NewHead(TargetStageStrategy):
    name = "new_head"
    scenarios = ("label_space",)
    summary = "the source encoder with a fresh head for the target labels"
