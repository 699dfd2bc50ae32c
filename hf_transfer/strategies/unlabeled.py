"""Shared by the strategies that learn from the target's text without its labels (`tapt`,
`dapt`, `dann`, `coral`): the target's training and validation text, labels dropped, tokenized
(target labels are never read: these datasets hold the ``text`` column only); and the stage
shape of `dann` and `coral`, which read that text alongside the labelled source."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import datasets
from torch import nn

from ..data.tokenize import tokenize
from ..data.unlabeled import text_only
from ..training import Stage, unwrap
from .base import TRANSDUCTIVE, Strategy
from .features import classifier_head

if TYPE_CHECKING:
    from ..run.pipeline import RunData


class UnlabeledTargetStrategy(Strategy):
    family = TRANSDUCTIVE
    needs_unsharded = True  # the model is swapped or wrapped between stages

    def __init__(self, recipe):
        super().__init__(recipe)
        self.unlabeled_raw: Optional[datasets.DatasetDict] = None
        self.unlabeled: dict[str, datasets.Dataset] = {}  # tokenized text only: train, validation

    def problems(self) -> list[str]:
        target = self.config.data.target
        return super().problems() + [f"`data.target.{field}` is set, but `{self.name}` trains on the target's text "
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


class TargetTextAlongside(UnlabeledTargetStrategy):
    """One stage on the labelled source with a batch of the target's text read alongside each
    micro-batch (cycled, reshuffled, sharded under DDP). During the stage the classifier is
    wrapped (:meth:`wrap`) in a module that computes the whole loss in one forward pass — so DDP,
    the optimizer and the checkpoints see all of it — and whose ``classifier`` is what is
    evaluated and saved. Both act on the representation the classifier's head reads."""

    def wrap(self, classifier: nn.Module) -> nn.Module:
        """The module trained in the stage; its ``classifier`` attribute is ``classifier``."""
        raise NotImplementedError

    def step_loss(self):
        """The stage's ``loss_fn(model, batch, target_batch, progress)``."""
        raise NotImplementedError

    def settings_report(self) -> dict:
        """The strategy's settings as results.json reports them."""
        return {}

    def load_data(self, raw: "RunData", meta_model) -> None:
        classifier_head(meta_model, self.name)  # before any weights load
        super().load_data(raw, meta_model)

    def stages(self, data: "RunData") -> list[Stage]:
        stage = self.recipe.source_stage(data)
        stage.aux = self.unlabeled["train"]
        stage.loss_fn = self.step_loss()
        return [stage]

    def before_stage(self, stage: Stage, model: nn.Module) -> nn.Module:
        return self.wrap(model)

    def final_model(self, engine, model: nn.Module) -> nn.Module:
        return unwrap(engine.accelerator, model).classifier  # the rest of the wrapper stays behind

    def results(self) -> dict:
        return {self.name: {**self.settings_report(), "target_texts": len(self.unlabeled["train"]),
                            "features": "input of the classifier's head"}}
