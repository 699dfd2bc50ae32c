"""``auto``: "when to transfer", answered by trying. Each candidate strategy, and the
`target_only` baseline, is a nested run of the scenario (``candidates/<name>/``, default options,
the run's data and settings); the one with the best `training.metric_for_best` on the target's
validation split is kept, evaluated and saved as this run's classifier.

Because `target_only` is a candidate whenever the target has labelled training data, the choice
is worse than training on the target alone only when the validation split misjudges them (a
noise of the validation split's size): transfer is chosen where it helps on held-out target
data, not assumed. With few labelled target examples (`k_shot`), the validation split it
selects on is as few-shot as training (see `data.target.validation_k_shot`). Candidates that the
run's data or settings do not allow (e.g. `dapt` without `data.unlabeled`) are skipped and
listed with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import setting
from ..errors import ConfigError, DataError
from ..training import StageResult
from .base import INDUCTIVE, TARGET_ONLY_ARM, Needs, Strategy
from . import registry
from .registry import TargetStageOptions, register_strategy, target_stage_settings

SELECT_ON = "target/validation"


# Compositions tried by default when the run has labelled target examples and unlabelled
# target text apart from them (the lecture's semi-supervised setting).
DEFAULT_COMPOSITIONS = (["tapt", "sequential"],)


@dataclass
class AutoOptions(TargetStageOptions):
    """Its own settings, and the target-stage budget it gives every candidate with a target stage."""

    candidates: list = setting(
        [], "`auto`: the strategies to try (and `target_only`); a composition is a list, e.g. "
            "[sequential, [tapt, sequential]]. Empty: every strategy of the scenario that the data "
            "allows, `target_only`, and, when the target has labelled examples and unlabelled text "
            "apart from them (`k_shot` or `data.target_unlabeled`), [tapt, sequential]. Each runs at "
            "its default options."
    )

    def problems(self, path: str) -> list[str]:
        out = super().problems(path)
        labels = [chain_label(c) for c in self.candidates]
        if any("auto" in (c if isinstance(c, list) else [c]) for c in self.candidates):
            out.append(f"`{path}.candidates` lists `auto` itself: list the strategies to choose among.")
        if len(set(labels)) != len(labels):
            out.append(f"`{path}.candidates` lists a strategy twice: {self.candidates}.")
        return out


def chain_label(names) -> str:
    """``tapt+sequential`` for a composition, the name for one strategy."""
    return "+".join(map(str, names)) if isinstance(names, (list, tuple)) else str(names)


@register_strategy
class Auto(Strategy):
    name = "auto"
    scenarios = ("domain_adaptation", "cross_lingual", "label_space", "conditional_shift")
    family = INDUCTIVE  # it reads the target's validation labels to choose
    summary = "try the strategies the data allows and `target_only`; keep the best on target validation"
    options_class = AutoOptions
    # The chosen classifier comes from another run, in memory: unsharded.
    needs = Needs(target_labels=True, unsharded=True, runs_candidates=True)

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.report: dict = {}

    def candidate_names(self, ctx) -> list:
        if self.options.candidates:
            return list(self.options.candidates)
        singles = [n for n in ctx.strategy_names if not registry.get(n).needs.runs_candidates]
        compositions = [c for c in DEFAULT_COMPOSITIONS if all(n in singles for n in c)] \
            if ctx.data.labelled_target else []
        return singles + compositions + [TARGET_ONLY_ARM]

    def problems(self) -> list[str]:
        out = super().problems()
        known = {n for scenario in self.scenarios for n in registry.for_scenario(scenario)} - {self.name}
        for candidate in self.options.candidates:
            for name in (candidate if isinstance(candidate, list) else [candidate]):
                if name != TARGET_ONLY_ARM and name not in known:
                    out.append(f"`strategy.candidates` has {name!r}, which is not a strategy of this scenario: "
                               f"choose from {', '.join(sorted(known | {TARGET_ONLY_ARM}))}.")
        return out

    @staticmethod
    def target_stage_strategy(ctx) -> str:
        """The scenario's first strategy with a target stage: what `target_only` trains."""
        return next(n for n in ctx.strategy_names
                    if isinstance(registry.options_for(n), TargetStageOptions) and not registry.get(n).needs.runs_candidates)

    def choose(self, ctx):
        """Every candidate as a run of its own; returns the best one's classifier, its stages'
        results and the run itself (its scenario's own report)."""
        metric = self.config.training.metric_for_best
        accelerator = ctx.engine.accelerator
        shared = target_stage_settings(self.options)
        scores, skipped, label_shift, best = {}, {}, {}, None
        for candidate in self.candidate_names(ctx):
            name = chain_label(candidate)
            try:  # target_only: the target stage as the scenario's inductive strategy would train it
                run = (ctx.candidate(self.target_stage_strategy(ctx), arm=TARGET_ONLY_ARM, shared=shared)
                       if name == TARGET_ONLY_ARM else ctx.candidate(candidate, shared=shared))
                results = run.run()
            except (ConfigError, DataError) as err:  # what this run's data or settings do not allow
                skipped[name] = str(err).replace("\n", " ")
                accelerator.print(f"[auto] {name}: skipped ({skipped[name]})")
                continue
            scores[name] = _scores(results, metric)
            label_shift[name] = results.get("label_shift")  # the candidate corrected itself
            if best is None or scores[name][SELECT_ON] > scores[best[0]][SELECT_ON]:
                best = (name, run)
            del run
        if best is None:
            raise ConfigError("`auto` found no candidate it could run: " + "; ".join(
                f"{n}: {why}" for n, why in skipped.items()))
        chosen, run = best
        self.report = {"select_on": SELECT_ON, "metric": metric, "chosen": chosen, "scores": scores,
                       "skipped": skipped, "runs": {n: f"candidates/{n}" for n in scores},
                       "label_shift": label_shift.get(chosen)}
        accelerator.print(_format(self.report))
        return run.model, [StageResult(**s) for s in run.results["stages"]], run

    def results(self) -> dict:
        return {"auto": self.report}


def _scores(results: dict, metric: str) -> dict:
    """The candidate's ``metric`` on every evaluated split (selection reads target/validation)."""
    return {split: row[metric] for split, row in results["eval_matrix"].items() if "[" not in split}


def _format(report: dict) -> str:
    rows = [f"auto: {report['chosen']} chosen on {report['select_on']} {report['metric']}"]
    for name, scores in sorted(report["scores"].items(), key=lambda kv: -kv[1][SELECT_ON]):
        mark = "*" if name == report["chosen"] else " "
        rows.append(f"  {mark} {name:<16} " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    rows += [f"    {name:<16} skipped" for name in report["skipped"]]
    return "\n".join(rows)
