"""``auto``: "when to transfer", answered by trying. Each candidate strategy, and the
`target_only` baseline, is a nested run of the scenario (``candidates/<name>/``, default options,
the run's data and settings); the one with the best `training.metric_for_best` on the target's
validation split is kept, evaluated and saved as this run's classifier.

Because `target_only` is a candidate whenever the target has labelled training data, the choice
is worse than training on the target alone only when the validation split misjudges them (a
noise of the validation split's size): transfer is chosen where it helps on held-out target
data, not assumed. Candidates that the run's data or settings do not allow (e.g. the unlabelled
target text strategies next to `data.target.k_shot`, which samples by label) are skipped and
listed with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import setting
from ..errors import ConfigError
from ..training import StageResult
from .base import INDUCTIVE, Strategy
from .registry import StrategyOptions, register_strategy

TARGET_ONLY = "target_only"
SELECT_ON = "target/validation"


@dataclass
class AutoOptions(StrategyOptions):
    candidates: list = setting(
        [], "`auto`: the strategies to try (and `target_only`); empty: every strategy of the scenario "
            "that the data allows, and `target_only`. Each runs at its default options."
    )

    def problems(self, path: str) -> list[str]:
        out = []
        if "auto" in self.candidates:
            out.append(f"`{path}.candidates` lists `auto` itself: list the strategies to choose among.")
        if len(set(map(str, self.candidates))) != len(self.candidates):
            out.append(f"`{path}.candidates` lists a strategy twice: {self.candidates}.")
        return out


@register_strategy
class Auto(Strategy):
    name = "auto"
    scenarios = ("domain_adaptation",)
    family = INDUCTIVE  # it reads the target's validation labels to choose
    summary = "try the strategies the data allows and `target_only`; keep the best on target validation"
    options_class = AutoOptions
    needs_unsharded = True  # the chosen classifier comes from another run, in memory
    uses_unlabeled_corpus = True  # passed on to `dapt`, the candidate that reads it
    runs_candidates = True

    def __init__(self, recipe):
        super().__init__(recipe)
        self.report: dict = {}

    def problems(self) -> list[str]:
        out = super().problems()
        known = set(self.recipe.strategy_names()) - {self.name}
        for name in self.options.candidates:
            if name != TARGET_ONLY and name not in known:
                out.append(f"`strategy.candidates` has {name!r}, which is not a strategy of this scenario: "
                           f"choose from {', '.join(sorted(known | {TARGET_ONLY}))}.")
        return out

    def candidate_names(self) -> list[str]:
        if self.options.candidates:
            return list(self.options.candidates)
        return [n for n in self.recipe.strategy_names() if n != self.name] + [TARGET_ONLY]

    def stages(self, data) -> list:
        return []  # every stage runs in a candidate's own run

    def train(self, engine, stages, plan, eval_sets, data):
        metric = self.config.training.metric_for_best
        scores, skipped, label_shift, best = {}, {}, {}, None
        for name in self.candidate_names():
            try:  # target_only: the target stage as `sequential` would train it
                run = (self.recipe.candidate("sequential", arm=TARGET_ONLY) if name == TARGET_ONLY
                       else self.recipe.candidate(name))
            except ConfigError as err:
                skipped[name] = str(err).replace("\n", " ")
                engine.accelerator.print(f"[auto] {name}: skipped ({skipped[name]})")
                continue
            results = run.run()
            scores[name] = _scores(results, metric)
            label_shift[name] = results.get("label_shift")  # the candidate corrected itself
            if best is None or scores[name][SELECT_ON] > scores[best[0]][SELECT_ON]:
                best = (name, run.model, results["stages"])
            del run
        if best is None:
            raise ConfigError("`auto` found no candidate it could run: " + "; ".join(
                f"{n}: {why}" for n, why in skipped.items()))
        chosen, model, stage_results = best
        self.report = {"select_on": SELECT_ON, "metric": metric, "chosen": chosen, "scores": scores,
                       "skipped": skipped, "runs": {n: f"candidates/{n}" for n in scores},
                       "label_shift": label_shift.get(chosen)}
        engine.accelerator.print(_format(self.report))
        return model, [StageResult(**s) for s in stage_results]

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
