"""Domain adaptation: same labels, other topic (P(X_s) != P(X_T)).

Train on a labelled source domain, measure on the target domain. One shared label space
(every target label must be a source label); the eval matrix holds source and target,
validation and test. Strategies (``hf_transfer.strategies``): ``source_only``,
``sequential`` (inductive: then the labelled target examples), ``tapt``/``dapt`` (masked-LM
pretraining on unlabelled text first), ``dann`` (domain-adversarial) — and any strategy
registered for ``domain_adaptation``. Those that learn from unlabelled target text never read
its labels: they receive the ``text`` column only.
"""

from __future__ import annotations

from ..run.pipeline import Recipe
from ..strategies import registry


class DomainAdaptationRecipe(Recipe):
    scenario = "domain_adaptation"

    def config_problems(self) -> list[str]:
        cfg = self.config
        # `auto` passes the corpus on to its candidates.
        if cfg.data.unlabeled.is_set() and not (self.transfer_needs.corpus or self.transfer_needs.runs_candidates):
            readers = [f"`{n}`" for n in self.strategy_names() if registry.get(n).needs.corpus]
            users = ", ".join(readers)
            return [f"`data.unlabeled` is set but `strategy.name` is {cfg.strategy.name!r}: only "
                    f"{users} {'uses' if len(readers) == 1 else 'use'} that corpus. Remove it, or "
                    f"use {users}."]
        return []
