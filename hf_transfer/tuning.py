"""Choose which parameters train: ``apply_tuning(model, cfg, new_modules)``.

========  ===========================================================================
method    what trains
========  ===========================================================================
full      every parameter
lora      LoRA adapters on the attention projections + the head (and any module the
          checkpoint lacked, e.g. a pooler), all saved with the adapter
frozen    only the head (and modules the checkpoint lacked): a linear probe
top_k     the last ``top_k_layers`` encoder layers, the pooler and the head
========  ===========================================================================
"""

from __future__ import annotations

import torch
from peft import LoraConfig, TaskType, get_peft_model
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

from .config import TuningConfig
from .errors import ConfigError
from .modeling import peft_deprecation_silenced

# Attention projections LoRA wraps by default, per architecture (PEFT's own table lacks some).
LORA_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "mpnet": ["q", "v"],
    "deberta-v2": ["query_proj", "value_proj"],
    "modernbert": ["Wqkv"],  # one fused query/key/value projection
}


# `tuning.lora_target_modules: [all-linear]`: PEFT wraps every linear layer but the output head.
ALL_LINEAR = "all-linear"


def lora_targets(model_type: str, cfg: TuningConfig):
    """The module names LoRA wraps, or PEFT's ``"all-linear"``."""
    if cfg.lora_target_modules:
        if list(cfg.lora_target_modules) == [ALL_LINEAR]:
            return ALL_LINEAR
        return list(cfg.lora_target_modules)
    targets = LORA_TARGETS.get(model_type) or TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(
        model_type
    )
    if not targets:
        raise ConfigError(
            f"`tuning.lora_target_modules` is not set and hf_transfer has no default for model "
            f"type {model_type!r}: name the attention projections, e.g. [q_proj, v_proj], or "
            f"use [{ALL_LINEAR}]."
        )
    return list(targets)


def check_tuning(model: torch.nn.Module, cfg: TuningConfig) -> None:
    """Raise ConfigError when ``cfg`` cannot apply to ``model`` (works on a meta-device model)."""
    if cfg.method == "lora":
        targets = lora_targets(model.config.model_type, cfg)
        if targets == ALL_LINEAR:
            return
        leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [t for t in targets if t not in leaf_names]
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                             if isinstance(m, torch.nn.Linear)})
            raise ConfigError(
                f"`tuning.lora_target_modules`: {missing} not found in this "
                f"{model.config.model_type} model. Its linear layers are: {', '.join(linear)}."
            )
    if cfg.method == "top_k":
        layers = encoder_layers(model)
        if cfg.top_k_layers > len(layers):
            raise ConfigError(
                f"`tuning.top_k_layers` is {cfg.top_k_layers} but the model has {len(layers)} "
                "encoder layers: use at most that many (or `full`)."
            )


def apply_tuning(model: torch.nn.Module, cfg: TuningConfig, new_modules: list[str]) -> torch.nn.Module:
    """Freeze/wrap ``model`` so that exactly the parameters of ``cfg.method`` train (in float32,
    even over a half-precision frozen base: see :func:`train_in_float32`)."""
    return train_in_float32(_select_trainable(model, cfg, new_modules))


def _select_trainable(model: torch.nn.Module, cfg: TuningConfig, new_modules: list[str]) -> torch.nn.Module:
    check_tuning(model, cfg)
    head_and_new = sorted(set(head_modules(model)) | set(new_modules))
    if cfg.method == "full":
        model.requires_grad_(True)
        return model
    if cfg.method == "lora":
        return _apply_lora(model, cfg, head_and_new)
    model.requires_grad_(False)
    trainable = list(head_and_new)
    if cfg.method == "top_k":
        layers_name = encoder_layers_name(model)
        count = len(encoder_layers(model))
        trainable += [f"{layers_name}.{i}" for i in range(count - cfg.top_k_layers, count)]
        trainable += [name for name, _ in model.named_modules() if name.endswith(".pooler")]
    modules = dict(model.named_modules())
    for name in trainable:
        modules[name].requires_grad_(True)
    return model


def train_in_float32(model: torch.nn.Module) -> torch.nn.Module:
    """Over a frozen base held in half precision (`model.dtype`), make what trains float32
    (master weights: small updates would round away in half precision) and let the two meet:
    a module that trains casts its inputs to float32, and the encoder's outputs are cast too
    (for heads and strategy modules that read them). A float32 model is left as it is."""
    if all(p.dtype == torch.float32 for p in model.parameters() if p.is_floating_point()):
        return model
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if own and any(p.requires_grad for p in own):
            module.float()
            module.register_forward_pre_hook(_inputs_to_float32, with_kwargs=True)
    encoder = getattr(model, "get_base_model", lambda: model)().base_model
    encoder.register_forward_hook(_outputs_to_float32)
    return model


def _to_float32(value):
    if torch.is_tensor(value) and value.is_floating_point():
        return value.float()
    if isinstance(value, tuple):
        return tuple(_to_float32(v) for v in value)
    return value


def _inputs_to_float32(module, args, kwargs):
    return _to_float32(tuple(args)), {k: _to_float32(v) for k, v in kwargs.items()}


def _outputs_to_float32(module, args, output):
    if isinstance(output, dict):  # a ModelOutput: set items, so its attributes follow
        for key, value in list(output.items()):
            output[key] = _to_float32(value)
        return output
    return _to_float32(output)


# The head modules PEFT trains and saves by itself in a SEQ_CLS model.
PEFT_HEAD_NAMES = ("classifier", "score")


def _apply_lora(model, cfg: TuningConfig, head_and_new: list[str]):
    modules = dict(model.named_modules())
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=lora_targets(model.config.model_type, cfg),
        # PEFT adds `classifier`/`score` itself; every other head module (DistilBERT's
        # pre_classifier, DeBERTa's pooler, ModernBERT's head) and module the checkpoint lacked
        # must be trained and saved too, or the reloaded classifier would get other random weights.
        modules_to_save=[name.rsplit(".", 1)[-1] for name in head_and_new
                         if name not in PEFT_HEAD_NAMES and any(True for _ in modules[name].parameters())]
        or None,
    )
    with peft_deprecation_silenced():
        return get_peft_model(model, config)


def head_modules(model: torch.nn.Module) -> list[str]:
    """Top-level modules outside the encoder (``model.base_model``): the classification head."""
    base = model.base_model_prefix
    return [name for name, _ in model.named_children() if name != base]


def encoder_layers_name(model: torch.nn.Module) -> str:
    """Name of the ModuleList holding the transformer blocks (e.g. ``bert.encoder.layer``)."""
    num_layers = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layers")
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == num_layers:
            return name
    raise ConfigError(
        f"`tuning.method` top_k: could not find the encoder layers of this "
        f"{model.config.model_type} model; use `full` or `lora`."
    )


def encoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    return dict(model.named_modules())[encoder_layers_name(model)]
