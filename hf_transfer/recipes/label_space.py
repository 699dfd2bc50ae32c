"""Different label space (Y_s != Y_T): transfer the encoder, give the target its own head.

The source classifier is ``strategy.source_model`` (a model folder saved by hf_transfer —
a LoRA adapter is merged into its base first —, any transformers sequence classifier, or a
plain pretrained encoder, which makes the "no source task" baseline), or, when that is
null, it is trained first on ``data.source`` (stage ``source``). Its encoder moves to a new
classifier whose head has one output per *target* label; the source head is never reused
silently, whatever the label counts.

Strategies
----------
``new_head``
    A freshly initialised head; train on the target with ``tuning.method``.
``lp_ft``
    Linear probe, then fine-tune (Kumar et al., ICLR 2022): stage ``probe`` trains only the
    new head (the ``frozen`` method; ``strategy.probe_num_epochs``,
    ``strategy.probe_learning_rate``), then stage ``target`` trains with ``tuning.method``
    (``full``, ``lora`` or ``top_k``). Starting the fine-tuning from a fitted head keeps the
    early, large gradients of a random head from distorting the pretrained features.
``label_map``
    Like ``new_head``, but the head's rows of target labels that are also source labels — by
    name, or by ``strategy.label_map: {target_label: source_label}`` — start as the source
    head's rows (the head's other layers, e.g. RoBERTa's dense layer, are the source's too).

Every target stage selects its best checkpoint on ``target/validation``. The eval matrix
holds the target splits only: the final model has the target's labels and cannot predict
the source's. The source classifier's own scores on ``data.source`` (when it has a trained
head and ``strategy.evaluate_source``) are in ``results.json`` under ``source_model``.
"""

from __future__ import annotations

import dataclasses

from ..config import DEFAULT_LEARNING_RATES
from ..engine import Stage
from ..source_model import SourceModel, resolve_label_map, with_new_head
from .base import RunData
from .source_transfer import Phase, SourceTransferRecipe


class LabelSpaceRecipe(SourceTransferRecipe):
    scenario = "label_space"
    strategies = ("new_head", "lp_ft", "label_map")

    def config_problems(self) -> list[str]:
        out = super().config_problems()
        cfg = self.config
        if cfg.strategy.name == "lp_ft" and cfg.tuning.method == "frozen":
            out.append("`strategy.name` is `lp_ft` but `tuning.method` is `frozen`: the probe already "
                       "trains the head alone; choose full, lora or top_k for the fine-tuning stage.")
        if self.trains_source and cfg.strategy.select_on == "target":
            out.append("`strategy.select_on` is `target`, but the target has other labels than the "
                       "source: the source stage can only select on `source`.")
        return out

    def label_spaces(self, source, target, info):
        from ..data.labels import LabelSpace

        return self._source_space(source, info), LabelSpace.from_splits(target)

    def check_label_spaces(self, source, target) -> None:
        self.mapping = None
        if self.config.strategy.name == "label_map":  # before any weights load
            self.mapping = resolve_label_map(list(target.names), list(source.names) if source else None,
                                             self.config.strategy.label_map)

    def eval_sets(self, data: RunData) -> dict:
        return self.target_eval_sets(data)

    def target_stage_names(self) -> list[str]:
        return (["probe"] if self.config.strategy.name == "lp_ft" else []) + ["target"]

    def before_adaptation(self, engine_source, engine_target, source: SourceModel, data: RunData) -> None:
        sets = self.source_eval_sets(data) if source.labels is not None else {}
        self.source_scores = self.evaluate_as_is(engine_source, source.model, sets) if sets else {}

    def target_model(self, source: SourceModel, data: RunData):
        labels = list(data.labels.names)
        # The target-only baseline starts from a plain encoder: there are no source rows to copy.
        mapping = None if self.baseline == "target_only" else self.mapping
        model, new_modules = with_new_head(source, labels, mapping,
                                           self.config.model.trust_remote_code)
        self.head_init = {
            "copied_rows": mapping or {},
            "fresh_rows": [label for label in labels if label not in (mapping or {})],
        }
        return model, new_modules

    def target_phases(self, data: RunData, source: SourceModel) -> list[Phase]:
        cfg = self.config
        s = cfg.strategy
        phases = []
        if s.name == "lp_ft":
            probe = dataclasses.replace(cfg.tuning, method="frozen")
            phases.append(Phase(
                Stage(name="probe", train=data.target["train"], training=cfg.training,
                      learning_rate=s.probe_learning_rate or DEFAULT_LEARNING_RATES["frozen"],
                      num_epochs=s.probe_num_epochs, select_on="target/validation"),
                probe))
        phases.append(Phase(self.target_stage(data), cfg.tuning))
        return phases

    def extra_results(self, data: RunData, matrix: dict) -> dict:
        report = self.source_report()
        report["eval"] = self.source_scores
        if not self.source_scores:
            report["note"] = ("not evaluated on the source task: "
                              + ("the source model has no trained head" if self.source.labels is None
                                 else "`strategy.evaluate_source` is false"))
        return {"source_model": report, "head_init": self.head_init}
