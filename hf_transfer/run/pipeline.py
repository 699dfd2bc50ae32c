"""The one run skeleton every scenario shares.

    Recipe(config).run():
      check the output folder, start Accelerate (logging, seeds)
      data:    load_data() (the data roles) -> strategy.check() -> tokenize() -> strategy.tokenize()
               (main process first; labels and architecture checked before any weights load)
      stages:  the scenario's base stages through each strategy's plan(); checks that need
               the plan (label shift, sharding); the resume plan
      train:   for each stage: the start model when none is held (start_model()), the
               scenario's enter_stage(), each strategy's enter_stage(), the engine, each
               strategy's leave_stage()
      finish:  label-shift correction, final evaluation, results.json, the saved model, the
               baseline comparison, report, optional push

A scenario (:mod:`hf_transfer.scenarios`) subclasses :class:`Recipe` and keeps only what is
scenario-specific: which labels the run uses (:meth:`Recipe.align_labels`,
:meth:`Recipe.check_labels`), its evaluation sets, the model the strategy's stages start from
(:meth:`Recipe.start_model`), and its own results. The strategies (:mod:`hf_transfer.strategies`,
a chain of one or more) say how to transfer; they see the run only through a
:class:`~hf_transfer.strategies.base.RunContext`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import ClassVar, Optional

import datasets
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed

from ..atomic import write_json
from ..baselines import NEGATIVE, format_transfer
from ..config import (DEFAULT_LEARNING_RATES, ModelConfig, RunConfig, choice_problem, format_problems,
                      parse_args)
from ..data.labels import LabelSpace
from ..data.loading import load_splits, load_splits_with_rest, split_sizes
from ..data.roles import ORIGIN_UNUSED, RunData, evaluation_texts, resolve_target_text
from ..data.unlabeled import load_unlabeled_text
from ..data.tokenize import tokenize
from ..errors import ConfigError, DataError, HfTransferError, Preempted
from ..hub import push_run_from_config, write_model_card
from ..label_shift import correct_label_shift, has_output_bias
from ..layout import RunLayout
from ..modeling import (build_on_meta, check_max_length, describe_model, load_classifier_model,
                        load_tokenizer)
from ..report import write_report_safely
from ..saving import save_classifier
from ..strategies import registry
from ..strategies.registry import TargetStageOptions
from ..strategies.base import SOURCE_ONLY_ARM, TARGET_ONLY_ARM, RunContext, Strategy
from ..strategies.baselines import SourceStageOnly, TargetStageOnly
from ..strategies.chain import build_chain, chain_needs, chain_problems, plan_stages
from ..training import (Engine, Stage, StageResult, checkpoint_bytes, full_state_dict, make_accelerator,
                        resume_plan, unwrap, weights_bytes)
from ..tuning import apply_tuning, check_tuning
from .comparison import nested_config, run_comparison
from .results import confusion_of, flat_config, format_summary, insert_after, one_line, run_results

logger = logging.getLogger("hf_transfer")

# Baselines (`strategy.baselines`): which arm a nested run of the comparison is.
TARGET_ONLY, SOURCE_ONLY = TARGET_ONLY_ARM, SOURCE_ONLY_ARM


class Recipe:
    """Base of the scenario recipes. A subclass sets ``scenario``; the strategies that declare
    that scenario (:func:`hf_transfer.strategies.registry.for_scenario`) are the ones it runs.

    ``arm``: None for the run itself; ``"target_only"`` or ``"source_only"`` for a nested
    baseline run of the transfer comparison (:mod:`hf_transfer.run.comparison`).
    """

    scenario: ClassVar[str] = ""
    # Baselines (`strategy.baselines`) this scenario can run.
    baseline_choices: ClassVar[tuple[str, ...]] = (TARGET_ONLY, SOURCE_ONLY)
    # Modules of the model being trained that its checkpoint lacked, beyond the new head (the
    # source-transfer scenarios set them per run; never changed in place).
    new_modules: list = []

    def __init__(self, config: RunConfig, arm: Optional[str] = None):
        self.config = config
        self.arm = arm
        # One message with every problem: the generic settings, the scenario's rules and the
        # strategy's own.
        problems = config.problems()
        names = config.strategy.chain
        if len(names) == 1 and names[0] not in self.strategy_names():
            name_problems = [choice_problem("strategy.name", names[0], self.strategy_names())]
        else:
            name_problems = chain_problems(names, self.strategy_names())
        problems += name_problems
        self.chain: list[Strategy] = []
        if names and not name_problems:
            transfer = build_chain(config)
            self.transfer_needs = chain_needs(transfer)
            problems += self.baseline_problems() + self.config_problems()
            problems += [p for strategy in transfer for p in strategy.problems()]
            self.chain = self.chain_of_arm(transfer)
            # What the run's strategies need, declared once each, read here once.
            self.needs = chain_needs(self.chain)
        if problems:
            raise ConfigError(format_problems(problems))
        self.layout = RunLayout(config.output.dir)
        self.run_dir = self.layout.root
        self.context: Optional[RunContext] = None  # what the strategies see; set once the data loads
        self.labelled_target: dict = {}
        self.chosen_run: Optional["Recipe"] = None  # `auto`: the candidate run it kept
        self.scenario_results: dict = {}  # the scenario's own sections of results.json
        self.results: Optional[dict] = None
        self.model: Optional[torch.nn.Module] = None  # the final classifier (unwrapped)
        self.label_shift: Optional[dict] = None  # `strategy.label_shift`: what it estimated
        # A run inside another (a baseline arm, or the transfer strategy on another seed): no
        # report, no end_training, a one-line summary. Set by the run that starts it.
        self.nested = False

    @classmethod
    def strategy_names(cls) -> tuple[str, ...]:
        return registry.for_scenario(cls.scenario)

    # --- hooks: what a scenario may change ----------------------------------------------------

    def config_problems(self) -> list[str]:
        """This scenario's own rules about the configuration (field named, fix given)."""
        return []

    def chain_of_arm(self, transfer: list[Strategy]) -> list[Strategy]:
        """The strategies this run trains with: ``transfer``, or a baseline arm's."""
        if self.arm == SOURCE_ONLY:
            return [SourceStageOnly(self.config)]
        if self.arm == TARGET_ONLY:
            # The target stage as the transfer strategies would run it.
            settings = next((s.options for s in transfer if isinstance(s.options, TargetStageOptions)),
                            TargetStageOptions())
            return [TargetStageOnly(self.config, self.transfer_needs, settings)]
        return transfer

    def load_data(self) -> RunData:
        """The raw (untokenized) data roles and the label space; sizes for results.json."""
        cfg = self.config
        source = load_splits(cfg.data.source, cfg.training.seed, "source")
        target, not_sampled = load_splits_with_rest(cfg.data.target, cfg.training.seed, "target")
        source, target = self.align_labels(source, target)
        labels = self.check_labels(source, target)
        return self.with_text_roles(RunData(source, target, labels, split_sizes(source=source, target=target)),
                                    not_sampled)

    def with_text_roles(self, raw: RunData, not_sampled) -> RunData:
        """``raw`` with the unlabelled roles its strategies read (:mod:`hf_transfer.data.roles`):
        the target's text (also for `strategy.label_shift`), and the corpus `data.unlabeled`."""
        cfg = self.config
        if self.needs.target_text or cfg.strategy.label_shift != "none":
            text, origin = resolve_target_text(cfg.data, raw.target, not_sampled, cfg.training.seed)
            raw = dataclasses.replace(raw, target_text=text, target_text_origin=origin)
            raw.sizes["target_text"] = {"splits": {k: len(v) for k, v in text.items()}, "origin": origin}
        elif not_sampled is not None or cfg.data.target_unlabeled.is_set():
            raw = dataclasses.replace(raw, target_text_origin=ORIGIN_UNUSED)
        if self.needs.corpus:
            raw = dataclasses.replace(raw, corpus=load_unlabeled_text(cfg.data.unlabeled, cfg.training.seed,
                                                                      exclude=evaluation_texts(raw.target)))
        return raw

    def align_labels(self, source: datasets.DatasetDict, target: datasets.DatasetDict):
        """Restrict source and target before the label check. Default: unchanged."""
        return source, target

    def check_labels(self, source: datasets.DatasetDict, target: datasets.DatasetDict) -> LabelSpace:
        """Default: one shared space; target labels must all be source labels."""
        labels = LabelSpace.from_splits(source)
        labels.require_covers(target, "data.target")
        return labels

    def architecture(self) -> ModelConfig:
        """Where the model's architecture (config.json) comes from."""
        return self.config.model

    def tokenizer_config(self) -> ModelConfig:
        """Where the tokenizer comes from."""
        return self.config.model

    def tokenize(self, raw: RunData, tokenizer) -> RunData:
        def prepare(dd: datasets.DatasetDict) -> datasets.DatasetDict:
            # `group` stays: evaluation reports per group; the loaders never feed it to the model.
            return tokenize(raw.labels.encode(dd), tokenizer, self.config.model.max_length,
                            self.config.model.text_prefix)

        return self.with_tokenized_text(raw, RunData(prepare(raw.source), prepare(raw.target), raw.labels,
                                                     raw.sizes), tokenizer)

    def with_tokenized_text(self, raw: RunData, data: RunData, tokenizer) -> RunData:
        """``data`` with ``raw``'s unlabelled roles tokenized (text only: no label column)."""
        m = self.config.model
        text = None if raw.target_text is None else tokenize(raw.target_text, tokenizer, m.max_length, m.text_prefix)
        corpus = None if raw.corpus is None else tokenize(
            datasets.DatasetDict({"train": raw.corpus}), tokenizer, m.max_length, m.text_prefix)["train"]
        return dataclasses.replace(data, target_text=text, target_text_origin=raw.target_text_origin, corpus=corpus)

    def eval_sets(self, data: RunData) -> dict[str, datasets.Dataset]:
        """Every split that is not trained on, named ``role/split``."""
        return {f"{role}/{split}": getattr(data, role)[split]
                for role in ("source", "target") for split in ("validation", "test")}

    def scenario_stage_names(self) -> list[str]:
        """Stages the scenario runs itself (in :meth:`start_model`) before the strategy's."""
        return []

    def base_stages(self, data: RunData) -> list[Stage]:
        """The plan the strategies add to. Default: the source stage."""
        return [self.source_stage(data)]

    def start_model(self, engine: Engine, data: RunData, plan: dict, start_from: Optional[str] = None):
        """The model the strategies' stages start from, and the results of any stage run to
        get it. Default: the pretrained encoder (or the encoder folder ``start_from``) with a
        fresh head, tuned."""
        model_config = None if start_from is None else \
            dataclasses.replace(self.config.model, name_or_path=start_from, revision=None)
        return self.build_classifier(data, model_config), []

    def enter_stage(self, engine: Engine, stage: Stage, model: torch.nn.Module) -> torch.nn.Module:
        """The model as stage ``stage`` trains it. Default: as it is."""
        return model

    def label_shift_applies(self, stages: list[Stage]) -> bool:
        """`strategy.label_shift` applies to a classifier whose last stage trained on the source
        labels alone; one that last trained on labelled target data has the target's
        distribution already."""
        return (self.config.strategy.label_shift != "none" and bool(stages)
                and tuple(stages[-1].label_roles) == ("source",))

    def corrects_label_shift(self, stages: list[Stage]) -> bool:
        """Whether this run corrects its classifier (a baseline arm never does); says so when
        the setting is on but does not apply."""
        if self.config.strategy.label_shift != "none" and not self.label_shift_applies(stages) \
                and not self.needs.runs_candidates:
            logger.info("`strategy.label_shift` %s is not applied: `%s` trains on labelled target data in its "
                        "last stage, which has the target's label distribution already.",
                        self.config.strategy.label_shift, self.config.strategy.label)
        return self.label_shift_applies(stages) and self.arm is None

    def needs_unsharded(self, stages: list[Stage]) -> bool:
        """Whether this run changes the model in memory between stages or after training (so
        FSDP/DeepSpeed, which shard parameters, cannot run it)."""
        return self.needs.unsharded or self.label_shift_applies(stages)

    def extra_results(self, data: RunData, matrix: dict) -> dict:
        """Scenario-specific sections added to results.json."""
        return {}

    def save_model(self, model, tokenizer, data: RunData, state_dict: Optional[dict]) -> None:
        """Write the final classifier (main process). ``model`` is unwrapped."""
        cfg = self.config
        for strategy in self.chain:
            model, state_dict = strategy.model_to_save(self.context, model, state_dict)
        model, state_dict, base = self.saved_base(model, state_dict)
        save_classifier(model, tokenizer, self.layout.model, data.labels.names, base, cfg.model.max_length,
                        cfg.tuning.method, state_dict=state_dict, text_prefix=cfg.model.text_prefix)

    def saved_base(self, model, state_dict: Optional[dict]):
        """The model and weights to save and the base model its folder names. Default: as they
        are, on `model.name_or_path`."""
        return model, state_dict, self.config.model.name_or_path

    # --- stages and models the scenarios and strategies share ---------------------------------

    @property
    def learning_rate(self) -> float:
        return self.config.training.learning_rate_for(self.config.tuning.method)

    def source_stage(self, data: RunData) -> Stage:
        """Train on the labelled source; pick the best checkpoint on `strategy.select_on`."""
        cfg = self.config
        return Stage(name="source", train=data.source["train"], training=cfg.training,
                     learning_rate=self.learning_rate, num_epochs=cfg.training.num_epochs,
                     select_on=f"{cfg.strategy.select_on}/validation")

    def target_stage(self, data: RunData, cfg: TargetStageOptions) -> Stage:
        """Continue on the labelled target training data, with the budget of the strategy's
        target-stage settings ``cfg``; select on `target/validation`."""
        return Stage(name="target", train=data.target["train"], training=self.config.training,
                     learning_rate=cfg.target_learning_rate or self.learning_rate,
                     num_epochs=cfg.target_num_epochs, min_updates=cfg.target_min_steps,
                     select_on="target/validation", label_roles=("target",))

    def build_classifier(self, data: RunData, model_config: Optional[ModelConfig] = None):
        """The pretrained encoder (``model_config``, default `model`) with a fresh head for the
        run's labels, tuned by `tuning.method`."""
        cfg = self.config
        model_config = model_config or cfg.model
        # Build the model after seeding, so the new head's initial weights are reproducible.
        set_seed(cfg.training.seed)
        model, new_modules = load_classifier_model(model_config, list(data.labels.names))
        model = apply_tuning(model, cfg.tuning, new_modules)
        logger.info("Model %s, tuning %s: %s", model_config.name_or_path, cfg.tuning.method,
                    describe_model(model))
        return model

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> dict:
        """Train and evaluate; write ``results.json`` and the model. Returns the results."""
        cfg = self.config
        started = time.perf_counter()
        accelerator = self._start()
        self._prepare_output_dir(accelerator)
        with accelerator.main_process_first():
            data, tokenizer, meta_model = self._prepare_data()
        self._check_resume_data(accelerator, data)
        # Planned on the data, before any weights load: checks that need the plan come here.
        stages = plan_stages(self.chain, self.context, self.base_stages(data))
        self._check_distributed(accelerator, stages)
        if self.label_shift_applies(stages):
            self._check_label_shift(data, meta_model)
        if not self.nested:  # a baseline arm would repeat it
            self._warn_about_learning_rates(stages)
        plan = resume_plan(self.layout.checkpoints, self.scenario_stage_names() + [s.name for s in stages],
                           cfg.output.resume_from_checkpoint)
        data_seconds = time.perf_counter() - started
        if cfg.training.log_with:
            accelerator.init_trackers(self.scenario, config=flat_config(cfg.to_dict()))
        engine = Engine(accelerator, tokenizer, list(data.labels.names), self.layout.checkpoints,
                        cfg.training.pad_to_multiple_of)
        self.context = dataclasses.replace(self.context, engine=engine, eval_sets=self.eval_sets(data))
        if self.needs.runs_candidates:  # `auto`: the chosen candidate's classifier
            model, results_of_stages, self.chosen_run = self.chain[0].choose(self.context)
        else:
            model, results_of_stages = self._train_stages(stages, plan)
        if self.corrects_label_shift(stages):
            self.label_shift = correct_label_shift(engine, model, data, self.context.eval_sets,
                                                   cfg.training.eval_batch_size, cfg.strategy.label_shift)
        self.labelled_target = self._labelled_target_examples(data, stages)
        return self._finish(accelerator, engine, model, tokenizer, data, self.context.eval_sets,
                            results_of_stages, started, data_seconds)

    def _train_stages(self, stages: list[Stage], plan: dict):
        """Every stage of the plan on one model: the scenario's start model when none is held
        (before the first stage, or after a stage that left none), the scenario's and each
        strategy's ``enter_stage``, the engine, each strategy's ``leave_stage``."""
        ctx, model, results = self.context, None, []
        for stage in stages:
            if model is None and not stage.builds_model:
                model, before = self.start_model(ctx.engine, ctx.data, plan, stage.start_from)
                results += before
            if not stage.builds_model:
                model = self.enter_stage(ctx.engine, stage, model)
            for strategy in self.chain:
                stage, model = strategy.enter_stage(ctx, stage, model)
            model, result = ctx.engine.train(stage, model, ctx.eval_sets, resume=plan[stage.name])
            results.append(result)
            for strategy in self.chain:
                model = strategy.leave_stage(ctx, stage, model, result)
        return model, results

    def _labelled_target_examples(self, data: RunData, stages: list[Stage]) -> dict:
        """How many labelled target examples the run read, for training and for selection (a
        few-shot result must count both: Perez et al. 2021). `auto` and `target_only` read the
        target's training labels through a candidate; label shift reads none."""
        reads_validation = self.needs.runs_candidates or any(s.select_on == "target/validation" for s in stages) \
            or self.config.strategy.select_on == "target"
        trains = self.needs.runs_candidates or any("target" in s.label_roles for s in stages)
        train = len(data.target["train"]) if trains else 0
        selection = len(data.target["validation"]) if reads_validation else 0
        return {"train": train, "selection": selection, "total": train + selection,
                "unlabelled_target_texts": len(data.target_text["train"]) if data.target_text is not None else 0,
                "unlabelled_from": data.target_text_origin or None}

    def _warn_about_learning_rates(self, stages: list[Stage]) -> None:
        """Full fine-tuning at a rate made for LoRA or a new head (loss flat, one class predicted)."""
        training = self.config.training
        for stage in stages:
            if self.config.tuning.method != "full" or stage.learning_rate <= FULL_TUNING_MAX_USUAL_LR:
                continue
            source = (f"`{training.learning_rate_source('full')}`"
                      if stage.learning_rate == training.learning_rate_for("full")
                      else "the strategy's own rate for it (e.g. `strategy.target_learning_rate`)")
            logger.warning(
                "Stage %r fine-tunes the whole model (`tuning.method` full) at learning rate %g, from "
                "%s: a rate typical of LoRA or a new head. Full fine-tuning usually needs 1e-5 to 5e-5 "
                "(default %g); at %g it often stops learning and predicts one class. Set it lower.",
                stage.name, stage.learning_rate, source, DEFAULT_LEARNING_RATES["full"], stage.learning_rate)

    def _prepare_data(self):
        """Data and tokenizer, every check that needs no weights done first."""
        cfg = self.config
        raw = self.load_data()
        self.context = self._context(raw)
        if len(raw.labels) < 2:
            raise DataError(
                f"This run's classifier would have one class only ({list(raw.labels.names)}): a "
                "classifier needs at least two. Check the data's `label_column` and `filter`, and "
                "that the labels are not all the same.")
        # Architecture only (meta device): a wrong LoRA target fails before weights load.
        meta_model = build_on_meta(self.architecture(), len(raw.labels))
        for strategy in self.chain:
            strategy.check(self.context, meta_model)
        check_tuning(meta_model, cfg.tuning)
        self._check_free_space(meta_model)
        tokenizer = load_tokenizer(self.tokenizer_config())
        check_max_length(cfg.model, meta_model, tokenizer)
        data = self.tokenize(raw, tokenizer)
        self.context = dataclasses.replace(self.context, data=data)
        for strategy in self.chain:
            strategy.tokenize(self.context, tokenizer)
        return data, tokenizer, meta_model

    def _context(self, data: RunData) -> RunContext:
        """What the strategies' hooks see of this run."""
        return RunContext(config=self.config, layout=self.layout, data=data, needs=self.needs,
                          source_stage=self.source_stage, target_stage=self.target_stage,
                          new_modules=lambda: list(self.new_modules),
                          candidate=self.candidate, strategy_names=self.strategy_names())

    def _start(self) -> Accelerator:
        """The Accelerator of the run, logging set up, seeds fixed."""
        cfg = self.config
        accelerator = make_accelerator(
            mixed_precision=cfg.training.mixed_precision,
            log_with=cfg.training.log_with or None,
            project_dir=str(self.layout.logs),
            # Shuffling seeded per epoch: resumed runs see the same batches. Batches (pinned on
            # CUDA) are copied to the device without waiting for the copy.
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True,
                                                      data_seed=cfg.training.seed, non_blocking=True),
        )
        _setup_logging(accelerator)
        set_seed(cfg.training.seed)
        return accelerator

    def _check_distributed(self, accelerator, stages: list[Stage]) -> None:
        sharded = accelerator.distributed_type.value in ("FSDP", "DEEPSPEED", "MEGATRON_LM")
        if sharded and self.needs_unsharded(stages):
            raise ConfigError(
                f"{self.scenario} / `{self.config.strategy.label}` is not supported under "
                f"{accelerator.distributed_type.value}: the run changes or wraps the model in memory "
                "between stages, which needs unsharded parameters. Use DDP "
                "(`recipes/accelerate/ddp_gpu.yaml`) or one process"
                + (", or train the source classifier in its own run and pass it as "
                   "`strategy.source_model`." if "source" in self.scenario_stage_names() else ".")
            )

    def _finish(self, accelerator, engine: Engine, model, tokenizer, data: RunData,
                eval_sets: dict, results_of_stages: list[StageResult], started: float,
                data_seconds: float) -> dict:
        """Final evaluation, results.json, the saved model, the comparison, the push."""
        cfg = self.config
        eval_started = time.perf_counter()
        # The prepared (DDP/FSDP) model: each process evaluates its shard of every split.
        matrix = engine.evaluate(model, eval_sets, cfg.training.eval_batch_size)
        eval_seconds = time.perf_counter() - eval_started
        # Collective: under FSDP the full weights are gathered before the main process saves.
        state_dict = full_state_dict(accelerator, model) if cfg.output.save_model else None
        # `auto` trained nothing itself: the scenario's report is that of the run it kept.
        self.scenario_results = self.chosen_run.scenario_results if self.chosen_run is not None \
            else self.extra_results(data, matrix)
        results = run_results(self, data, matrix, results_of_stages, accelerator, {
            "data_seconds": round(data_seconds, 3),
            "train_seconds": round(sum(r.train_seconds for r in results_of_stages), 3),
            "final_eval_seconds": round(eval_seconds, 3),
            "total_seconds": round(time.perf_counter() - started, 3),
            **_peak_memory(accelerator),
        })
        confusion = confusion_of(engine.predictions, list(data.labels.names))
        if confusion is not None:
            results = insert_after(results, "eval_matrix", "confusion_matrix", confusion)
        if self.label_shift:
            results = insert_after(results, "eval_matrix", "label_shift", self.label_shift)
        self.model = unwrap(accelerator, model)
        if accelerator.is_main_process:
            if cfg.output.save_model:
                self.save_model(self.model, tokenizer, data, state_dict)
            self._write_results(results)
            print(format_summary(results) if not self.nested else one_line(self, results))
        accelerator.wait_for_everyone()
        self.results = results
        if not self.nested and cfg.strategy.baselines:
            results = self._compare(accelerator, results, "confusion_matrix" if confusion else "eval_matrix")
        if accelerator.is_main_process and cfg.output.report and not self.nested:
            write_report_safely(self.run_dir, results)
        if not self.nested:  # it destroys the process group that nested runs still share
            accelerator.end_training()
        if cfg.output.push_to_hub and accelerator.is_main_process:  # results.json and model are written
            push_run_from_config(self.run_dir, cfg.output)
        return results

    def _compare(self, accelerator, results: dict, after: str) -> dict:
        """The nested baseline runs (every process takes part), then the verdict."""
        transfer = run_comparison(self.config, results, self.layout, self.nested_run)
        results = insert_after(results, after, "transfer", transfer)
        self.results = results
        if accelerator.is_main_process:
            self._write_results(results)
            print(format_transfer(transfer))
            if transfer["verdict"] == NEGATIVE:
                logger.warning("NEGATIVE TRANSFER: %s The target-only baseline is better; see %s",
                               transfer["summary"], self.layout.report)
        accelerator.wait_for_everyone()
        return results

    def _write_results(self, results: dict) -> None:
        """results.json, and the saved model's card with them (its evaluation, its verdict)."""
        write_json(self.layout.results, results)
        if self.config.output.save_model and self.layout.model.is_dir():
            write_model_card(self.layout.model, results)

    def nested_run(self, config: RunConfig, arm: Optional[str]) -> dict:
        """Run this scenario with ``config`` as one arm of the comparison (None: the strategy
        itself on another seed); returns its results."""
        nested = type(self)(config, arm=arm)
        nested.nested = True
        return nested.run()

    def candidate(self, strategy, arm: Optional[str] = None, shared: Optional[dict] = None) -> "Recipe":
        """A nested run of this scenario (not started) with strategy ``strategy`` (a name, or a
        list of names to compose) at its default options — but for the settings in ``shared``,
        given to every strategy that has them — (and its tuning method, where it works with one
        only), or a baseline ``arm`` of it, in `output.dir/candidates/<arm or strategy>/`, for
        `auto`. Raises ConfigError when the run's data or settings do not allow it."""
        cfg = self.config
        names = list(strategy) if isinstance(strategy, (list, tuple)) else [strategy]
        needs = chain_needs([registry.get(n)(cfg) for n in names if n in registry.names()])
        data = cfg.data
        if not needs.corpus:
            data = dataclasses.replace(data, unlabeled=type(data.unlabeled)())
        tuning = cfg.tuning
        if needs.tuning_methods is not None and len(needs.tuning_methods) == 1:  # e.g. `linear_probe`: frozen
            tuning = dataclasses.replace(tuning, method=needs.tuning_methods[0])
        options = {}
        for name in names:
            defaults = registry.options_for(name)
            own = {k: v for k, v in (shared or {}).items() if hasattr(defaults, k)}
            options[name] = dataclasses.replace(defaults, **own)
        config = dataclasses.replace(cfg, data=data, tuning=tuning, strategy=dataclasses.replace(
            cfg.strategy, name=names[0] if len(names) == 1 else names, options=options))
        label = "+".join(names)
        config = nested_config(config, self.layout.candidate_run(arm or label), cfg.training.seed)
        nested = type(self)(config, arm=arm)
        nested.nested = True
        return nested

    def baseline_problems(self) -> list[str]:
        out = []
        for name in self.config.strategy.baselines:
            if name not in self.baseline_choices:
                out.append(f"`strategy.baselines` has {name!r}, which {type(self).__name__} cannot run: "
                           f"choose from {', '.join(self.baseline_choices)}.")
            elif name == SOURCE_ONLY and self.transfer_needs.source_labels_only:
                out.append(f"`strategy.baselines` has `source_only`, but strategy {self.config.strategy.label!r} "
                           "already trains on the source only: drop it (the run itself is that baseline).")
        return out

    # --- steps of the run ---------------------------------------------------------------------

    def _prepare_output_dir(self, accelerator) -> None:
        """Check the output folder on every process (the same error everywhere), then, once all
        have looked, replace an earlier run's outputs, mark the folder and record the settings."""
        cfg = self.config
        replace = self._check_output_dir()
        accelerator.wait_for_everyone()
        if replace and accelerator.is_main_process:
            self.layout.remove_outputs()
        accelerator.wait_for_everyone()
        try:  # creatable and writable, checked now rather than at the first checkpoint
            self.layout.mark()
        except OSError as err:
            raise ConfigError(f"`output.dir` {str(self.run_dir)!r} cannot be written ({err.strerror}): "
                              "choose a folder you can write to.") from err
        if accelerator.is_main_process and not cfg.output.resume_from_checkpoint:
            write_json(self.layout.config, cfg.to_dict())  # what a resume must keep
        accelerator.wait_for_everyone()

    def _check_output_dir(self) -> bool:
        """Refuse to write over anything that is not an earlier run's output. True: an earlier
        run's outputs are to be replaced (`output.overwrite`)."""
        out = self.config.output
        previous = self.layout.previous_outputs()
        if out.resume_from_checkpoint:
            if not self.layout.checkpoints.is_dir():
                raise ConfigError(
                    f"`output.resume_from_checkpoint` is set but {str(self.run_dir)!r} has no "
                    "checkpoints/ folder: check `output.dir`, or drop the option to start anew."
                )
            self._check_resume_settings()
            return False
        if previous and not self.layout.holds_a_run():
            # The advice must be safe to follow: never suggest overwriting files of the user's.
            raise ConfigError(
                f"`output.dir` {str(self.run_dir)!r} holds {', '.join(previous)}, which hf_transfer "
                f"did not write (no {self.layout.marker.name} marker): nothing there is replaced or "
                "deleted. Choose another `--output.dir` (e.g. a new sub-folder), or move those "
                "files away yourself."
            )
        if previous and not out.overwrite:
            raise ConfigError(
                f"`output.dir` {str(self.run_dir)!r} already holds a run ({', '.join(previous)}). "
                "Pass `--output.overwrite true` to replace it, `--output.resume_from_checkpoint "
                "latest` to continue it, or choose another `--output.dir`."
            )
        return bool(previous)

    def _check_resume_settings(self) -> None:
        """A resume continues the run it finds: settings that shape its data, model or schedule
        must be the ones it started with (else it would train on with the old schedule and
        record values that were never used)."""
        if not self.layout.config.is_file():
            logger.warning("%s has no %s (a run of an older version): the settings of the resumed "
                           "run are not checked against the original ones.", self.run_dir,
                           self.layout.config.name)
            return
        before = flat_config(json.loads(self.layout.config.read_text(encoding="utf-8")))
        now = flat_config(self.config.to_dict())
        # A setting one of the two versions does not have (added since, or now a setting of
        # strategies this run does not use) is not a change.
        changed = [f"`{key}` was {before.get(key)!r}, now {now.get(key)!r}"
                   for key in sorted(before)
                   if key in now and before[key] != now[key] and not key.startswith(FREE_ON_RESUME)]
        if changed:
            raise ConfigError(
                f"`output.resume_from_checkpoint` continues the run in {str(self.run_dir)!r}, "
                f"which started with other settings: {'; '.join(changed)}. Resume with the original "
                f"settings (they are in {self.layout.config}), or start a new run in another "
                "`--output.dir`.")

    def _check_resume_data(self, accelerator, data: RunData) -> None:
        """A resume continues on the data the run started with: the same labels (else the
        checkpoint's head does not fit) and split sizes (else its schedule and batches do not).
        A new run records them."""
        rows = ", ".join(f"{role}/{split} {n}" for role, sizes in data.sizes.items()
                         for split, n in sizes["splits"].items())
        summary = {"labels": list(data.labels.names), "rows": rows}
        path = self.layout.data
        if self.config.output.resume_from_checkpoint and path.is_file():
            before = json.loads(path.read_text(encoding="utf-8"))
            changed = [f"the {key} were {before.get(key)}; now {summary[key]}"
                       for key in summary if before.get(key) != summary[key]]
            if changed:
                raise DataError(
                    f"`output.resume_from_checkpoint` continues the run in {str(self.run_dir)!r}, "
                    f"which started on other data: {'; '.join(changed)}. Resume with the original "
                    "data files, or start a new run in another `--output.dir`.")
        elif accelerator.is_main_process:
            write_json(path, summary)
        accelerator.wait_for_everyone()

    def _check_label_shift(self, data: RunData, meta_model: torch.nn.Module) -> None:
        """`strategy.label_shift` needs unlabelled target texts and an output bias to carry it."""
        if data.target_text is None or not len(data.target_text["train"]):
            raise ConfigError("`strategy.label_shift` estimates the target's label distribution from its "
                              "unlabelled text, but the run has none: give `data.target_unlabeled` (or a "
                              "target train split; its labels are not used), or set `strategy.label_shift` none.")
        if not has_output_bias(meta_model):
            raise ConfigError(f"`strategy.label_shift` is folded into the classifier's output bias, but "
                              f"{self.config.model.name_or_path!r}'s classification head has none: set "
                              "`strategy.label_shift` none.")

    def _check_free_space(self, meta_model: torch.nn.Module) -> None:
        """Refuse a run whose saved model (and, under full tuning, first checkpoint) cannot fit on
        the output disk: it would fail after the training time was spent. Warn when the
        checkpoints it keeps may not fit (a rough upper bound)."""
        cfg = self.config
        weights = weights_bytes(meta_model) if cfg.output.save_model else 0  # every method saves the classifier
        full_checkpoint = checkpoint_bytes(meta_model, "full") if cfg.tuning.method == "full" else 0
        least = weights + full_checkpoint
        # Kept: `save_total_limit` newest, the best one, and the one being written.
        kept = weights + checkpoint_bytes(meta_model, cfg.tuning.method) * (cfg.training.save_total_limit + 2)
        free = shutil.disk_usage(self.run_dir).free
        if free < least:
            raise ConfigError(
                f"`output.dir` {str(self.run_dir)!r} has {_size(free)} free, but this run needs about "
                f"{_size(least)} for its saved model{' and one checkpoint' if full_checkpoint else ''}: "
                "free some space or choose a folder on another disk.")
        if free < kept:
            logger.warning("%s has %s free; the checkpoints this run keeps (`training.save_total_limit` "
                           "%d, plus the best) may need up to %s. Lower `training.save_total_limit` "
                           "or free some space.", self.run_dir, _size(free),
                           cfg.training.save_total_limit, _size(kept))


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


# Full fine-tuning above this rate is suspicious: rates this large are typical of LoRA and
# fresh heads, and make a pretrained encoder forget (loss flat, one class predicted).
FULL_TUNING_MAX_USUAL_LR = 1e-4

# Settings a resumed run may change: where and what it writes and reports, not what it trains.
FREE_ON_RESUME = ("output.", "training.eval_batch_size", "training.log_with", "training.logging_steps",
                  "training.on_nonfinite", "training.save_total_limit", "strategy.baselines",
                  "strategy.baseline_seeds")


def run_from_command_line(recipe_class: type, default_config: Path, description: str,
                          argv: Optional[list] = None) -> int:
    """What every script in recipes/ does: parse the command line over the script's default
    YAML, run the recipe, and turn a user-fixable error into one message and exit code 2
    (75 after SIGTERM, once a checkpoint is saved: resume with `--output.resume_from_checkpoint
    latest`)."""
    try:
        config = parse_args(argv, default_config=default_config, description=description,
                            strategies=list(recipe_class.strategy_names()))
        recipe_class(config).run()
    except HfTransferError as err:
        print(f"{'stopped' if isinstance(err, Preempted) else 'error'}: {err}", file=sys.stderr)
        if isinstance(err, Preempted):
            _end_process_group()
        return err.exit_code
    return 0


def _end_process_group() -> None:
    """After a preemption every process stopped at the same step: destroy the process group
    before the interpreter exits, or gloo's threads can abort the process at shutdown (exit
    -6 instead of 75)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _peak_memory(accelerator) -> dict:
    """Peak resident memory of this process (and peak GPU memory on CUDA), in MiB."""
    import resource

    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)}
    if accelerator.device.type == "cuda":
        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(accelerator.device) / 2**20, 1)
    return out


def _setup_logging(accelerator: Accelerator) -> None:
    """INFO from hf_transfer on the main process only; libraries stay at warnings."""
    import transformers

    level = logging.INFO if accelerator.is_main_process else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", level=logging.WARNING)
    logging.getLogger("hf_transfer").setLevel(level)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()  # our own log lines say what the data steps did
