"""Inductive transfer: the source stage, then continued training on labelled target examples
(``data.target.k_shot`` per class when set). The target stage selects on
``target/validation`` (its options: `strategy.target_num_epochs`, `target_min_steps`,
`target_learning_rate`)."""

from __future__ import annotations

from ..training import Stage
from .base import INDUCTIVE, Needs, Strategy
from .registry import TargetStageOptions, register_strategy


@register_strategy
class Sequential(Strategy):
    name = "sequential"
    scenarios = ("domain_adaptation",)
    family = INDUCTIVE
    summary = "the source stage, then continue on the labelled target examples"
    options_class = TargetStageOptions
    needs = Needs(target_labels=True)

    def plan(self, ctx, stages) -> list[Stage]:
        return stages + [ctx.target_stage(ctx.data, self.options)]


@register_strategy
class FewShot(Sequential):
    name = "few_shot"
    scenarios = ("cross_lingual",)
    summary = "`zero_shot`, then continue on k labelled examples per class in each target language"

    def problems(self) -> list[str]:
        out = super().problems()
        if self.config.data.target.k_shot is None:
            out.append("`data.target.k_shot` is not set: `few_shot` trains on k labelled examples "
                       "per class in each target language; set k (e.g. 16).")
        return out
