"""Classifiers that read the encoder's own sentence representation (``model.pooling``).

The architecture's classifier reads what its authors chose: BERT's pooler over ``[CLS]``,
RoBERTa's first token, a decoder's last token. Sentence encoders such as all-MiniLM-L6-v2 or
e5 were trained to be read by the **mean** of their last hidden states, and some checkpoints
have no pooler weights at all (it would start random). :func:`pooled_classifier_class` gives
the architecture's model with a head on that representation instead: the encoder
(``base_model``, same weights and names as in the architecture's classifier), dropout, and one
linear layer ``classifier`` (the name PEFT trains and saves by itself, and the one the
strategies' feature hook and the label-shift correction look for).

A saved pooled classifier must never load as the architecture's own classifier: that one would
read the ``[CLS]`` pooler and give silently wrong predictions. So its ``config.json`` names a
model type that transformers does not know (``hf_transfer_pooled``), with the encoder's own
config inside and an ``auto_map`` to this file, which the folder carries as
``modeling_hf_transfer_pooling.py``: ``pipeline(..., trust_remote_code=True)`` and
``AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)`` build
this classifier; without ``trust_remote_code`` transformers refuses to load it. hf_transfer's
own loader uses this module and runs no code from the folder.

This file imports only torch and transformers: it runs as it is inside a saved folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

# The attribute of the encoder's config that says how a pooled classifier reads it.
POOLING_ATTRIBUTE = "sentence_pooling"
POOLINGS = ("mean", "last")  # what this module implements; `cls` is the architecture's own head
MODEL_TYPE = "hf_transfer_pooled"
MODELING_FILE = "modeling_hf_transfer_pooling.py"
CONFIG_FILE = "config.json"


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per row of ``hidden`` (batch, tokens, width): the mean over the tokens the
    mask keeps, or the last such token (padding on the right)."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    if pooling == "last":
        last = attention_mask.long().sum(1).sub(1).clamp_min(0)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"unknown pooling {pooling!r}: use one of {POOLINGS}")


def _dropout_probability(config) -> float:
    for name in ("classifier_dropout", "seq_classif_dropout", "hidden_dropout_prob", "hidden_dropout"):
        value = getattr(config, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return 0.1


_CLASSES: dict = {}


def pooled_classifier_class(config_class: type) -> type:
    """The pooled classifier class for an architecture, given its config class (one class per
    architecture, made once, so every process builds the same one)."""
    if config_class in _CLASSES:
        return _CLASSES[config_class]
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    encoder_class = MODEL_MAPPING[config_class]
    # The architecture's PreTrainedModel (e.g. BertPreTrainedModel): its weight init, its
    # base_model_prefix (so the encoder's weights keep their names), its config class.
    pretrained_base = next(c for c in encoder_class.__mro__[1:] if issubclass(c, PreTrainedModel))

    class PooledClassifier(pretrained_base):
        # A checkpoint's pooler is not read: it is left out instead of staying an unused module.
        _keys_to_ignore_on_load_unexpected = [r"(^|\.)pooler\."]

        def __init__(self, config):
            super().__init__(config)
            encoder = encoder_class(config)
            if getattr(encoder, "pooler", None) is not None:
                encoder.pooler = None
            setattr(self, self.base_model_prefix, encoder)
            self.num_labels = config.num_labels
            self.dropout = nn.Dropout(_dropout_probability(config))
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_ids=None, attention_mask=None, labels=None, return_dict=None, **kwargs):
            outputs = self.base_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                      **kwargs)
            hidden = outputs[0]
            if attention_mask is None:
                attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
            features = pool(hidden, attention_mask, getattr(self.config, POOLING_ATTRIBUTE))
            logits = self.classifier(self.dropout(features))
            loss = None if labels is None else _loss(logits, labels, self.config)
            return SequenceClassifierOutput(loss=loss, logits=logits,
                                            hidden_states=getattr(outputs, "hidden_states", None),
                                            attentions=getattr(outputs, "attentions", None))

        def save_pretrained(self, save_directory, *args, **kwargs):
            super().save_pretrained(save_directory, *args, **kwargs)
            if kwargs.get("is_main_process", True):
                write_guarded_config(self.config, save_directory)

    name = encoder_class.__name__.removesuffix("Model")
    PooledClassifier.__name__ = PooledClassifier.__qualname__ = f"Pooled{name}ForSequenceClassification"
    _CLASSES[config_class] = PooledClassifier
    return PooledClassifier


def _loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """The loss of the architecture's own classifiers: regression for one output, else
    cross-entropy (multi-label BCE when ``problem_type`` says so)."""
    if config.num_labels == 1 or config.problem_type == "regression":
        return nn.functional.mse_loss(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype))
    if config.problem_type == "multi_label_classification":
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return nn.functional.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))


# --- the saved folder ------------------------------------------------------------------------


class PooledConfig(PretrainedConfig):
    """``config.json`` of a saved pooled classifier: the encoder's config (``encoder``, with
    ``sentence_pooling`` and the labels) under a model type transformers does not know."""

    model_type = MODEL_TYPE

    def __init__(self, encoder=None, **kwargs):
        self.encoder = encoder or {}
        super().__init__(**kwargs)

    def encoder_config(self):
        encoder = dict(self.encoder)
        return AutoConfig.for_model(encoder.pop("model_type"), **encoder)


class PooledForSequenceClassification(PreTrainedModel):
    """What ``auto_map`` names: it builds the architecture's pooled classifier from the
    encoder config inside :class:`PooledConfig` (and returns that, not itself)."""

    config_class = PooledConfig

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, config=None, **kwargs):
        if not isinstance(config, PooledConfig):
            config = PooledConfig.from_pretrained(pretrained_model_name_or_path)
        encoder = config.encoder_config()
        return pooled_classifier_class(type(encoder)).from_pretrained(
            pretrained_model_name_or_path, *args, config=encoder, **kwargs)

    @classmethod
    def _from_config(cls, config, **kwargs):
        encoder = config.encoder_config()
        return pooled_classifier_class(type(encoder))._from_config(encoder, **kwargs)


def write_guarded_config(config, folder) -> None:
    """Replace the ``config.json`` that transformers wrote (the architecture's type, which
    would load the [CLS] classifier) by the guarded one, and put this file beside it."""
    folder = Path(folder)
    module = MODELING_FILE.removesuffix(".py")
    encoder = config.to_dict()
    guarded = PooledConfig(
        encoder=encoder, id2label=config.id2label, label2id=config.label2id,
        architectures=[PooledForSequenceClassification.__name__],
        auto_map={"AutoConfig": f"{module}.{PooledConfig.__name__}",
                  "AutoModelForSequenceClassification": f"{module}.{PooledForSequenceClassification.__name__}"},
    )
    guarded.to_json_file(folder / CONFIG_FILE)
    if Path(__file__).resolve() != (folder / MODELING_FILE).resolve():
        shutil.copyfile(__file__, folder / MODELING_FILE)


def saved_encoder_config(folder):
    """The encoder config (with its pooling) of a saved pooled classifier in ``folder``; None
    for any other folder."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if raw.get("model_type") != MODEL_TYPE:
        return None
    return PooledConfig.from_dict(raw).encoder_config()
