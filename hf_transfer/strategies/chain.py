"""A run's chain of strategies: `strategy.name: [tapt, sequential]` (or one name), checked
before anything loads, then planned into one list of stages that run on one model.

How a composition plans (:meth:`hf_transfer.strategies.base.Strategy.plan`): the scenario's
base plan (domain adaptation, cross-lingual: the source stage) goes through each strategy in
order, each adding its part — so `[tapt, sequential]` is ``mlm, source, target``,
`[dann, sequential]` is ``source`` (with the domain-adversarial loss), ``target``, and
`[sequential, self_training]` is ``source, target, round_1, round_2`` (pseudo-labels from the
model that has seen the labelled target examples).
"""

from __future__ import annotations

from ..errors import ConfigError
from ..training import Stage
from . import registry
from .base import Needs, RunContext, Strategy


def chain_problems(names: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    """Why the chain ``names`` cannot run in a scenario whose strategies are ``allowed`` (each
    problem names the field and the fix); empty when it can."""
    field = "`strategy.name`"
    unknown = [n for n in names if n not in allowed]
    if unknown:
        return [f"{field} has {', '.join(repr(n) for n in unknown)}, which {'is' if len(unknown) == 1 else 'are'} "
                f"not {'a strategy' if len(unknown) == 1 else 'strategies'} of this scenario: choose from "
                f"{', '.join(allowed)}."]
    if len(names) == 1:
        return []
    out = []
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        out.append(f"{field} {list(names)} names {', '.join(f'`{n}`' for n in repeated)} twice: a strategy "
                   "runs once in a composition (its own settings say how much).")
    needs = {n: registry.get(n).needs for n in dict.fromkeys(names)}
    alone = [n for n, need in needs.items() if need.runs_candidates or need.replaces_plan]
    for name in alone:
        why = ("runs each candidate as a run of its own; list compositions in `strategy.candidates` instead"
               if needs[name].runs_candidates else "is a reference whose one stage replaces every other")
        out.append(f"{field} composes `{name}`, which {why}: use it alone.")
    losses = [n for n, need in needs.items() if need.stage_loss]
    if len(losses) > 1:
        out.append(f"{field} composes {' and '.join(f'`{n}`' for n in losses)}, which both replace the loss of "
                   "the stages that train on source labels: keep one.")
    encoders = [n for n, need in needs.items() if need.adapts_encoder]
    if len(encoders) > 1:
        out.append(f"{field} composes {' and '.join(f'`{n}`' for n in encoders)}, which both add a masked-LM "
                   "stage in front: keep one (`dapt` for a corpus, `tapt` for the target's own text).")
    return out


def build_chain(config) -> list[Strategy]:
    """One strategy object per name of `strategy.name`, each with its own options."""
    return [registry.get(name)(config, config.strategy.options[name]) for name in config.strategy.chain]


def chain_needs(chain: list[Strategy]) -> Needs:
    return Needs.combine([s.needs for s in chain])


def plan_stages(chain: list[Strategy], ctx: RunContext, base: list[Stage]) -> list[Stage]:
    """The base plan through every strategy of the chain, in order. Two stages of one name
    (they share a checkpoint folder) are refused, naming the chain."""
    stages = base
    for strategy in chain:
        stages = strategy.plan(ctx, stages)
    names = [s.name for s in stages]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"`strategy.name` {ctx.config.strategy.label!r} plans stage(s) {repeated} twice "
                          f"({' -> '.join(names)}): these strategies do the same step; keep one of them.")
    return stages
