"""Save a trained classifier so it reloads without the training code; load it back; predict.

A saved folder holds the model (a full ``save_pretrained`` checkpoint, or a PEFT adapter
whose ``modules_to_save`` carry the trained head), the tokenizer and ``hf_transfer.json``:
the label names, the base model's Hub id and the max length. ``load_classifier`` rebuilds
exactly the classifier that was trained (same logits) with its label names.
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
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .atomic import partial_dir, publish_dir
from .version import __version__
from .errors import ConfigError
from .modeling import (damaged_weights_error, match_pad_token, require_finite, resolve_model_path,
                       weights_error, weights_format, with_pad_token)

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
        # Record the Hub id, not a packaged local folder, so the adapter loads anywhere.
        for adapter_config in model.peft_config.values():
            adapter_config.base_model_name_or_path = base_model
        # The adapter plus the trained head (modules_to_save). Embeddings are never tuned, and
        # "auto" would ask the Hub about the base model.
        model.save_pretrained(folder, save_embedding_layers=False, state_dict=state_dict)
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
        "hf_transfer_version": __version__,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    publish_dir(folder, final)
    return final


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
            # on a source classifier): its head is replaced by the adapter's trained copy.
            base = AutoModelForSequenceClassification.from_pretrained(
                resolve_model_path(meta["base_model"]), token=token, **label_kwargs, **weights,
                ignore_mismatched_sizes=True, dtype=torch.float32,
            )
            model = PeftModel.from_pretrained(base, folder)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(folder, **label_kwargs, **weights,
                                                                       dtype=torch.float32)
    except OSError as err:
        raise weights_error(str(path), err, "`allow_pickle`") from err
    except SafetensorError as err:
        raise damaged_weights_error(path, err) from err
    require_finite(model, path)
    tokenizer = with_pad_token(AutoTokenizer.from_pretrained(folder))
    match_pad_token(model, tokenizer)  # an adapter's base config may lack the pad id
    if device:
        model.to(device)
    return Classifier(model.eval(), tokenizer, labels, meta.get("max_length", 128),
                      meta.get("text_prefix", ""))


def _looks_like_repo_id(text: str) -> bool:
    from .config import REPO_ID_PATTERN

    return REPO_ID_PATTERN.fullmatch(text) is not None
