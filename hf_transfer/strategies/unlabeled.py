"""Shared by the strategies that learn from the target's text without its labels (`tapt`,
`dapt`, `dann`, `coral`): the target's training and validation text, labels dropped, tokenized.
Target labels are never read: these datasets hold the ``text`` column only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import datasets

from ..data.tokenize import tokenize
from ..data.unlabeled import text_only
from .base import TRANSDUCTIVE, Strategy

if TYPE_CHECKING:
    from ..run.pipeline import RunData


class UnlabeledTargetStrategy(Strategy):
    family = TRANSDUCTIVE
    unlabeled_target = True
    needs_unsharded = True  # the model is swapped or wrapped between stages

    def __init__(self, recipe):
        super().__init__(recipe)
        self.unlabeled_raw: Optional[datasets.DatasetDict] = None
        self.unlabeled: dict[str, datasets.Dataset] = {}  # tokenized text only: train, validation

    def problems(self) -> list[str]:
        target = self.config.data.target
        return [f"`data.target.{field}` is set, but `{self.name}` trains on the target's text "
                f"without its labels and `{field}` samples by label: remove it."
                for field in ("k_shot", "max_train_samples") if getattr(target, field) is not None]

    def load_data(self, raw: "RunData", meta_model) -> None:
        self.unlabeled_raw = datasets.DatasetDict({
            "train": self.training_text(raw), "validation": text_only(raw.target["validation"])})

    def training_text(self, raw: "RunData") -> datasets.Dataset:
        """The unlabelled text trained on. Default: the target's training split, labels dropped."""
        return text_only(raw.target["train"])

    def tokenize(self, tokenizer) -> None:
        m = self.config.model
        self.unlabeled = tokenize(self.unlabeled_raw, tokenizer, m.max_length, m.text_prefix)
