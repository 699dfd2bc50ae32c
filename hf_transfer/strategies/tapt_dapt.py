"""Continued masked-LM pretraining before the classifier (Gururangan et al. 2020).

``tapt`` (task-adaptive): stage ``mlm`` trains the encoder as a masked LM on the target's
training text, its labels dropped; ``dapt`` (domain-adaptive): on a separate unlabelled corpus,
``data.unlabeled`` (texts also in the target's validation or test split are dropped). The
checkpoint with the lowest masked-LM loss on the target's validation text is kept and written
to ``mlm_encoder/`` as a plain encoder; stage ``source`` then trains a classifier on it.

With LoRA the MLM stage trains adapters (and the masked-LM head), folds them into
``mlm_encoder/``, then trains fresh adapters for classification; the saved classifier is
standalone (adapter merged), since its base exists only in the run.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional

import datasets
from accelerate.utils import set_seed

from ..config import setting
from ..training import Stage, unwrap
from ..mlm import (MLM_TUNING, MaskedLM, apply_mlm_tuning, check_masked_lm, load_masked_lm, merged,
                   save_adapted_encoder)
from ..modeling import describe_model
from ..saving import standalone_classifier
from .base import Needs
from .registry import StrategyOptions, register_strategy
from .unlabeled import UnlabeledTargetStrategy

logger = logging.getLogger("hf_transfer")


@dataclass
class MlmOptions(StrategyOptions):
    mlm_num_epochs: float = setting(
        1, "`tapt`/`dapt`: epochs of masked-LM training on the unlabelled text before the "
        "classification stage (fractions allowed)."
    )
    mlm_learning_rate: Optional[float] = setting(
        None, "`tapt`/`dapt`: learning rate of the masked-LM stage; null reuses the "
        "classification stage's."
    )
    mlm_probability: float = setting(
        0.15, "`tapt`/`dapt`: fraction of tokens masked (of those, 80% become [MASK], 10% a "
        "random token, 10% stay)."
    )

    def problems(self, path: str) -> list[str]:
        out = []
        if self.mlm_num_epochs <= 0:
            out.append(f"`{path}.mlm_num_epochs` is {self.mlm_num_epochs}: use a positive number.")
        if self.mlm_learning_rate is not None and self.mlm_learning_rate <= 0:
            out.append(f"`{path}.mlm_learning_rate` must be positive or null.")
        if not 0 < self.mlm_probability < 1:
            out.append(f"`{path}.mlm_probability` is {self.mlm_probability}: use a fraction in "
                       "(0, 1), e.g. 0.15.")
        return out


MLM_STAGE = "mlm"


@register_strategy
class Tapt(UnlabeledTargetStrategy):
    name = "tapt"
    scenarios = ("domain_adaptation",)
    summary = "masked-LM pretraining on the target's own text, then the source classifier"
    options_class = MlmOptions
    needs = Needs(target_text=True, unsharded=True, adapts_encoder=True, tuning_methods=MLM_TUNING,
                  tuning_reason="needs a method that changes the encoder in its masked-LM stage")

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.masked_lm: Optional[MaskedLM] = None
        self.report: Optional[dict] = None

    def check(self, ctx, meta_model) -> None:
        check_masked_lm(self.config.model, self.config.tuning)  # architecture, before weights

    def tokenize(self, ctx, tokenizer) -> None:
        check_masked_lm(self.config.model, self.config.tuning, tokenizer)
        self.masked_lm = MaskedLM(tokenizer, self.options.mlm_probability)

    def training_text(self, ctx) -> datasets.Dataset:
        """The unlabelled text of the masked-LM stage: the target's (role ``target_text``)."""
        return ctx.data.target_text["train"]

    def plan(self, ctx, stages) -> list[Stage]:
        """The masked-LM stage in front; the stage after it starts its classifier on the
        adapted encoder, exactly as a run with `model.name_or_path: <run>/mlm_encoder` would."""
        first, *rest = stages
        return [self.mlm_stage(ctx), dataclasses.replace(first, start_from=str(ctx.layout.mlm_encoder)), *rest]

    def mlm_stage(self, ctx) -> Stage:
        """Masked-LM training on the unlabelled text; keep the checkpoint with the lowest
        masked-LM loss on the target's validation text."""
        cfg, o = self.config, self.options
        validation = ctx.data.target_text["validation"]
        return Stage(
            name=MLM_STAGE, train=self.training_text(ctx), training=cfg.training,
            learning_rate=o.mlm_learning_rate or ctx.learning_rate, num_epochs=o.mlm_num_epochs,
            select_on="target/validation:text", loss_fn=self.masked_lm.loss,
            evaluate_fn=self.masked_lm.evaluator(validation, cfg.training.batch_size, cfg.training.seed),
            metric_for_best="mlm_loss", greater_is_better=False, label_roles=(), builds_model=True,
        )

    def enter_stage(self, ctx, stage, model):
        """The masked LM the stage trains, and its loss before any step (the reference)."""
        if stage.name != MLM_STAGE:
            return stage, model
        cfg, acc = self.config, ctx.engine.accelerator
        set_seed(cfg.training.seed)  # the new MLM head's initial weights are reproducible
        model, new_weights = load_masked_lm(cfg.model)
        model = apply_mlm_tuning(model, cfg.tuning).to(acc.device)
        logger.info("Stage 'mlm', tuning %s: %s", cfg.tuning.method, describe_model(model))
        with acc.autocast():
            before = self.masked_lm.evaluate(ctx.engine, model, ctx.data.target_text["validation"],
                                             cfg.training.batch_size, cfg.training.seed)
        self.report = {"eval_on": stage.select_on, "texts": {"train": len(stage.train),
                                                             "validation": len(ctx.data.target_text["validation"])},
                       "loss_before": before["mlm_loss"], "new_head": bool(new_weights)}
        return stage, model

    def leave_stage(self, ctx, stage, model, result):
        """Write the adapted encoder to ``mlm_encoder/``; the masked LM goes (the next stage
        starts a classifier on that encoder)."""
        if stage.name != MLM_STAGE:
            return model
        acc, folder = ctx.engine.accelerator, ctx.layout.mlm_encoder
        if acc.is_main_process:
            save_adapted_encoder(merged(unwrap(acc, model)), self.config.model, ctx.engine.tokenizer, folder)
        acc.wait_for_everyone()
        self.report.update({"loss_after": result.best_metric, "updates": result.steps, "encoder": str(folder)})
        return None

    def results(self) -> dict:
        return {"masked_lm": self.report}

    def model_to_save(self, ctx, model, state_dict):
        if hasattr(model, "peft_config"):
            return standalone_classifier(model, "its base is the adapted encoder of this run "
                                                f"({ctx.layout.mlm_encoder.name}/)"), None
        return model, state_dict


@register_strategy
class Dapt(Tapt):
    name = "dapt"
    summary = "masked-LM pretraining on an unlabelled corpus (`data.unlabeled`), then the source classifier"
    needs = dataclasses.replace(Tapt.needs, corpus=True)

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.config.data.unlabeled.is_set():
            out.append("`strategy.name` has `dapt`, which pretrains on an unlabelled corpus, but "
                       "`data.unlabeled` is not set: name one (e.g. `--data.unlabeled.builtin tweets "
                       "--data.unlabeled.filter.domain apple`), or use `tapt` (the target's own text).")
        return out

    def training_text(self, ctx) -> datasets.Dataset:
        return ctx.data.corpus  # role ``corpus``: target evaluation texts already dropped
