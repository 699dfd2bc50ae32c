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
``tapt`` (task-adaptive pretraining, Gururangan et al. 2020)
    Stage ``mlm``: continued masked-LM training of the encoder on the target's training text,
    its labels dropped (``strategy.mlm_num_epochs``, ``mlm_learning_rate``,
    ``mlm_probability``), selecting the checkpoint with the lowest masked-LM loss on the
    target's validation text. The adapted encoder is written to ``mlm_encoder/``. Stage
    ``source``: a classifier on that encoder, trained on the labelled source.
``dapt`` (domain-adaptive pretraining)
    The same, with the masked-LM stage on a separate unlabelled corpus, ``data.unlabeled``
    (texts also in the target's validation or test split are dropped from it).
``dann`` (domain-adversarial training, Ganin et al. 2016)
    One stage on the labelled source with the target's training text (labels dropped)
    cycled alongside; a domain discriminator on the representation the classifier's head
    reads, behind a gradient-reversal layer (``strategy.dann_weight``,
    ``discriminator_hidden``). The saved model is the plain classifier.

Target labels are never read by ``tapt``/``dapt``/``dann``: their target datasets hold the
``text`` column only (``data.target.k_shot``/``max_train_samples``, which sample by label,
are refused). With LoRA, ``tapt``/``dapt`` train adapters (and the masked-LM head) in the MLM
stage, fold them into ``mlm_encoder/``, then train fresh adapters for classification; the
saved classifier is standalone (adapter merged), since its base exists only in the run.

Every strategy reports the full eval matrix (source and target, validation and test).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

import datasets
from accelerate.utils import set_seed

from ..dann import DomainAdversarialModel, classifier_head, dann_loss
from ..data.tokenize import tokenize
from ..data.unlabeled import load_unlabeled_text, text_only
from ..engine import Engine, Stage, unwrap
from ..errors import ConfigError
from ..mlm import (MLM_TUNING, MaskedLM, apply_mlm_tuning, check_masked_lm, load_masked_lm, merged,
                   save_adapted_encoder)
from ..modeling import build_on_meta, describe_model
from .base import Recipe, RunData

logger = logging.getLogger("hf_transfer")

MLM_STRATEGIES = ("tapt", "dapt")
# Strategies that learn from unlabelled target text (and must never read its labels).
UNLABELED_TARGET_STRATEGIES = ("tapt", "dapt", "dann")
ENCODER_DIR = "mlm_encoder"


class DomainAdaptationRecipe(Recipe):
    scenario = "domain_adaptation"
    source_only_strategies = ("source_only",)  # a `source_only` baseline would repeat them
    strategies = ("source_only", "sequential", "tapt", "dapt", "dann")

    def __init__(self, config):
        super().__init__(config)
        self._unlabeled_raw: Optional[datasets.DatasetDict] = None
        self.unlabeled: dict[str, datasets.Dataset] = {}  # tokenized text only: train, validation
        self.masked_lm: Optional[MaskedLM] = None
        self.masked_lm_report: Optional[dict] = None
        self.model = None  # the final classifier (unwrapped), for tapt/dapt/dann

    @property
    def adapts_unlabeled(self) -> bool:
        """This run learns from unlabelled text (a nested baseline run does not)."""
        return self.baseline is None and self.config.strategy.name in UNLABELED_TARGET_STRATEGIES

    def config_problems(self) -> list[str]:
        cfg, name = self.config, self.config.strategy.name
        out = []
        if name == "dapt" and not cfg.data.unlabeled.is_set():
            out.append("`strategy.name` is `dapt`, which pretrains on an unlabelled corpus, but "
                       "`data.unlabeled` is not set: name one (e.g. `--data.unlabeled.builtin tweets "
                       "--data.unlabeled.filter.domain apple`), or use `tapt` (the target's own text).")
        if name != "dapt" and cfg.data.unlabeled.is_set():
            out.append(f"`data.unlabeled` is set but `strategy.name` is {name!r}: only `dapt` uses "
                       "that corpus. Remove it, or use `dapt`.")
        if name in UNLABELED_TARGET_STRATEGIES:
            for field in ("k_shot", "max_train_samples"):
                if getattr(cfg.data.target, field) is not None:
                    out.append(f"`data.target.{field}` is set, but `{name}` trains on the target's "
                               f"text without its labels and `{field}` samples by label: remove it.")
        if name in MLM_STRATEGIES and cfg.tuning.method not in MLM_TUNING:
            out.append(f"`tuning.method` is {cfg.tuning.method!r}: the masked-LM stage of `{name}` "
                       f"needs one that changes the encoder: {', '.join(MLM_TUNING)}.")
        return out

    # --- data ---------------------------------------------------------------------------

    def _load_data(self) -> RunData:
        raw = super()._load_data()
        if not self.adapts_unlabeled:
            return raw
        cfg, name = self.config, self.config.strategy.name
        # Architecture checks (meta device), before any weights load.
        if name in MLM_STRATEGIES:
            check_masked_lm(cfg.model, cfg.tuning)
        else:
            classifier_head(build_on_meta(cfg.model, len(raw.labels)))
        train_text = text_only(raw.target["train"])
        if name == "dapt":
            evaluation = {t for split in ("validation", "test") for t in raw.target[split]["text"]}
            train_text = load_unlabeled_text(cfg.data.unlabeled, cfg.training.seed, exclude=evaluation)
        self._unlabeled_raw = datasets.DatasetDict(
            {"train": train_text, "validation": text_only(raw.target["validation"])})
        return raw

    def _tokenize(self, raw: RunData, tokenizer) -> RunData:
        data = super()._tokenize(raw, tokenizer)
        if self.adapts_unlabeled:
            cfg = self.config
            if cfg.strategy.name in MLM_STRATEGIES:
                check_masked_lm(cfg.model, cfg.tuning, tokenizer)
                self.masked_lm = MaskedLM(tokenizer, cfg.strategy.mlm_probability)
            self.unlabeled = tokenize(self._unlabeled_raw, tokenizer, cfg.model.max_length,
                                      cfg.model.text_prefix)
        return data

    # --- stages -------------------------------------------------------------------------

    def stages(self, data: RunData) -> list[Stage]:
        name = self.config.strategy.name
        if name in MLM_STRATEGIES and self.adapts_unlabeled:
            return [self.mlm_stage(), self.source_stage(data)]
        stages = [self.source_stage(data)]
        if name == "dann" and self.adapts_unlabeled:
            stages[0].aux = self.unlabeled["train"]
            stages[0].loss_fn = dann_loss(self.config.strategy.dann_weight)
        if name == "sequential":
            stages.append(self.target_stage(data))
        return stages

    def mlm_stage(self) -> Stage:
        """Masked-LM training on the unlabelled text; keep the checkpoint with the lowest
        masked-LM loss on the target's validation text."""
        cfg, s = self.config, self.config.strategy
        return Stage(
            name="mlm", train=self.unlabeled["train"], training=cfg.training,
            learning_rate=s.mlm_learning_rate or self.learning_rate, num_epochs=s.mlm_num_epochs,
            select_on="target/validation:text", loss_fn=self.masked_lm.loss,
            evaluate_fn=self.masked_lm.evaluator(self.unlabeled["validation"],
                                                 cfg.training.batch_size, cfg.training.seed),
            metric_for_best="mlm_loss", greater_is_better=False,
        )

    def train_stages(self, engine: Engine, stages: list[Stage], plan: dict, eval_sets: dict,
                     data: RunData):
        if not self.adapts_unlabeled:
            return super().train_stages(engine, stages, plan, eval_sets, data)
        self._check_distributed(engine.accelerator)
        cfg = self.config
        if cfg.strategy.name == "dann":
            (stage,) = stages
            model = DomainAdversarialModel(self.build_classifier(data), cfg.strategy.discriminator_hidden)
            model, result = engine.train(stage, model, eval_sets, resume=plan[stage.name])
            self.model = unwrap(engine.accelerator, model).classifier  # the discriminator stays behind
            return self.model, [result]
        mlm, source = stages
        encoder, mlm_result = self.adapt_encoder(engine, mlm, plan[mlm.name])
        # Exactly what a run with `model.name_or_path: <run>/mlm_encoder` starts from.
        start = dataclasses.replace(cfg.model, name_or_path=str(encoder), revision=None)
        model, result = engine.train(source, self.build_classifier(data, start), eval_sets,
                                     resume=plan[source.name])
        self.model = unwrap(engine.accelerator, model)
        return model, [mlm_result, result]

    def adapt_encoder(self, engine: Engine, stage: Stage, resume) -> tuple[Path, object]:
        """Run the masked-LM stage; write the adapted encoder to ``mlm_encoder/``."""
        cfg, acc = self.config, engine.accelerator
        set_seed(cfg.training.seed)  # the new MLM head's initial weights are reproducible
        model, new_weights = load_masked_lm(cfg.model)
        model = apply_mlm_tuning(model, cfg.tuning).to(acc.device)
        logger.info("Stage 'mlm', tuning %s: %s", cfg.tuning.method, describe_model(model))
        with acc.autocast():  # the reference: the masked-LM loss before any MLM step
            before = self.masked_lm.evaluate(engine, model, self.unlabeled["validation"],
                                             cfg.training.batch_size, cfg.training.seed)
        model, result = engine.train(stage, model, {}, resume=resume)
        folder = self.run_dir / ENCODER_DIR
        if acc.is_main_process:
            save_adapted_encoder(merged(unwrap(acc, model)), cfg.model, engine.tokenizer, folder)
        acc.wait_for_everyone()
        self.masked_lm_report = {
            "eval_on": stage.select_on, "texts": {k: len(v) for k, v in self.unlabeled.items()},
            "loss_before": before["mlm_loss"], "loss_after": result.best_metric,
            "new_head": bool(new_weights), "encoder": str(folder),
        }
        return folder, result

    def _check_distributed(self, accelerator) -> None:
        sharded = accelerator.distributed_type.value in ("FSDP", "DEEPSPEED", "MEGATRON_LM")
        if sharded:
            raise ConfigError(
                f"`{self.config.strategy.name}` is not supported under "
                f"{accelerator.distributed_type.value} (its stages change or wrap the model in "
                "memory, which needs unsharded parameters): use DDP (`recipes/accelerate/ddp_gpu.yaml`) "
                "or one process."
            )

    # --- outputs ------------------------------------------------------------------------

    def extra_results(self, data: RunData, matrix: dict) -> dict:
        out = dict(super().extra_results(data, matrix))
        s = self.config.strategy
        if self.masked_lm_report is not None:
            out["masked_lm"] = self.masked_lm_report
        if self.adapts_unlabeled and s.name == "dann":
            out["dann"] = {"weight": s.dann_weight, "discriminator_hidden": s.discriminator_hidden,
                           "target_texts": len(self.unlabeled["train"]),
                           "features": "input of the classifier's head"}
        return out

    def save_model(self, model, tokenizer, data: RunData, state_dict: Optional[dict]) -> None:
        if self.adapts_unlabeled and self.config.strategy.name in MLM_STRATEGIES \
                and hasattr(model, "peft_config"):
            # The adapter's base is the adapted encoder of this run, not `model.name_or_path`:
            # fold the adapter in and save a standalone classifier.
            logger.info("Saving a standalone classifier: the LoRA adapter is merged into the "
                        "adapted encoder (%s).", ENCODER_DIR)
            model, state_dict = model.merge_and_unload(), None
        super().save_model(model, tokenizer, data, state_dict)
