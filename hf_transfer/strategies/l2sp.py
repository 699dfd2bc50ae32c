"""Conditional shift: ``finetune`` with the L2-SP penalty alpha/2 * ||w - w_source||^2 (Li et
al., ICML 2018; ``strategy.l2sp_alpha``) on the encoder weights that train, pulling them back
toward the source classifier's: with LoRA the penalty is on the adapter's weight change
B·A·scale. The head is not pulled. The training loss in ``history`` includes the penalty."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import setting
from ..source_model import L2SP
from ..tuning import head_modules
from .finetune import Finetune
from .registry import StrategyOptions, register_strategy


@dataclass
class L2spOptions(StrategyOptions):
    l2sp_alpha: float = setting(
        0.1, "`l2sp`: strength alpha of the penalty alpha/2 * ||w - w_source||^2 on the encoder "
        "weights that train (Li et al. 2018 use 0.1)."
    )

    def problems(self, path: str) -> list[str]:
        if self.l2sp_alpha < 0:
            return [f"`{path}.l2sp_alpha` is {self.l2sp_alpha}: use a value of at least 0."]
        return []


@register_strategy
class L2sp(Finetune):
    name = "l2sp"
    summary = "`finetune` with a penalty pulling the weights toward the source classifier's"
    options_class = L2spOptions
    needs_unsharded = True  # reads parameters by name

    def __init__(self, recipe):
        super().__init__(recipe)
        self.penalty: Optional[L2SP] = None

    def problems(self) -> list[str]:
        out = []
        if self.options.l2sp_alpha <= 0:
            out.append("`strategy.l2sp_alpha` is 0: `l2sp` needs a positive strength (e.g. 0.1); "
                       "use `finetune` for no penalty.")
        if self.config.tuning.method == "frozen":
            out.append("`strategy.name` is `l2sp` but `tuning.method` is `frozen`: no encoder weight "
                       "trains, so there is nothing to pull toward the source; use full, lora or top_k.")
        return out

    def before_stage(self, stage, model):
        inner = model.get_base_model() if hasattr(model, "peft_config") else model
        exclude = sorted(set(head_modules(inner)) | set(self.recipe.new_modules))
        self.penalty = L2SP(model, self.options.l2sp_alpha, exclude)
        stage.regularizer = self.penalty
        return model

    def results(self) -> dict:
        return {"l2sp": {"alpha": self.options.l2sp_alpha, "weights_pulled": self.penalty.num_weights,
                         "on": "lora_delta" if self.penalty.lora else "parameters"}}
