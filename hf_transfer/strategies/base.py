"""What a strategy is: one way to transfer, a class with its own options, registered by name.

A run (:class:`hf_transfer.run.pipeline.Recipe`, one subclass per scenario) calls a strategy's
hooks in this order; each has a default, so a strategy overrides only what it changes::

    problems()                      its own rules about the configuration (before anything loads)
    load_data(raw, meta_model)      extra data it needs, architecture checks (main process first)
    tokenize(tokenizer)             tokenize that extra data
    stages(data)                    the training stages it runs, in order
    train(engine, stages, ...)      run them: start model, before_stage() each, engine.train()
      before_stage(stage, model)      wrap the model or add a penalty for one stage
    final_model(model)              the classifier to evaluate and save (e.g. without a wrapper)
    results()                       its own section(s) of results.json
    model_to_save(model, sd)        e.g. merge an adapter whose base exists only in this run

A new strategy is one file: a subclass with ``name``, ``scenarios``, ``family``, ``summary``
(and an ``options_class`` when it has settings), decorated with :func:`register_strategy`,
imported by ``hf_transfer/strategies/__init__.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Optional

import torch

from ..config import TuningConfig
from ..training import Engine, Stage, StageResult
from .registry import StrategyOptions

if TYPE_CHECKING:  # the run imports the strategies, not the other way round
    from ..run.pipeline import Recipe, RunData

# The lecture's strategy families, by what the strategy reads of the target.
INDUCTIVE = "inductive"  # labelled target data
TRANSDUCTIVE = "transductive"  # labelled source, unlabelled target text
UNSUPERVISED = "unsupervised"  # unlabelled text only
SOURCE_ONLY = "none"  # nothing of the target: what transfer alone gives (a baseline)
FAMILIES = (INDUCTIVE, TRANSDUCTIVE, UNSUPERVISED, SOURCE_ONLY)


class Strategy:
    name: ClassVar[str] = ""
    scenarios: ClassVar[tuple[str, ...]] = ()
    family: ClassVar[str] = INDUCTIVE
    summary: ClassVar[str] = ""
    options_class: ClassVar[type] = StrategyOptions
    # Trains on the labelled source alone: a `source_only` baseline would repeat it.
    source_only: ClassVar[bool] = False
    # Pretrains on the unlabelled corpus `data.unlabeled` (which no other strategy reads).
    uses_unlabeled_corpus: ClassVar[bool] = False
    # Fits its target stage's new head as a linear probe first (LP-FT): the target-only
    # baseline of the comparison does the same, from the pretrained encoder.
    fits_head: ClassVar[bool] = False
    # Changes or wraps the model in memory between stages: needs unsharded parameters.
    needs_unsharded: ClassVar[bool] = False
    # Trains nothing itself: it runs other strategies as runs of their own and keeps one
    # (`auto`); they apply `strategy.label_shift` themselves.
    runs_candidates: ClassVar[bool] = False
    # The tuning methods it can work with (None: any), and why, for the refusal's message.
    tuning_methods: ClassVar[Optional[tuple[str, ...]]] = None
    tuning_reason: ClassVar[str] = ""

    def __init__(self, recipe: "Recipe"):
        self.recipe = recipe
        self.config = recipe.config
        self.options = recipe.config.strategy.options

    # --- before anything loads ---------------------------------------------------------------

    def problems(self) -> list[str]:
        """Its own rules about the configuration (each names the field and the fix). Overrides
        extend ``super().problems()``."""
        out = []
        method = self.config.tuning.method
        if self.tuning_methods is not None and method not in self.tuning_methods:
            out.append(f"`tuning.method` is {method!r}, but `{self.name}` {self.tuning_reason}: choose "
                       f"{', '.join(self.tuning_methods)}.")
        return out

    # --- data --------------------------------------------------------------------------------

    def load_data(self, raw: "RunData", meta_model: torch.nn.Module) -> None:
        """Load what else the strategy reads; ``meta_model``: the classifier's architecture on
        the meta device, for checks before any weights load."""

    def tokenize(self, tokenizer) -> None:
        """Tokenize what :meth:`load_data` loaded."""

    # --- training ----------------------------------------------------------------------------

    def stages(self, data: "RunData") -> list[Stage]:
        raise NotImplementedError

    def train(self, engine: Engine, stages: list[Stage], plan: dict, eval_sets: dict,
              data: "RunData") -> tuple[torch.nn.Module, list[StageResult]]:
        """Run ``stages`` in order on the scenario's start model; returns the trained model
        and each stage's result (those of the scenario's own stages first)."""
        model, results = self.recipe.start_model(engine, data, plan)
        for stage in stages:
            model = self.before_stage(stage, self.recipe.enter_stage(engine, stage, model))
            model, result = engine.train(stage, model, eval_sets, resume=plan[stage.name])
            results.append(result)
        return self.final_model(engine, model), results

    def before_stage(self, stage: Stage, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def tuning_for(self, stage: Stage) -> TuningConfig:
        """Which parameters ``stage`` trains. Default: `tuning`, as the start model was built."""
        return self.config.tuning

    def final_model(self, engine: Engine, model: torch.nn.Module) -> torch.nn.Module:
        return model

    # --- outputs -----------------------------------------------------------------------------

    def results(self) -> dict:
        return {}

    def model_to_save(self, model: torch.nn.Module, state_dict: Optional[dict]):
        return model, state_dict
