"""The stages of a nested baseline run of the transfer comparison (`strategy.baselines`).
They are not chosen by name: the run puts them in place of its chain for its arm."""

from __future__ import annotations

import dataclasses

from ..training import Stage
from .base import SOURCE_ONLY_ARM, TARGET_ONLY_ARM, Needs, Strategy
from .registry import TargetStageOptions


class SourceStageOnly(Strategy):
    """``source_only``: the source stage alone (the plan's base)."""

    name = SOURCE_ONLY_ARM
    needs = Needs(source_labels_only=True)


class TargetStageOnly(Strategy):
    """``target_only``: the labelled target data alone, from the pretrained encoder. For a
    chain that trains on labelled target data with the budget of the chain's target stage (its
    `target_num_epochs`, `target_min_steps`, `target_learning_rate`, and its linear probe first
    where the chain fits one); for one that never reads target
    labels with the source stage's budget (`training.num_epochs`, learning rate) instead."""

    name = TARGET_ONLY_ARM
    needs = Needs(target_labels=True, replaces_plan=True)

    def __init__(self, config, transfer_needs: Needs, target_stage: TargetStageOptions):
        super().__init__(config, target_stage)
        self.transfer_needs = transfer_needs

    def plan(self, ctx, stages) -> list[Stage]:
        if self.transfer_needs.target_labels:
            return [dataclasses.replace(ctx.target_stage(ctx.data, self.options), fit_head=self.transfer_needs.fits_head)]
        cfg = self.config
        return [Stage(name="target", train=ctx.data.target["train"], training=cfg.training,
                      learning_rate=ctx.learning_rate, num_epochs=cfg.training.num_epochs,
                      select_on="target/validation", label_roles=("target",))]
