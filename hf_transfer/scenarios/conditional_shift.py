"""Conditional shift (P(Y_s|X_s) != P(Y_T|X_T)): same labels, other meaning.

Start from a source classifier — ``strategy.source_model`` (a model folder saved by
hf_transfer, or any transformers sequence classifier whose labels are the data's), or, when
that is null, one trained first on ``data.source`` (stage ``source``) — and continue on
labelled target data in which the same labels mean something else. The source head is kept
(same labels); the target stage selects on ``target/validation``. Strategies: ``finetune``,
``l2sp`` (a penalty pulling the weights toward the source classifier's).

``results.json`` adds ``no_adaptation`` (the source classifier as it is, on every split:
the baseline), ``forgetting`` (the source task's test scores before and after adaptation
and the drop) and ``adaptation`` (the target's test scores before and after and the gain),
beside the eval matrix of the final model (source and target splits). Per-group rows
(``group_column``) are reported for both, e.g. the documents whose label the shift changed.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..run.pipeline import RunData
from ..source_model import SourceModel
from .source_transfer import SourceTransferRecipe

REPORTED = ("accuracy", "macro_f1")


class ConditionalShiftRecipe(SourceTransferRecipe):
    scenario = "conditional_shift"

    def __init__(self, config, arm=None):
        self.no_adaptation: dict = {}
        super().__init__(config, arm)

    def label_spaces(self, source, target, info):
        if info is not None and info.labels is None:
            raise ConfigError(
                f"`strategy.source_model` {info.name_or_path!r} has no classification head (a plain "
                "encoder): conditional shift starts from a source classifier. Name one, or set "
                "`strategy.source_model` null to train it on `data.source` first."
            )
        space = self._source_space(source, info)
        # The same labels: every target label must be one the source classifier predicts.
        space.require_covers(target, "data.target")
        return space, space

    def source_stage_eval_sets(self, data: RunData) -> dict:
        return self.eval_sets(data)  # one label space: the source stage may select on either

    def eval_sets(self, data: RunData) -> dict:
        return {**self.source_eval_sets(data), **self.target_eval_sets(data)}

    def before_adaptation(self, engine_source, engine_target, source: SourceModel, data: RunData) -> None:
        self.no_adaptation = self.evaluate_as_is(engine_target, source.model, self.eval_sets(data))

    def target_model(self, source: SourceModel, data: RunData):
        # Same labels: the source classifier itself, head included, continues.
        return source.model, list(source.new_modules)

    def extra_results(self, data: RunData, matrix: dict) -> dict:
        out = {"no_adaptation": self.no_adaptation, "source_model": self.source_report()}
        if "source/test" in matrix:
            out["forgetting"] = _compare(self.no_adaptation, matrix, "source/test", "drop")
        out["adaptation"] = _compare(self.no_adaptation, matrix, "target/test", "gain")
        return out


def _compare(before: dict, after: dict, split: str, change: str) -> dict:
    """before/after scores of ``split`` and its groups; ``drop`` = before - after,
    ``gain`` = after - before."""
    out = {}
    for name in [split] + sorted(k for k in after if k.startswith(split + "[")):
        b = {k: before[name][k] for k in REPORTED}
        a = {k: after[name][k] for k in REPORTED}
        sign = 1 if change == "drop" else -1
        out[name] = {"before": b, "after": a, "n": after[name]["n"],
                     change: {k: round(sign * (b[k] - a[k]), 6) for k in REPORTED}}
    return out
