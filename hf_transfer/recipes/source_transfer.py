"""The run shared by recipes that start from a source *classifier* and adapt it.

``strategy.source_model`` names the source classifier: a folder saved by hf_transfer (a full
model, or a LoRA adapter, merged into its base first), or any transformers sequence
classifier (Hub id or folder). When it is null, the run first trains one: stage ``source``
on ``data.source``, from ``model.name_or_path`` with ``tuning.method`` (as the
domain-adaptation recipe does); a LoRA adapter is then merged, so the target phase always
starts from a plain classifier whose encoder carries what the source training learned.

Phases: source classifier -> evaluate it as it is -> build the target model (subclass) ->
the target stages (subclass) -> final evaluation, results.json, model.

The saved model: with LoRA, an adapter when its base can be loaded again (a Hub id or a
folder: ``strategy.source_model`` when it is a full model), else the adapter is merged and a
standalone classifier is saved (its logits equal the adapter's up to float rounding).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Optional

import datasets
import torch
from accelerate.utils import set_seed

from ..config import ModelConfig, TuningConfig
from ..data.labels import LabelSpace
from ..data.loading import label_counts, load_splits
from ..engine import Engine, Stage, StageResult, resume_plan, unwrap
from ..errors import ConfigError, DataError
from ..modeling import build_on_meta, describe_model, load_classifier_model, load_tokenizer
from ..saving import save_classifier
from ..source_model import SourceInfo, SourceModel, describe_source, load_source_model, source_from_trained
from ..tuning import apply_tuning, check_tuning
from .base import Recipe, RunData, _flat_config

logger = logging.getLogger("hf_transfer")


@dataclasses.dataclass
class Phase:
    """A target-phase stage and the tuning method its model trains with."""

    stage: Stage
    tuning: TuningConfig


class SourceTransferRecipe(Recipe):
    """Base of :class:`LabelSpaceRecipe` and :class:`ConditionalShiftRecipe`."""

    # The source classifier cannot predict the target's labels (label space), or is already
    # reported as it is (`no_adaptation`, conditional shift): only target_only is a nested run.
    baseline_choices = ("target_only",)

    def __init__(self, config):
        super().__init__(config)
        self.source_info: Optional[SourceInfo] = None
        self.source_labels: Optional[LabelSpace] = None  # the source classifier's labels

    # --- configuration ----------------------------------------------------------------------

    def config_problems(self) -> list[str]:
        s = self.config.strategy
        out = []
        if s.source_model is None and not s.evaluate_source:
            out.append("`strategy.evaluate_source` is false but `strategy.source_model` is not set: "
                       "the source stage trains and selects on `data.source`. Name a source "
                       "classifier, or set `evaluate_source` true.")
        if s.label_map and s.name != "label_map":
            out.append(f"`strategy.label_map` is set but `strategy.name` is {s.name!r}: the mapping "
                       "is used only by the `label_map` strategy.")
        return out

    @property
    def trains_source(self) -> bool:
        return self.config.strategy.source_model is None

    def _source_info(self) -> Optional[SourceInfo]:
        if self.source_info is None and not self.trains_source:
            self.source_info = describe_source(self.config.strategy.source_model, self.config.model)
            info = self.source_info
            if info.text_prefix is not None and info.text_prefix != self.config.model.text_prefix:
                logger.warning("The source model was trained with text_prefix %r; this run uses %r "
                               "(`model.text_prefix`).", info.text_prefix, self.config.model.text_prefix)
        return self.source_info

    def _architecture(self) -> ModelConfig:
        """Where the model's architecture (config.json) and tokenizer come from."""
        cfg = self.config.model
        info = self._source_info()
        if info is None:
            return cfg
        return dataclasses.replace(cfg, name_or_path=info.architecture, revision=None)

    # --- data ---------------------------------------------------------------------------------

    def needs_source_data(self) -> bool:
        """Load data.source: to train the source stage, or to evaluate the source task."""
        if self.trains_source:
            return True
        info = self._source_info()
        return self.config.strategy.evaluate_source and info.labels is not None

    def _load_data(self) -> RunData:
        cfg = self.config
        seed = cfg.training.seed
        info = self._source_info()
        if "target_only" in cfg.strategy.baselines and info is not None and info.kind == "classifier":
            raise ConfigError(
                f"`strategy.baselines` has `target_only`, but `strategy.source_model` "
                f"{info.name_or_path!r} is a transformers classifier whose pretrained encoder is not "
                "recorded: the baseline would not know where to start. Pass a model folder saved by "
                "hf_transfer (it records its base model), or set `source_model` null to train the "
                "source in the run."
            )
        source = load_splits(cfg.data.source, seed, "source") if self.needs_source_data() \
            else datasets.DatasetDict()
        target = load_splits(cfg.data.target, seed, "target")
        source, target = self.align_labels(source, target)
        self.source_labels, labels = self.label_spaces(source, target, info)
        self.check_label_spaces(self.source_labels, labels)
        sizes = {role: {"splits": {k: len(v) for k, v in dd.items()},
                        "label_counts": {k: label_counts(v) for k, v in dd.items()}}
                 for role, dd in (("source", source), ("target", target)) if len(dd)}
        return RunData(source, target, labels, sizes)

    def label_spaces(self, source, target, info: Optional[SourceInfo]) -> tuple[Optional[LabelSpace], LabelSpace]:
        """(source classifier's labels or None, the final model's labels)."""
        raise NotImplementedError

    def check_label_spaces(self, source: Optional[LabelSpace], target: LabelSpace) -> None:
        """Hook: more label checks, before any weights load."""

    def _source_space(self, source: datasets.DatasetDict, info: Optional[SourceInfo]) -> Optional[LabelSpace]:
        """The source classifier's labels: the given model's (in its id order), or those of
        data.source (sorted) when the source stage trains here. data.source must fit them."""
        if info is None:
            return LabelSpace.from_splits(source)
        if info.labels is None:
            return None
        space = LabelSpace(tuple(info.labels))
        if len(source):
            seen = {label for split in source.values() for label in split.unique("label")}
            unknown = sorted(seen - set(space.names))
            if unknown:
                raise DataError(
                    f"`data.source` has labels the source model {info.name_or_path!r} does not know: "
                    f"{unknown} (its labels: {list(space.names)}). Point `data.source` at the data "
                    "that classifier was trained on, or set `--strategy.evaluate_source false`."
                )
        return space

    def _tokenize(self, raw: RunData, tokenizer) -> RunData:
        from ..data.tokenize import tokenize

        m = self.config.model

        def prepare(dd: datasets.DatasetDict, space: LabelSpace) -> datasets.DatasetDict:
            if not len(dd):
                return dd
            return tokenize(space.encode(dd), tokenizer, m.max_length, m.text_prefix)

        source_space = self.source_labels if self.source_labels is not None else raw.labels
        return RunData(prepare(raw.source, source_space), prepare(raw.target, raw.labels),
                       raw.labels, raw.sizes)

    def source_eval_sets(self, data: RunData) -> dict[str, datasets.Dataset]:
        if not len(data.source) or self.source_labels is None:
            return {}
        return {f"source/{split}": data.source[split] for split in ("validation", "test")}

    def source_stage_eval_sets(self, data: RunData) -> dict[str, datasets.Dataset]:
        """What the source stage may select on (labels of the source classifier)."""
        return self.source_eval_sets(data)

    def target_eval_sets(self, data: RunData) -> dict[str, datasets.Dataset]:
        return {f"target/{split}": data.target[split] for split in ("validation", "test")}

    # --- what subclasses define ------------------------------------------------------------

    def target_model(self, source: SourceModel, data: RunData) -> tuple[torch.nn.Module, list[str]]:
        """The model the target phase starts from and its modules that must be trained/saved."""
        raise NotImplementedError

    def target_phases(self, data: RunData, source: SourceModel) -> list[Phase]:
        raise NotImplementedError

    def target_stage_names(self) -> list[str]:
        raise NotImplementedError

    def before_adaptation(self, engine_source: Optional[Engine], engine_target: Engine,
                          source: SourceModel, data: RunData) -> None:
        """Hook: evaluate the source classifier as it is (results go into extra_results)."""

    def stages(self, data: RunData) -> list[Stage]:  # the base class's abstract method
        raise NotImplementedError("SourceTransferRecipe runs its phases in run()")

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> dict:
        cfg = self.config
        started = time.perf_counter()
        self._check_output_dir()
        accelerator = self._start()
        self._check_distributed(accelerator)
        with accelerator.main_process_first():
            raw = self._load_data()
            arch = self._architecture()
            # Architecture only (meta device): a wrong LoRA target fails before weights load.
            check_tuning(build_on_meta(arch, len(raw.labels)), cfg.tuning)
            tokenizer = load_tokenizer(dataclasses.replace(arch, name_or_path=self._tokenizer_path()))
            data = self._tokenize(raw, tokenizer)
        trains_source = self.trains_source and self.baseline != "target_only"
        names = (["source"] if trains_source else []) + self.target_stage_names()
        plan = resume_plan(self.run_dir, names, cfg.output.resume_from_checkpoint)
        data_seconds = time.perf_counter() - started
        if cfg.training.log_with:
            accelerator.init_trackers(self.scenario, config=_flat_config(cfg.to_dict()))
        results_of_stages: list[StageResult] = []

        # 1. The source classifier: trained here, or loaded.
        source_engine = None
        if self.source_labels is not None and self.source_eval_sets(data):
            source_engine = Engine(accelerator, tokenizer, list(self.source_labels.names), self.run_dir,
                                   cfg.training.pad_to_multiple_of)
        set_seed(cfg.training.seed)
        if self.baseline == "target_only":
            source = self.pretrained_start(data)
        elif self.trains_source:
            model, new_modules = load_classifier_model(cfg.model, list(self.source_labels.names))
            model = apply_tuning(model, cfg.tuning, new_modules)
            logger.info("Source stage: model %s, tuning %s: %s", cfg.model.name_or_path,
                        cfg.tuning.method, describe_model(model))
            model, result = source_engine.train(self.source_stage(data), model,
                                                self.source_stage_eval_sets(data), resume=plan["source"])
            results_of_stages.append(result)
            source = source_from_trained(unwrap(accelerator, model), list(self.source_labels.names),
                                         cfg.model.name_or_path)
            del model
        else:
            source = load_source_model(self.source_info, cfg.model, len(data.labels))
        source.model.to(accelerator.device)
        self.source = source

        # 2. The source classifier as it is.
        engine = Engine(accelerator, tokenizer, list(data.labels.names), self.run_dir,
                        cfg.training.pad_to_multiple_of)
        if source_engine is not None:
            engine.global_step_offset = source_engine.global_step_offset
        self.before_adaptation(source_engine, engine, source, data)

        # 3. The target model, 4. its stages.
        set_seed(cfg.training.seed)
        model, new_modules = self.target_model(source, data)
        self.new_modules = new_modules
        source.model = None  # what transfers is in `model` now; free the rest
        eval_sets = self.eval_sets(data)
        for phase in self.target_phases(data, source):
            model = unwrap(accelerator, model)
            if phase.tuning is not None:
                model = apply_tuning(model, phase.tuning, new_modules)
                logger.info("Stage %r, tuning %s: %s", phase.stage.name, phase.tuning.method,
                            describe_model(model))
            phase.stage.regularizer = self.regularizer(phase, model)
            model, result = engine.train(phase.stage, model, eval_sets, resume=plan[phase.stage.name])
            results_of_stages.append(result)
        return self._finish(accelerator, engine, model, tokenizer, data, eval_sets,
                            results_of_stages, started, data_seconds)

    def _check_distributed(self, accelerator) -> None:
        """Between phases the model is changed in memory (adapter merged, head replaced) and
        L2-SP reads parameters by name: both need whole, unsharded parameters."""
        sharded = accelerator.distributed_type.value in ("FSDP", "DEEPSPEED", "MEGATRON_LM")
        if sharded and (self.trains_source or self.config.strategy.name == "l2sp"):
            raise ConfigError(
                f"{self.scenario}: training the source stage in the same run, and `l2sp`, are not "
                f"supported under {accelerator.distributed_type.value} (sharded parameters). Train "
                "the source classifier in its own run and pass it as `strategy.source_model`, or "
                "use DDP (`recipes/accelerate/ddp_gpu.yaml`)."
            )

    def regularizer(self, phase: Phase, model):
        """Hook: a penalty for the stage's loss (None: none)."""
        return None

    def pretrained_start(self, data: RunData) -> SourceModel:
        """The target-only baseline's start: the pretrained encoder (``model.name_or_path``, or
        the base model recorded by a given hf_transfer source model) with a fresh head for the
        final labels, standing in for the source classifier."""
        info = self._source_info()
        encoder = self.config.model.name_or_path if info is None else \
            (info.name_or_path if info.kind == "encoder" else info.base_model)
        model_cfg = dataclasses.replace(self.config.model, name_or_path=encoder,
                                        revision=self.config.model.revision if info is None else None)
        model, new_modules = load_classifier_model(model_cfg, list(data.labels.names))
        logger.info("Target-only baseline: starting from the pretrained encoder %s", encoder)
        return SourceModel(model, None, encoder, encoder, new_modules,
                           f"pretrained encoder {encoder} (target-only baseline)")

    def _tokenizer_path(self) -> str:
        info = self._source_info()
        return info.tokenizer if info is not None else self.config.model.name_or_path

    @torch.no_grad()
    def evaluate_as_is(self, engine: Engine, model: torch.nn.Module, sets: dict) -> dict:
        """The eval matrix of an unprepared model (the source classifier as it is)."""
        if not sets:
            return {}
        with engine.accelerator.autocast():
            return engine.evaluate(model, sets, self.config.training.eval_batch_size)

    # --- saving ---------------------------------------------------------------------------------

    def save_model(self, model, tokenizer, data: RunData, state_dict: Optional[dict]) -> None:
        cfg = self.config
        source = self.source
        base = source.loadable_base or source.base_model
        tuning = cfg.tuning.method
        if hasattr(model, "peft_config") and source.loadable_base is None:
            # The adapter's base (the source classifier) exists only in memory: fold it in.
            logger.info("Saving a standalone classifier: the LoRA adapter is merged, because its "
                        "base (the source classifier) is not a model that can be loaded again.")
            model, state_dict = model.merge_and_unload(), None
        save_classifier(model, tokenizer, self.run_dir / "model", data.labels.names, base,
                        cfg.model.max_length, tuning, state_dict=state_dict,
                        text_prefix=cfg.model.text_prefix)

    def source_report(self) -> dict:
        source = self.source
        return {"origin": source.origin, "labels": source.labels, "base_model": source.base_model,
                "trained_in_run": self.trains_source}
