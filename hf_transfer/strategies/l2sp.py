"""Conditional shift: ``finetune`` with the L2-SP penalty alpha/2 * ||w - w_source||^2 (Li et
al., ICML 2018; ``strategy.l2sp_alpha``) on the encoder weights that train, pulling them back
toward the source classifier's: with LoRA the penalty is on the adapter's weight change
B·A·scale. The head is not pulled. The training loss in ``history`` includes the penalty."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

from ..config import setting
from ..errors import ConfigError
from ..tuning import head_modules
from .base import Needs
from .finetune import Finetune
from .registry import TargetStageOptions, register_strategy


class L2SP:
    """The L2-SP penalty (Li, Grandvalet & Davoine, ICML 2018): alpha/2 * ||w - w_source||^2
    summed over the encoder weights that train, with ``w_source`` their values at the start
    of adaptation (the source classifier's). Head modules and modules the source lacked are
    not pulled (Li et al. leave new layers to ordinary weight decay).

    With LoRA the encoder's weights are ``W_source + delta`` where ``delta`` is the adapter's
    ``B @ A * scale``: the penalty is then exactly alpha/2 * sum ||delta||^2 (``delta`` is 0
    at the start). Call it with the (unwrapped) model: ``penalty = l2sp(model)``.
    """

    def __init__(self, model: torch.nn.Module, alpha: float, exclude: list[str]):
        self.alpha = float(alpha)
        self.lora = hasattr(model, "peft_config")
        inner = model.get_base_model() if self.lora else model
        skip = tuple(exclude)

        def excluded(name: str) -> bool:
            return any(name == m or name.startswith(m + ".") for m in skip)

        if self.lora:
            from peft.tuners.lora import LoraLayer

            self.layers = [(name, module) for name, module in inner.named_modules()
                           if isinstance(module, LoraLayer) and not excluded(name)]
            self.reference = {}
        else:
            self.reference = {name: p.detach().clone() for name, p in inner.named_parameters()
                              if p.requires_grad and not excluded(name)}
            self.layers = []
        if not self.reference and not self.layers:
            raise ConfigError("`l2sp`: no encoder weight trains with this tuning method, so there is "
                              "nothing to pull toward the source; use `full`, `top_k` or `lora`.")

    def __call__(self, model: torch.nn.Module) -> torch.Tensor:
        inner = model.get_base_model() if self.lora else model
        if self.lora:
            total = sum(module.get_delta_weight(adapter).float().pow(2).sum()
                        for _, module in self.layers for adapter in module.active_adapters
                        if adapter in module.lora_A)
        else:
            params = dict(inner.named_parameters())
            total = 0.0
            for name, ref in self.reference.items():
                p = params[name]
                if ref.device != p.device:
                    ref = self.reference[name] = ref.to(p.device)
                total = total + (p.float() - ref.float()).pow(2).sum()
        return 0.5 * self.alpha * total

    @property
    def num_weights(self) -> int:
        if self.lora:
            return sum(m.get_base_layer().weight.numel() for _, m in self.layers)
        return sum(r.numel() for r in self.reference.values())


@dataclass
class L2spOptions(TargetStageOptions):
    l2sp_alpha: float = setting(
        0.1, "`l2sp`: strength alpha of the penalty alpha/2 * ||w - w_source||^2 on the encoder "
        "weights that train (Li et al. 2018 use 0.1)."
    )

    def problems(self, path: str) -> list[str]:
        out = super().problems(path)
        if self.l2sp_alpha < 0:
            out.append(f"`{path}.l2sp_alpha` is {self.l2sp_alpha}: use a value of at least 0.")
        return out


@register_strategy
class L2sp(Finetune):
    name = "l2sp"
    summary = "`finetune` with a penalty pulling the weights toward the source classifier's"
    options_class = L2spOptions
    # Reads parameters by name: unsharded.
    needs = Needs(target_labels=True, unsharded=True, tuning_methods=("full", "lora", "top_k"),
                  tuning_reason="pulls trained encoder weights back, and with `frozen` there is nothing to "
                                "pull toward the source")

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.penalty: Optional[L2SP] = None

    def problems(self) -> list[str]:
        out = super().problems()
        if self.options.l2sp_alpha <= 0:
            out.append("`strategy.l2sp_alpha` is 0: `l2sp` needs a positive strength (e.g. 0.1); "
                       "use `finetune` for no penalty.")
        return out

    def enter_stage(self, ctx, stage, model):
        if "target" not in stage.label_roles:
            return stage, model
        inner = model.get_base_model() if hasattr(model, "peft_config") else model
        exclude = sorted(set(head_modules(inner)) | set(ctx.new_modules()))
        self.penalty = L2SP(model, self.options.l2sp_alpha, exclude)
        return dataclasses.replace(stage, regularizer=self.penalty), model

    def results(self) -> dict:
        return {"l2sp": {"alpha": self.options.l2sp_alpha, "weights_pulled": self.penalty.num_weights,
                         "on": "lora_delta" if self.penalty.lora else "parameters"}}
