"""Shared by the strategies that learn from the target's text without its labels (`tapt`,
`dann`, `coral`, `self_training`): they read the run's ``target_text`` role
(:mod:`hf_transfer.data.roles`: ``data.target_unlabeled``, the target rows `k_shot` left out,
or the target's training split), which holds the ``text`` column only — a target label can not
reach a loss by accident. And the stage shape of `dann` and `coral`, which read that text
alongside the stages that train on source labels."""

from __future__ import annotations

import dataclasses

from torch import nn

from ..training import Stage, unwrap
from .base import TRANSDUCTIVE, Needs, Strategy, source_labelled
from .features import classifier_head


class UnlabeledTargetStrategy(Strategy):
    family = TRANSDUCTIVE
    needs = Needs(target_text=True, unsharded=True)  # the model is swapped or wrapped between stages


class TargetTextAlongside(UnlabeledTargetStrategy):
    """The stages that train on source labels read a batch of the target's text alongside each
    micro-batch (cycled, reshuffled, sharded under DDP). During such a stage the classifier is
    wrapped (:meth:`wrap`) in a module that computes the whole loss in one forward pass — so DDP,
    the optimizer and the checkpoints see all of it — and whose ``classifier`` is what the next
    stage trains and the run evaluates and saves. Both act on the representation the
    classifier's head reads. Two such strategies cannot share a chain: each replaces the loss."""

    needs = Needs(target_text=True, unsharded=True, stage_loss=True)

    def wrap(self, classifier: nn.Module) -> nn.Module:
        """The module trained in the stage; its ``classifier`` attribute is ``classifier``."""
        raise NotImplementedError

    def step_loss(self):
        """The stage's ``loss_fn(model, batch, target_batch, progress)``."""
        raise NotImplementedError

    def settings_report(self) -> dict:
        """The strategy's settings as results.json reports them."""
        return {}

    def after_stage(self, ctx, wrapper: nn.Module) -> None:
        """Measure what the stage did (``wrapper``: unwrapped), before the wrapper is dropped."""

    def check(self, ctx, meta_model) -> None:
        classifier_head(meta_model, self.name)  # before any weights load

    def plan(self, ctx, stages: list[Stage]) -> list[Stage]:
        self.target_texts = len(ctx.data.target_text["train"])
        return [dataclasses.replace(stage, aux=ctx.data.target_text["train"], loss_fn=self.step_loss())
                if source_labelled(stage) else stage for stage in stages]

    def enter_stage(self, ctx, stage: Stage, model):
        return stage, (self.wrap(model) if stage.aux is not None and source_labelled(stage) else model)

    def leave_stage(self, ctx, stage: Stage, model, result):
        if stage.aux is None or not source_labelled(stage):
            return model
        wrapper = unwrap(ctx.engine.accelerator, model)
        self.after_stage(ctx, wrapper)
        return wrapper.classifier  # the rest of the wrapper stays behind

    def results(self) -> dict:
        return {self.name: {**self.settings_report(), "target_texts": self.target_texts,
                            "features": "input of the classifier's head"}}
