"""The stages of a nested baseline run of the transfer comparison (`strategy.baselines`).
They are not chosen by name: the run picks them for its arm (see
:meth:`hf_transfer.run.pipeline.Recipe.strategy_of_arm`)."""

from __future__ import annotations

import dataclasses

from ..training import Stage
from .base import INDUCTIVE, Strategy


class SourceStageOnly(Strategy):
    """``source_only``: the source stage alone."""

    name = "source_only"

    def stages(self, data) -> list[Stage]:
        return [self.recipe.source_stage(data)]


class TargetStageOnly(Strategy):
    """``target_only``: the labelled target data alone, from the pretrained encoder. For a
    strategy that trains on labelled target data (the inductive family) with the budget of a
    target stage (`strategy.target_num_epochs`, `strategy.target_min_steps`,
    `strategy.target_learning_rate`, and its linear probe first where the strategy fits one);
    for one that never reads target labels with the source stage's budget
    (`training.num_epochs`, learning rate) instead."""

    name = "target_only"

    def __init__(self, recipe, transfer: Strategy):
        super().__init__(recipe)
        self.transfer = transfer

    def stages(self, data) -> list[Stage]:
        if self.transfer.family == INDUCTIVE:
            return [dataclasses.replace(self.recipe.target_stage(data), fit_head=self.transfer.fits_head)]
        cfg = self.config
        return [Stage(name="target", train=data.target["train"], training=cfg.training,
                      learning_rate=self.recipe.learning_rate, num_epochs=cfg.training.num_epochs,
                      select_on="target/validation")]
