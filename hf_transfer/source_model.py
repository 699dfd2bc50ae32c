"""Start from a source classifier: find it, load it, give it a new head.

Used by the label-space and conditional-shift recipes (``strategy.source_model``):

* :func:`describe_source` reads what a source model is (its labels, where its architecture
  and tokenizer come from) without loading weights, so data/label problems surface first;
* :func:`load_source_model` loads it as a plain transformers sequence classifier — a
  folder saved by hf_transfer (a full model, or a LoRA adapter, which is merged into its
  base so that the encoder carries what the source training learned) or any transformers
  checkpoint (Hub id or folder; a plain encoder has no trained head);
* :func:`source_from_trained` does the same for a classifier trained earlier in the run;
* :func:`with_new_head` builds the target classifier: the source's encoder, a fresh head for
  the target's labels, optionally with rows copied from the source head (``label_map``).

What a strategy does with it lives with the strategy (e.g. the L2-SP penalty in
:mod:`hf_transfer.strategies.l2sp`, the label mapping in :mod:`hf_transfer.strategies.label_map`).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from .config import ModelConfig
from .errors import ConfigError
from .modeling import classifier_from_config, load_pretrained, owning_modules, resolve_model_path
from .saving import META_FILE, load_classifier
from .tuning import head_modules

logger = logging.getLogger(__name__)


@dataclass
class SourceInfo:
    """What a source model is, read without loading its weights."""

    name_or_path: str
    kind: str  # "hf_transfer" (a saved run model), "classifier" or "encoder" (no trained head)
    labels: Optional[list[str]]  # label names in id order; None for a plain encoder
    architecture: str  # folder or id whose config.json describes the architecture
    tokenizer: str  # folder or id to load the tokenizer from
    base_model: str  # the pretrained model it descends from (recorded in saved metadata)
    adapter: bool = False  # an hf_transfer LoRA adapter (merged on load)
    max_length: Optional[int] = None
    text_prefix: Optional[str] = None


@dataclass
class SourceModel:
    """A source classifier in memory, as a plain transformers sequence classifier."""

    model: torch.nn.Module
    labels: Optional[list[str]]  # None: a plain encoder, its head is untrained
    base_model: str
    # A Hub id or folder that loads exactly these weights: an adapter trained on top of this
    # model can be saved against it. None when the weights exist only in memory (a merged
    # adapter, or a classifier trained in this run).
    loadable_base: Optional[str]
    new_modules: list[str] = field(default_factory=list)  # initialised at random on load
    origin: str = ""


def describe_source(name_or_path: str, model_cfg: ModelConfig) -> SourceInfo:
    """Read the source model's metadata (``hf_transfer.json`` or ``config.json``)."""
    folder = Path(name_or_path)
    meta_file = folder / META_FILE
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        adapter = meta.get("format") == "peft"
        return SourceInfo(
            name_or_path=str(name_or_path), kind="hf_transfer", labels=list(meta["labels"]),
            architecture=meta["base_model"] if adapter else str(folder), tokenizer=str(folder),
            base_model=meta.get("base_model") or str(folder), adapter=adapter,
            max_length=meta.get("max_length"), text_prefix=meta.get("text_prefix", ""),
        )
    if folder.is_dir() and (folder / "adapter_config.json").is_file():
        raise ConfigError(
            f"`strategy.source_model` {name_or_path!r} is a PEFT adapter without {META_FILE}: "
            "hf_transfer cannot tell its labels. Merge it into its base model first "
            "(`merge_and_unload()` then `save_pretrained`) and pass that folder."
        )
    try:
        config = AutoConfig.from_pretrained(resolve_model_path(name_or_path),
                                            trust_remote_code=model_cfg.trust_remote_code)
    except OSError as err:
        raise ConfigError(
            f"`strategy.source_model` {name_or_path!r} could not be loaded: not a model folder "
            f"saved by hf_transfer, not a local transformers folder, and the Hub could not provide "
            f"it. ({err})"
        ) from err
    classifier = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
    labels = [str(config.id2label[i]) for i in range(config.num_labels)] if classifier else None
    return SourceInfo(name_or_path=str(name_or_path), kind="classifier" if classifier else "encoder",
                      labels=labels, architecture=str(name_or_path), tokenizer=str(name_or_path),
                      base_model=str(name_or_path))


def load_source_model(info: SourceInfo, model_cfg: ModelConfig, num_labels: int) -> SourceModel:
    """Load the source model described by ``info`` in fp32. A plain encoder gets a random head
    of ``num_labels`` outputs (replaced by the recipes anyway)."""
    if info.adapter:
        classifier = load_classifier(info.name_or_path, allow_pickle=model_cfg.allow_pickle)
        model = classifier.model.merge_and_unload().float()
        logger.info("Source model %s: a LoRA adapter on %s, merged into its base.",
                    info.name_or_path, info.base_model)
        return SourceModel(model, info.labels, info.base_model, None, [], info.name_or_path)
    kwargs = {"num_labels": num_labels} if info.kind == "encoder" else {}
    model, missing = load_pretrained(AutoModelForSequenceClassification, info.architecture, model_cfg,
                                     shown_as=info.name_or_path, dtype=torch.float32, **kwargs)
    new_modules = sorted(owning_modules(model, missing))
    if info.kind == "classifier" and set(head_modules(model)) & set(new_modules):
        raise ConfigError(
            f"`strategy.source_model` {info.name_or_path!r} says it is a sequence classifier but "
            f"its checkpoint has no weights for the head ({', '.join(new_modules)})."
        )
    if info.kind == "encoder":
        logger.info("Source model %s is a plain encoder (no trained head): only its encoder "
                    "transfers.", info.name_or_path)
    return SourceModel(model, info.labels, info.base_model, info.name_or_path, new_modules,
                       info.name_or_path)


def source_from_trained(model: torch.nn.Module, labels: list[str], base_model: str) -> SourceModel:
    """A classifier trained earlier in this run (unwrapped); a LoRA adapter is merged in."""
    if hasattr(model, "peft_config"):
        model = model.merge_and_unload()
    model.requires_grad_(True)
    return SourceModel(model, list(labels), base_model, None, [], "trained in this run (stage `source`)")


# --- heads --------------------------------------------------------------------------------


def output_layer_name(model: torch.nn.Module) -> str:
    """The head's final linear layer: the last ``Linear`` inside the head modules whose
    outputs are the labels (``classifier`` in BERT, ``classifier.out_proj`` in RoBERTa, a
    decoder's ``score``). In a model under LoRA, the trainable copy PEFT keeps of the head
    (``...modules_to_save.<adapter>``), not the frozen ``original_module``."""
    heads = head_modules(model)
    num_labels = model.config.num_labels
    found = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and module.out_features == num_labels
             and any(name == h or name.startswith(h + ".") for h in heads)
             and ".original_module" not in name]
    if not found:
        raise ConfigError(
            f"Cannot find the output layer of this {model.config.model_type} classifier's head "
            f"(modules {', '.join(heads)}): `label_map` and the linear probe (`lp_ft`) need one "
            "Linear layer with one row per label; use another encoder."
        )
    return found[-1]


def with_new_head(source: SourceModel, labels: list[str],
                  copy_rows: Optional[dict[str, str]] = None,
                  trust_remote_code: bool = False) -> tuple[torch.nn.Module, list[str]]:
    """The target classifier: the source's encoder and a freshly initialised head with one
    output per target label. Nothing of the source head is reused, except with ``copy_rows``
    ({target label: source label}): then those rows (weight and bias) of the output layer are
    the source head's rows, and the head's other layers (e.g. RoBERTa's dense layer) are the
    source's too, so the copied rows see the features they were trained on.

    Returns ``(model, new_modules)``: the head and modules the source lacked (they must be
    trained and saved). Seed the RNG first: the fresh head is random.
    """
    model_config = copy.deepcopy(source.model.config)
    model_config.num_labels = len(labels)
    model_config.id2label = dict(enumerate(labels))
    model_config.label2id = {name: i for i, name in enumerate(labels)}
    model_config.problem_type = None  # single-label classification on the target
    target = classifier_from_config(model_config, trust_remote_code=trust_remote_code, dtype=torch.float32)
    heads = head_modules(target)

    def in_head(key: str) -> bool:
        return any(key == h or key.startswith(h + ".") for h in heads)

    source_state = source.model.state_dict()
    encoder_state = {k: v for k, v in source_state.items() if not in_head(k)}
    missing, unexpected = target.load_state_dict(encoder_state, strict=False)
    not_head = [k for k in missing if not in_head(k)]
    if not_head or unexpected:
        raise ConfigError(f"The source encoder does not fit the target classifier: missing "
                          f"{not_head[:5]}, unexpected {list(unexpected)[:5]}.")
    if copy_rows:
        if source.labels is None:
            raise ConfigError("`label_map` needs a source model with a trained head; this one is "
                              "a plain encoder.")
        out_name = output_layer_name(source.model)
        target_state = target.state_dict()
        with torch.no_grad():
            for key, value in source_state.items():  # the head's other layers: the source's
                if in_head(key) and not key.startswith(out_name + ".") and key in target_state:
                    target_state[key].copy_(value)
            source_index = {name: i for i, name in enumerate(source.labels)}
            out = dict(target.named_modules())[out_name]
            src = dict(source.model.named_modules())[out_name]
            for target_label, source_label in copy_rows.items():
                row, src_row = labels.index(target_label), source_index[source_label]
                out.weight[row].copy_(src.weight[src_row])
                if out.bias is not None and src.bias is not None:
                    out.bias[row].copy_(src.bias[src_row])
    new_modules = sorted(set(heads) | set(source.new_modules))
    return target, new_modules
