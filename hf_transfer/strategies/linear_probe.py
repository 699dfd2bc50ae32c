"""A reference for few-shot transfer: the encoder, frozen, with its output layer fitted as a
logistic regression on the labelled target examples (:mod:`hf_transfer.probe`). Nothing else
trains, so it shows what the representation alone gives the target: the floor that a
fine-tuned strategy on the same examples should reach. The encoder is the pretrained one in
domain adaptation, the source classifier's in label space and conditional shift (there the
scenario brings the source classifier, and the probe fits the target head on it)."""

from __future__ import annotations

from ..training import Stage
from .base import INDUCTIVE, Needs, Strategy
from .registry import register_strategy


@register_strategy
class LinearProbe(Strategy):
    name = "linear_probe"
    scenarios = ("domain_adaptation", "label_space", "conditional_shift")
    family = INDUCTIVE
    summary = "the frozen pretrained encoder, its output layer fitted on the labelled target examples"
    # A reference, not a step of a composition: its stage replaces the plan. The probe writes
    # the head's weights in place: unsharded parameters.
    needs = Needs(target_labels=True, fits_head=True, unsharded=True, replaces_plan=True,
                  tuning_methods=("frozen",), tuning_reason="fits the output layer alone on the frozen encoder")

    def plan(self, ctx, stages) -> list[Stage]:
        cfg = self.config.training
        # 0 epochs: the fit is the whole stage (the engine ignores `training.max_steps` here).
        return [Stage(name="probe", train=ctx.data.target["train"], training=cfg,
                      learning_rate=cfg.learning_rate_for("frozen"), num_epochs=0,
                      select_on="target/validation", fit_head=True, label_roles=("target",))]
