"""Different label space (Y_s != Y_T): transfer the encoder, give the target its own head.

The source classifier is ``strategy.source_model`` (a model folder saved by hf_transfer —
a LoRA adapter is merged into its base first —, any transformers sequence classifier, or a
plain pretrained encoder, which makes the "no source task" baseline), or, when that is
null, it is trained first on ``data.source`` (stage ``source``). Its encoder moves to a new
classifier whose head has one output per *target* label; the source head is never reused
silently, whatever the label counts (``label_map`` copies the rows of shared labels).

Strategies: ``new_head``, ``lp_ft`` (linear probe, then fine-tune), ``label_map``. Every
target stage selects its best checkpoint on ``target/validation``. The eval matrix holds the
target splits only: the final model has the target's labels and cannot predict the
source's. The source classifier's own scores on ``data.source`` (when it has a trained head
and ``strategy.evaluate_source``) are in ``results.json`` under ``source_model``.
"""

from __future__ import annotations

from typing import Optional

from ..data.labels import LabelSpace
from ..run.pipeline import TARGET_ONLY, RunData
from ..source_model import SourceModel, with_new_head
from .source_transfer import SourceTransferRecipe


class LabelSpaceRecipe(SourceTransferRecipe):
    scenario = "label_space"

    def __init__(self, config, arm=None):
        self.mapping: Optional[dict] = None  # {target label: source label} copied head rows
        self.head_init: dict = {}
        self.source_scores: dict = {}
        super().__init__(config, arm)

    def config_problems(self) -> list[str]:
        out = super().config_problems()
        if self.trains_source and self.config.strategy.select_on == "target":
            out.append("`strategy.select_on` is `target`, but the target has other labels than the "
                       "source: the source stage can only select on `source`.")
        return out

    def label_spaces(self, source, target, info):
        return self._source_space(source, info), LabelSpace.from_splits(target)

    def check_label_spaces(self, source, target) -> None:
        # Before any weights load: a wrong `strategy.label_map` fails now.
        mappings = [s.head_rows(list(target.names), list(source.names) if source else None)
                    for s in self.chain if hasattr(s, "head_rows")]
        self.mapping = next((m for m in mappings if m), None)

    def eval_sets(self, data: RunData) -> dict:
        return self.target_eval_sets(data)

    def before_adaptation(self, engine_source, engine_target, source: SourceModel, data: RunData) -> None:
        sets = self.source_eval_sets(data) if source.labels is not None else {}
        self.source_scores = self.evaluate_as_is(engine_source, source.model, sets) if sets else {}

    def target_model(self, source: SourceModel, data: RunData):
        labels = list(data.labels.names)
        # The target-only baseline starts from a plain encoder: there are no source rows to copy.
        mapping = None if self.arm == TARGET_ONLY else self.mapping
        model, new_modules = with_new_head(source, labels, mapping, self.config.model.trust_remote_code)
        self.head_init = {
            "copied_rows": mapping or {},
            "fresh_rows": [label for label in labels if label not in (mapping or {})],
        }
        return model, new_modules

    def extra_results(self, data: RunData, matrix: dict) -> dict:
        report = self.source_report()
        report["eval"] = self.source_scores
        if not self.source_scores:
            report["note"] = ("not evaluated on the source task: "
                              + ("the source model has no trained head" if self.source.labels is None
                                 else "`strategy.evaluate_source` is false"))
        return {"source_model": report, "head_init": self.head_init}
