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
        stages = [self.source_stage(data)]
        if self.config.strategy.name == "sequential":
            stages.append(self.target_stage(data))
        return stages
