"""Fold a LoRA adapter into its base model: a standalone classifier that needs no PEFT."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Union

from .errors import ConfigError
from .saving import load_classifier, save_classifier


def merge_adapter(model_dir: Union[str, Path], out_dir: Union[str, Path]) -> Path:
    """Merge the LoRA adapter saved in ``model_dir`` (a run's ``model/`` folder or a Hub repo
    id) into its base model and save the result in ``out_dir``: a plain transformers
    classifier with its trained head, tokenizer and label names (``hf_transfer.json`` format
    ``transformers``). Its logits equal the adapter's up to float rounding.

    ``out_dir`` must not exist or be empty; it is written whole or not at all.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(
            f"{str(out_dir)!r} already exists and is not empty: merging never overwrites. Choose a "
            "new output folder, or remove that one first."
        )
    classifier = load_classifier(model_dir)
    if not hasattr(classifier.model, "peft_config"):
        raise ConfigError(
            f"{str(model_dir)!r} is already a standalone classifier (not a LoRA adapter): there is "
            "nothing to merge; use the folder as it is."
        )
    merged = classifier.model.merge_and_unload()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.merging-{uuid.uuid4().hex[:8]}"
    try:
        save_classifier(merged, classifier.tokenizer, staging, classifier.labels, classifier.base_model,
                        classifier.max_length, "lora",
                        text_prefix=classifier.text_prefix)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir

