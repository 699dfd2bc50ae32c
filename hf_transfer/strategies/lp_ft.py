"""Linear probe, then fine-tune (Kumar et al., ICLR 2022): the new head is first fitted as a
logistic regression on the frozen representation of the target training rows (solved to
convergence, :mod:`hf_transfer.probe`), then the target stage fine-tunes with
``tuning.method``. Starting the fine-tuning from a fitted head keeps the early, large gradients
of a random head from distorting the pretrained features; the fitted probe is evaluated as the
stage's step 0, so the stage never ends below it on the target validation split."""

from __future__ import annotations

import dataclasses

from ..training import Stage
from .base import Needs
from .new_head import NewHead
from .registry import register_strategy


@register_strategy
class LpFt(NewHead):
    name = "lp_ft"
    summary = "linear probe fitted on the frozen encoder, then fine-tune (Kumar et al. 2022)"
    # The probe writes the head's weights in place: unsharded parameters.
    needs = Needs(target_labels=True, fits_head=True, unsharded=True, tuning_methods=("full", "lora", "top_k"),
                  tuning_reason="needs a method for its fine-tuning stage (the probe already fits the head alone)")

    def plan(self, ctx, stages) -> list[Stage]:
        return stages + [dataclasses.replace(ctx.target_stage(ctx.data, self.options), fit_head=True)]
