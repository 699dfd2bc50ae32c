"""Domain adaptation: same labels, other topic (P(X_s) != P(X_T)).

Strategies
----------
``source_only``
    Train on the labelled source domain; evaluate on source and target. The target score is
    what transfer alone gives.
``sequential``
    ``source_only``, then continue training on the labelled target examples
    (``data.target.k_shot`` per class when set) — inductive transfer. The target stage picks
    its best checkpoint on ``target/validation``.

Every strategy reports the full eval matrix (source and target, validation and test).
"""

from __future__ import annotations

from ..engine import Stage
from .base import Recipe, RunData


class DomainAdaptationRecipe(Recipe):
    scenario = "domain_adaptation"
    strategies = ("source_only", "sequential")

    def stages(self, data: RunData) -> list[Stage]:
        cfg = self.config
        learning_rate = cfg.training.learning_rate_for(cfg.tuning.method)
        stages = [Stage(
            name="source", train=data.source["train"], training=cfg.training,
            learning_rate=learning_rate, num_epochs=cfg.training.num_epochs,
            select_on="source/validation",
        )]
        if cfg.strategy.name == "sequential":
            stages.append(Stage(
                name="target", train=data.target["train"], training=cfg.training,
                learning_rate=cfg.strategy.target_learning_rate or learning_rate,
                num_epochs=cfg.strategy.target_num_epochs, select_on="target/validation",
            ))
        return stages
