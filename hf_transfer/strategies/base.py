"""What a strategy is: one way to transfer, a class with its own options, registered by name.

A run holds a *chain* of strategies (`strategy.name: [tapt, sequential]`, or one name) and
gives each hook a :class:`RunContext` — the data roles, the engine, the run folder's layout,
factories for stages and for nested runs — never the recipe. Models are the run's to build: a
stage says what it starts from (``Stage.start_from``, ``Stage.builds_model``). Each hook has a default, so a strategy
overrides only what it changes; hooks return new values rather than change shared ones::

    needs                                  what it reads and requires (one declaration)
    problems()                             its own rules about the configuration (nothing loaded)
    check(ctx, meta_model)                 architecture checks (no weights loaded yet)
    tokenize(ctx, tokenizer)               tokenizer-dependent state (e.g. the masking collator)
    plan(ctx, stages) -> stages            the stage plan so far, with this strategy's part added
    enter_stage(ctx, stage, model)         -> (stage, model): e.g. wrap the model, new training rows
    leave_stage(ctx, stage, model, result) -> model: e.g. unwrap it, save an adapted encoder
    choose(ctx)                            only for `needs.runs_candidates` (`auto`)
    results()                              its own section(s) of results.json
    model_to_save(ctx, model, state_dict)  e.g. merge an adapter whose base exists only in this run

The plan starts as the scenario's base (domain adaptation, cross-lingual: the source stage;
label space, conditional shift: nothing, the scenario brings the source classifier itself) and
each strategy of the chain, in order, adds its part: `tapt` a masked-LM stage in front,
`sequential` a target stage at the end, `dann` its loss on the stages that train on source
labels, `self_training` rounds at the end. Every stage of the plan runs on one model.

A new strategy is one file: a subclass with ``name``, ``scenarios``, ``family``, ``summary``
(and an ``options_class`` when it has settings, ``needs`` when it reads more than the labelled
source), decorated with :func:`register_strategy`, imported by ``hf_transfer/strategies/__init__.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

import torch

from ..data.roles import RunData
from ..training import Engine, Stage, StageResult
from .registry import StrategyOptions

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..layout import RunLayout

# The lecture's strategy families, by what the strategy reads of the target.
INDUCTIVE = "inductive"  # labelled target data
TRANSDUCTIVE = "transductive"  # labelled source, unlabelled target text
UNSUPERVISED = "unsupervised"  # unlabelled text only
SOURCE_ONLY = "none"  # nothing of the target: what transfer alone gives (a baseline)
FAMILIES = (INDUCTIVE, TRANSDUCTIVE, UNSUPERVISED, SOURCE_ONLY)

# Baseline arms of the transfer comparison (nested runs): defined once, here.
TARGET_ONLY_ARM, SOURCE_ONLY_ARM = "target_only", "source_only"


@dataclass(frozen=True)
class Needs:
    """What a strategy reads and requires. The run combines the chain's declarations
    (:meth:`combine`) once, and reads only that."""

    target_labels: bool = False  # trains on labelled target examples
    target_text: bool = False  # learns from the target's unlabelled text (role `target_text`)
    corpus: bool = False  # pretrains on the unlabelled corpus `data.unlabeled` (role `corpus`)
    unsharded: bool = False  # changes or wraps the model in memory: FSDP/DeepSpeed cannot run it
    fits_head: bool = False  # its target stage fits the new head as a linear probe first
    source_labels_only: bool = False  # trains on the labelled source alone: a `source_only` baseline repeats it
    stage_loss: bool = False  # replaces the loss of the stages that train on source labels (one per chain)
    adapts_encoder: bool = False  # adds a stage in front that adapts the encoder (one per chain)
    replaces_plan: bool = False  # its stages replace the whole plan (a reference, `linear_probe`)
    runs_candidates: bool = False  # trains nothing itself: runs other strategies and keeps one (`auto`)
    tuning_methods: Optional[tuple[str, ...]] = None  # the tuning methods it works with (None: any)
    tuning_reason: str = ""  # why, for the refusal's message

    @classmethod
    def combine(cls, needs: list["Needs"]) -> "Needs":
        """The chain's needs: a flag is on when any strategy's is; tuning methods intersect."""
        flags = {f.name: any(getattr(n, f.name) for n in needs) for f in dataclasses.fields(cls)
                 if f.type in (bool, "bool")}
        methods = [n.tuning_methods for n in needs if n.tuning_methods is not None]
        allowed = tuple(m for m in methods[0] if all(m in other for other in methods)) if methods else None
        return cls(**flags, tuning_methods=allowed,
                   tuning_reason="; ".join(n.tuning_reason for n in needs if n.tuning_reason))


@dataclass
class RunContext:
    """What a strategy's hooks receive. ``data`` holds the raw splits in :meth:`Strategy.check`
    and the tokenized ones from then on; ``engine`` and ``eval_sets`` are set once training
    starts. The factories are the scenario's."""

    config: "RunConfig"
    layout: "RunLayout"
    data: RunData
    needs: Needs
    # The scenario's stage factories: train on the labelled source; on the labelled target
    # examples, with the budget of a strategy's target-stage settings (TargetStageOptions).
    source_stage: Callable[[RunData], Stage]
    target_stage: Callable[[RunData, StrategyOptions], Stage]
    # Modules of the model being trained that its checkpoint lacked (e.g. a new head).
    new_modules: Callable[[], list[str]]
    # A nested run of this scenario (not started): ``candidate(strategy, arm=None)``.
    candidate: Callable[..., Any]
    strategy_names: tuple[str, ...] = ()
    engine: Optional[Engine] = None
    eval_sets: dict = field(default_factory=dict)

    @property
    def learning_rate(self) -> float:
        return self.config.training.learning_rate_for(self.config.tuning.method)


class Strategy:
    name: ClassVar[str] = ""
    scenarios: ClassVar[tuple[str, ...]] = ()
    family: ClassVar[str] = INDUCTIVE
    summary: ClassVar[str] = ""
    options_class: ClassVar[type] = StrategyOptions
    needs: ClassVar[Needs] = Needs()

    def __init__(self, config: "RunConfig", options: Optional[StrategyOptions] = None):
        self.config = config
        self.options = options if options is not None else self.options_class()

    # --- before anything loads ---------------------------------------------------------------

    def problems(self) -> list[str]:
        """Its own rules about the configuration (each names the field and the fix). Overrides
        extend ``super().problems()``."""
        method, allowed = self.config.tuning.method, self.needs.tuning_methods
        if allowed is not None and method not in allowed:
            return [f"`tuning.method` is {method!r}, but `{self.name}` {self.needs.tuning_reason}: choose "
                    f"{', '.join(allowed)}."]
        return []

    def check(self, ctx: RunContext, meta_model: torch.nn.Module) -> None:
        """Checks that need the data or the architecture (``meta_model``: the classifier on the
        meta device), before any weights load."""

    def tokenize(self, ctx: RunContext, tokenizer) -> None:
        """State that needs the tokenizer (the data roles are tokenized by the run)."""

    # --- training ----------------------------------------------------------------------------

    def plan(self, ctx: RunContext, stages: list[Stage]) -> list[Stage]:
        """The plan with this strategy's part: by default it adds nothing."""
        return stages

    def enter_stage(self, ctx: RunContext, stage: Stage, model) -> tuple[Stage, Any]:
        """The stage and model as ``stage`` trains them (``model`` is None before a stage that
        builds its own, ``Stage.builds_model``)."""
        return stage, model

    def leave_stage(self, ctx: RunContext, stage: Stage, model, result: StageResult):
        """The model after ``stage`` (None: the next stage starts a new classifier);
        ``result``: what the stage reported."""
        return model

    def choose(self, ctx: RunContext):
        """``needs.runs_candidates`` only: ``(classifier, stage results, run)`` of the chosen run
        (a finished nested run of the scenario: its own report is the scenario's)."""
        raise NotImplementedError

    # --- outputs -----------------------------------------------------------------------------

    def results(self) -> dict:
        return {}

    def model_to_save(self, ctx: RunContext, model: torch.nn.Module, state_dict: Optional[dict]):
        return model, state_dict


def source_labelled(stage: Stage) -> bool:
    """Whether ``stage`` trains a classifier on the source's labels (alone or with others)."""
    return "source" in stage.label_roles
