"""Save a trained classifier so it reloads without the training code; load it back; predict.

A saved folder holds the model, the tokenizer, ``hf_transfer.json`` (the label names, the base
model's Hub id, the max length) and the model card (``README.md``). ``load_classifier``
rebuilds exactly the classifier that was trained (same logits) with its label names.

The folder also loads without hf_transfer, with the label names: ``config.json`` is the
classifier's config (architecture, ``id2label``, ``label2id``). A full, frozen or top-k run
saves a plain transformers checkpoint. A LoRA run saves the PEFT adapter (``adapter_*``,
``modules_to_save`` carrying the trained head) *and* the classifier it was trained on, without
LoRA (``model.safetensors``: the base encoder and the trained head): transformers loads a local
folder holding both as "a model with an embedded adapter" — the classifier from the folder, the
adapter on top — so ``pipeline("text-classification", model=folder)`` works offline, and
``adapter_config.json`` names the folder itself as the base, so peft's
``AutoPeftModelForSequenceClassification`` builds the same classifier (a push names the Hub repo
instead, see ``hub.py``). Without that base, both would build a 2-label head from the base
model's own config and fail on the adapter's head.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoConfig

from .atomic import partial_dir, publish_dir
from .version import __version__
from .errors import ConfigError
from .hub import write_model_card
from .modeling import (classifier_class, damaged_weights_error, load_folder_tokenizer, load_report_silenced,
                       match_pad_token, peft_deprecation_silenced, report_unrestored, require_finite,
                       resolve_model_path, weights_error, weights_format, with_pad_token)
from .pooling import POOLING_ATTRIBUTE, saved_encoder_config

META_FILE = "hf_transfer.json"


def save_classifier(model, tokenizer, folder: Union[str, Path], labels: Sequence[str],
                    base_model: str, max_length: int, tuning: str,
                    state_dict: Optional[dict] = None, text_prefix: str = "") -> Path:
    """Write ``model`` (unwrapped), ``tokenizer`` and label metadata into ``folder``.

    ``state_dict`` overrides the model's own weights, e.g. the full weights that
    ``accelerator.get_state_dict`` gathered from a sharded (FSDP) model.
    """
    # Written into FOLDER.partial, then renamed: a kill never leaves a half-saved FOLDER.
    final = Path(folder)
    folder = partial_dir(final)
    is_adapter = _is_peft(model)
    if is_adapter:
        _save_adapter_and_base(model, folder, final, state_dict)
    else:
        model.save_pretrained(folder, state_dict=state_dict)  # safetensors
    tokenizer.save_pretrained(folder)
    meta = {
        "format": "peft" if is_adapter else "transformers",
        "base_model": base_model,
        "labels": list(labels),
        "max_length": max_length,
        "text_prefix": text_prefix,
        "tuning": tuning,
        # `cls`: the architecture's own head; `mean`/`last`: a pooled classifier (hf_transfer.pooling)
        "pooling": getattr(_unwrapped(model).config, POOLING_ATTRIBUTE, None) or "cls",
        "hf_transfer_version": __version__,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    write_model_card(folder, shown_as=str(final))  # replaces peft's empty template
    publish_dir(folder, final)
    return final


def _save_adapter_and_base(model, folder: Path, final: Path, state_dict: Optional[dict]) -> None:
    """The adapter, and the classifier under it without LoRA (see the module docstring)."""
    for adapter_config in model.peft_config.values():
        # The folder itself is the base that AutoPeftModelForSequenceClassification loads (the
        # base model's Hub id is in hf_transfer.json and the card).
        adapter_config.base_model_name_or_path = str(final.resolve())
    # The adapter plus the trained head (modules_to_save). Embeddings are never tuned, and
    # "auto" would ask the Hub about the base model.
    model.save_pretrained(folder, save_embedding_layers=False, state_dict=state_dict)
    classifier = model.get_base_model()
    classifier.config.architectures = [type(classifier).__name__]
    classifier.save_pretrained(folder, state_dict=_without_lora(model, state_dict))


def _without_lora(model, state_dict: Optional[dict]) -> dict:
    """The weights of the model under a LoRA adapter, named as in the plain classifier: LoRA
    matrices dropped, wrapped layers (``base_layer``) unwrapped, and each ``modules_to_save``
    module (the head) as trained."""
    state = state_dict if state_dict is not None else model.state_dict()
    adapters = list(model.peft_config)
    out = {}
    for key, tensor in state.items():
        if ".lora_" in key or ".original_module." in key:
            continue
        key = key.removeprefix("base_model.model.").replace(".base_layer.", ".")
        for name in adapters:
            key = key.replace(f".modules_to_save.{name}.", ".")
        out[key] = tensor
    return out


def _unwrapped(model):
    return model.get_base_model() if _is_peft(model) else model


def _is_peft(model) -> bool:
    return hasattr(model, "peft_config")


def standalone_classifier(model, why: str):
    """A LoRA classifier with its adapter folded in, for saving when the adapter's base exists
    only in this run and could not be loaded again (``why`` says which base, for the log)."""
    logging.getLogger("hf_transfer").info(
        "Saving a standalone classifier: the LoRA adapter is merged, because %s.", why)
    return model.merge_and_unload()


@dataclass
class Classifier:
    """A trained classifier ready for prediction."""

    model: torch.nn.Module
    tokenizer: object
    labels: list[str]
    max_length: int = 128
    text_prefix: str = ""  # what training prepended to every text (e.g. e5's "query: ")
    base_model: str = ""  # the pretrained model it was trained from (a Hub id where it has one)

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), len(labels))``, columns in label order."""
        self.model.eval()
        device = next(self.model.parameters()).device
        # Sorting by length makes each batch pad to similar lengths; the order is restored.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = self.tokenizer([self.text_prefix + texts[i] for i in rows], truncation=True, padding=True,
                                   max_length=self.max_length, return_tensors="pt").to(device)
            out[rows] = self.model(**batch).logits.float().softmax(-1).cpu().numpy()
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[str]:
        """The most likely label name for each text."""
        if isinstance(texts, str):
            texts = [texts]
        return [self.labels[i] for i in self.predict_proba(texts, batch_size).argmax(-1)]


def load_classifier(path: Union[str, Path], device: Optional[str] = None, *,
                    revision: Optional[str] = None, token: Optional[str] = None,
                    allow_pickle: bool = False) -> Classifier:
    """Load a folder written by ``save_classifier`` (a training run's ``model/`` folder), or a
    Hub repo id (``owner/name``) pushed with ``push_to_hub``: it is downloaded (or taken from the
    cache, and only from there in offline mode) at ``revision``; ``token`` for private repos.
    Weights load from safetensors only unless ``allow_pickle`` (unpickling can run code)."""
    folder = Path(path)
    if not folder.exists() and _looks_like_repo_id(str(path)):
        from .hub import download_classifier

        folder = download_classifier(str(path), revision=revision, token=token)
    meta_file = folder / META_FILE
    if not meta_file.is_file():
        raise ConfigError(
            f"{str(path)!r} is not a saved hf_transfer classifier (no {META_FILE}). Pass the "
            "`model` folder of a finished run, e.g. outputs/domain_adaptation/model, or the id "
            "of a Hub repo pushed with hf_transfer."
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    labels = meta["labels"]
    label_kwargs = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                        label2id={name: i for i, name in enumerate(labels)})
    weights = weights_format(allow_pickle)
    try:
        if meta["format"] == "peft":
            from peft import PeftModel

            if not allow_pickle and not (folder / "adapter_model.safetensors").is_file():
                raise OSError(f"no adapter_model.safetensors in {folder}")
            # The base may itself be a classifier with another label count (an adapter trained
            # on a source classifier): its head is replaced by the adapter's trained copy. So
            # transformers' report of a missing or resized head is silenced, and only weights
            # that the adapter does not restore are reported.
            base_path = resolve_model_path(meta["base_model"])
            config = _classifier_config(base_path, meta, label_kwargs, token)
            with load_report_silenced():
                base, loading_info = classifier_class(config).from_pretrained(
                    base_path, config=config, token=token, **weights,
                    ignore_mismatched_sizes=True, output_loading_info=True, dtype=torch.float32,
                )
            with peft_deprecation_silenced():
                model = PeftModel.from_pretrained(base, folder)
            report_unrestored(base, loading_info, _adapter_restored_modules(model), str(path))
        else:
            config = _classifier_config(folder, meta, label_kwargs, token)
            model = classifier_class(config).from_pretrained(folder, config=config, **weights, dtype=torch.float32)
    except OSError as err:
        raise weights_error(str(path), err, "`allow_pickle`") from err
    except SafetensorError as err:
        raise damaged_weights_error(path, err) from err
    require_finite(model, path)
    tokenizer = with_pad_token(load_folder_tokenizer(folder))
    match_pad_token(model, tokenizer)  # an adapter's base config may lack the pad id
    if device:
        model.to(device)
    return Classifier(model.eval(), tokenizer, labels, meta.get("max_length", 128),
                      meta.get("text_prefix", ""), meta.get("base_model", ""))


def _classifier_config(path, meta: dict, label_kwargs: dict, token: Optional[str]):
    """The config of the classifier that was trained: ``path``'s (a saved pooled classifier's
    encoder config, which transformers could not read without the folder's code), with the
    label names and the pooling recorded in ``hf_transfer.json``."""
    config = saved_encoder_config(path) or AutoConfig.from_pretrained(path, token=token)
    config.update(label_kwargs)
    pooling = meta.get("pooling", "cls")
    if pooling != "cls":
        setattr(config, POOLING_ATTRIBUTE, pooling)
    elif hasattr(config, POOLING_ATTRIBUTE):
        delattr(config, POOLING_ATTRIBUTE)
    return config


def _adapter_restored_modules(model) -> set[str]:
    """Names (in the plain classifier) of the modules whose weights the adapter carries whole:
    its ``modules_to_save`` (the head, any module the base checkpoint lacked)."""
    from peft.utils import ModulesToSaveWrapper

    return {name.removeprefix("base_model.model.") for name, module in model.named_modules()
            if isinstance(module, ModulesToSaveWrapper)}


def _looks_like_repo_id(text: str) -> bool:
    from .config import REPO_ID_PATTERN

    return REPO_ID_PATTERN.fullmatch(text) is not None
