"""The base of the scenarios that start from a source *classifier* and adapt it (label space,
conditional shift).

``strategy.source_model`` names the source classifier: a folder saved by hf_transfer (a full
model, or a LoRA adapter, merged into its base first), or any transformers sequence
classifier (Hub id or folder). When it is null, the run first trains one: stage ``source``
on ``data.source``, from ``model.name_or_path`` with ``tuning.method`` (as the
domain-adaptation recipe does); a LoRA adapter is then merged, so the target stages always
start from a plain classifier whose encoder carries what the source training learned.

:meth:`SourceTransferRecipe.start_model`: the source classifier (trained here, or loaded) ->
evaluated as it is (:meth:`before_adaptation`) -> the target model (:meth:`target_model`).
The strategy's stages then train it, each with the tuning method the strategy gives it.

The saved model: with LoRA, an adapter when its base can be loaded again (a Hub id or a
folder: ``strategy.source_model`` when it is a full model), else the adapter is merged and a
standalone classifier is saved (its logits equal the adapter's up to float rounding).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Optional

import datasets
import torch
from accelerate.utils import set_seed

from ..config import ModelConfig
from ..data.labels import LabelSpace
from ..data.loading import load_splits, load_splits_with_rest, split_sizes
from ..data.tokenize import tokenize
from ..training import Engine, Stage, unwrap
from ..errors import ConfigError, DataError
from ..modeling import describe_model, load_classifier_model
from ..run.pipeline import TARGET_ONLY, Recipe, RunData
from ..saving import standalone_classifier
from ..source_model import SourceInfo, SourceModel, describe_source, load_source_model, source_from_trained
from ..tuning import apply_tuning

logger = logging.getLogger("hf_transfer")


class SourceTransferRecipe(Recipe):
    """Base of :class:`LabelSpaceRecipe` and :class:`ConditionalShiftRecipe`."""

    # The source classifier cannot predict the target's labels (label space), or is already
    # reported as it is (`no_adaptation`, conditional shift): only target_only is a nested run.
    baseline_choices = (TARGET_ONLY,)

    def __init__(self, config, arm=None):
        self.source_info: Optional[SourceInfo] = None
        self.source_labels: Optional[LabelSpace] = None  # the source classifier's labels
        self.source: Optional[SourceModel] = None  # the source classifier (its model freed once used)
        self.new_modules: list[str] = []  # modules of the target model the source lacked
        super().__init__(config, arm)

    # --- configuration ----------------------------------------------------------------------

    def config_problems(self) -> list[str]:
        s = self.config.strategy
        if s.source_model is None and not s.evaluate_source:
            return ["`strategy.evaluate_source` is false but `strategy.source_model` is not set: "
                    "the source stage trains and selects on `data.source`. Name a source "
                    "classifier, or set `evaluate_source` true."]
        return []

    def chain_of_arm(self, transfer):
        # The target-only baseline runs the strategies' own stages, from the pretrained encoder.
        return transfer

    def base_stages(self, data: RunData) -> list[Stage]:
        return []  # the scenario brings the source classifier itself (start_model)

    @property
    def trains_source(self) -> bool:
        return self.config.strategy.source_model is None

    def scenario_stage_names(self) -> list[str]:
        return ["source"] if self.trains_source and self.arm != TARGET_ONLY else []

    def needs_unsharded(self, stages) -> bool:
        # Between stages the source classifier's adapter is merged and its head replaced.
        return self.trains_source or super().needs_unsharded(stages)

    def _source_info(self) -> Optional[SourceInfo]:
        if self.source_info is None and not self.trains_source:
            self.source_info = describe_source(self.config.strategy.source_model, self.config.model)
            info = self.source_info
            if info.text_prefix is not None and info.text_prefix != self.config.model.text_prefix:
                logger.warning("The source model was trained with text_prefix %r; this run uses %r "
                               "(`model.text_prefix`).", info.text_prefix, self.config.model.text_prefix)
        return self.source_info

    def architecture(self) -> ModelConfig:
        cfg = self.config.model
        info = self._source_info()
        if info is None:
            return cfg
        return dataclasses.replace(cfg, name_or_path=info.architecture, revision=None)

    def tokenizer_config(self) -> ModelConfig:
        info = self._source_info()
        path = info.tokenizer if info is not None else self.config.model.name_or_path
        return dataclasses.replace(self.architecture(), name_or_path=path)

    # --- data ---------------------------------------------------------------------------------

    def needs_source_data(self) -> bool:
        """Load data.source: to train the source stage, or to evaluate the source task."""
        if self.trains_source:
            return True
        return self.config.strategy.evaluate_source and self._source_info().labels is not None

    def load_data(self) -> RunData:
        cfg = self.config
        seed = cfg.training.seed
        info = self._source_info()
        if TARGET_ONLY in cfg.strategy.baselines and info is not None and info.kind == "classifier":
            raise ConfigError(
                f"`strategy.baselines` has `target_only`, but `strategy.source_model` "
                f"{info.name_or_path!r} is a transformers classifier whose pretrained encoder is not "
                "recorded: the baseline would not know where to start. Pass a model folder saved by "
                "hf_transfer (it records its base model), or set `source_model` null to train the "
                "source in the run."
            )
        source = load_splits(cfg.data.source, seed, "source") if self.needs_source_data() \
            else datasets.DatasetDict()
        target, not_sampled = load_splits_with_rest(cfg.data.target, seed, "target")
        source, target = self.align_labels(source, target)
        self.source_labels, labels = self.label_spaces(source, target, info)
        self.check_label_spaces(self.source_labels, labels)
        return self.with_text_roles(RunData(source, target, labels, split_sizes(source=source, target=target)),
                                    not_sampled)

    def label_spaces(self, source, target, info: Optional[SourceInfo]) -> tuple[Optional[LabelSpace], LabelSpace]:
        """(source classifier's labels or None, the final model's labels)."""
        raise NotImplementedError

    def check_label_spaces(self, source: Optional[LabelSpace], target: LabelSpace) -> None:
        """More label checks, before any weights load."""

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

    def tokenize(self, raw: RunData, tokenizer) -> RunData:
        m = self.config.model

        def prepare(dd: datasets.DatasetDict, space: LabelSpace) -> datasets.DatasetDict:
            if not len(dd):
                return dd
            return tokenize(space.encode(dd), tokenizer, m.max_length, m.text_prefix)

        source_space = self.source_labels if self.source_labels is not None else raw.labels
        data = RunData(prepare(raw.source, source_space), prepare(raw.target, raw.labels), raw.labels, raw.sizes)
        return self.with_tokenized_text(raw, data, tokenizer)

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
        """The model the strategy's stages train and its modules the source lacked."""
        raise NotImplementedError

    def before_adaptation(self, engine_source: Optional[Engine], engine_target: Engine,
                          source: SourceModel, data: RunData) -> None:
        """Evaluate the source classifier as it is (results go into extra_results)."""

    # --- the start model: the source classifier, then the target model ------------------------

    def start_model(self, engine: Engine, data: RunData, plan: dict, start_from: Optional[str] = None):
        cfg, accelerator = self.config, engine.accelerator
        results = []
        source_engine = None
        if self.source_labels is not None and self.source_eval_sets(data):
            source_engine = Engine(accelerator, engine.tokenizer, list(self.source_labels.names),
                                   self.layout.checkpoints, cfg.training.pad_to_multiple_of)
        set_seed(cfg.training.seed)
        if self.arm == TARGET_ONLY:
            source = self.pretrained_start(data)
        elif self.trains_source:
            model, new_modules = load_classifier_model(cfg.model, list(self.source_labels.names))
            model = apply_tuning(model, cfg.tuning, new_modules)
            logger.info("Source stage: model %s, tuning %s: %s", cfg.model.name_or_path,
                        cfg.tuning.method, describe_model(model))
            model, result = source_engine.train(self.source_stage(data), model,
                                                self.source_stage_eval_sets(data), resume=plan["source"])
            results.append(result)
            source = source_from_trained(unwrap(accelerator, model), list(self.source_labels.names),
                                         cfg.model.name_or_path)
            del model
        else:
            source = load_source_model(self.source_info, cfg.model, len(data.labels))
        source.model.to(accelerator.device)
        self.source = source
        if source_engine is not None:  # tracker steps keep increasing across stages
            engine.global_step_offset = source_engine.global_step_offset
        self.before_adaptation(source_engine, engine, source, data)
        set_seed(cfg.training.seed)
        model, self.new_modules = self.target_model(source, data)
        source.model = None  # what transfers is in `model` now; free the rest
        return model, results

    def enter_stage(self, engine: Engine, stage: Stage, model: torch.nn.Module) -> torch.nn.Module:
        """The model unwrapped from the previous stage, tuned as the strategy says."""
        model = unwrap(engine.accelerator, model)
        tuning = self.config.tuning
        model = apply_tuning(model, tuning, self.new_modules)
        logger.info("Stage %r, tuning %s: %s", stage.name, tuning.method, describe_model(model))
        return model

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

    @torch.no_grad()
    def evaluate_as_is(self, engine: Engine, model: torch.nn.Module, sets: dict) -> dict:
        """The eval matrix of an unprepared model (the source classifier as it is)."""
        if not sets:
            return {}
        with engine.accelerator.autocast():
            return engine.evaluate(model, sets, self.config.training.eval_batch_size)

    # --- saving ---------------------------------------------------------------------------------

    def saved_base(self, model, state_dict: Optional[dict]):
        source = self.source if self.chosen_run is None else self.chosen_run.source  # `auto`: the kept run's
        if hasattr(model, "peft_config") and source.loadable_base is None:
            model, state_dict = standalone_classifier(
                model, "its base (the source classifier) is not a model that can be loaded again"), None
        return model, state_dict, source.loadable_base or source.base_model

    def source_report(self) -> dict:
        source = self.source
        return {"origin": source.origin, "labels": source.labels, "base_model": source.base_model,
                "trained_in_run": self.trains_source}
