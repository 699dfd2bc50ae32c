"""Linear probe, then fine-tune (Kumar et al., ICLR 2022): stage ``probe`` trains only the new
head (the ``frozen`` method), then stage ``target`` trains with ``tuning.method``. Starting the
fine-tuning from a fitted head keeps the early, large gradients of a random head from
distorting the pretrained features."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..config import TuningConfig, setting
from ..training import Stage
from .new_head import NewHead
from .registry import StrategyOptions, register_strategy


@dataclass
class LpFtOptions(StrategyOptions):
    probe_num_epochs: float = setting(
        5, "`lp_ft`: epochs of the linear probe (only the new head trains) before fine-tuning."
    )
    probe_learning_rate: Optional[float] = setting(
        None, "`lp_ft`: learning rate of the linear probe; null uses `training.learning_rates.frozen`."
    )

    def problems(self, path: str) -> list[str]:
        out = []
        if self.probe_num_epochs <= 0:
            out.append(f"`{path}.probe_num_epochs` must be positive.")
        if self.probe_learning_rate is not None and self.probe_learning_rate <= 0:
            out.append(f"`{path}.probe_learning_rate` must be positive or null.")
        return out


@register_strategy
class LpFt(NewHead):
    name = "lp_ft"
    summary = "linear probe (head only), then fine-tune (Kumar et al. 2022)"
    options_class = LpFtOptions
    tuning_methods = ("full", "lora", "top_k")
    tuning_reason = "needs a method for its fine-tuning stage (the probe already trains the head alone)"

    def stages(self, data) -> list[Stage]:
        cfg, o = self.config, self.options
        probe = Stage(name="probe", train=data.target["train"], training=cfg.training,
                      learning_rate=o.probe_learning_rate or cfg.training.learning_rates.frozen,
                      num_epochs=o.probe_num_epochs, select_on="target/validation")
        return [probe, *super().stages(data)]

    def tuning_for(self, stage: Stage) -> TuningConfig:
        if stage.name == "probe":
            return dataclasses.replace(self.config.tuning, method="frozen")
        return super().tuning_for(stage)
