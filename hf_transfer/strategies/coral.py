"""Deep CORAL (Sun & Saenko, ECCV 2016 workshops): align the second-order statistics of source
and target features.

One stage on the labelled source with the target's training text (labels dropped) cycled
alongside. Each step adds ``coral_weight`` times the CORAL loss between the covariance of the
source batch's and the target batch's features at the head's input (BERT: the pooler output
that feeds ``classifier``), to the classification loss::

    coral = ||C_s - C_t||_F^2 / (4 d^2),   C = (X - mean X)^T (X - mean X) / (n - 1)

with d the feature size. Unlike DANN there is no discriminator and no schedule: the penalty is
a differentiable distance between the two feature distributions. The saved model is the plain
classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers.utils import ModelOutput

from ..config import setting
from .features import classifier_head, classify_with_features, features_only
from .registry import StrategyOptions, register_strategy
from .unlabeled import TargetTextAlongside


def covariance(features: torch.Tensor) -> torch.Tensor:
    """The (d, d) sample covariance of a batch of features (n, d), in float32."""
    x = features.float()
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.T @ centred / max(x.shape[0] - 1, 1)


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||C_s - C_t||_F^2 / (4 d^2): 0 for batches with the same covariance."""
    d = source.shape[-1]
    return (covariance(source) - covariance(target)).pow(2).sum() / (4 * d * d)


@dataclass
class CoralOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None  # classification + coral_weight * CORAL
    logits: Optional[torch.Tensor] = None  # of the source batch
    classification_loss: Optional[torch.Tensor] = None
    coral_loss: Optional[torch.Tensor] = None


class CoralModel(nn.Module):
    """A classifier whose training step also reads an unlabelled target batch.

    ``model(**batch)`` is the classifier. ``model(**batch, target_batch=...)`` is one CORAL
    step in a single forward pass (so DDP sees one forward per backward).
    """

    def __init__(self, classifier: nn.Module, weight: float):
        super().__init__()
        self.classifier = classifier
        self.weight = float(weight)
        classifier_head(classifier, "coral")  # fail now, not in the first step

    def forward(self, target_batch: Optional[dict] = None, **batch):
        if target_batch is None:
            return self.classifier(**batch)
        if "labels" in target_batch:
            raise ValueError("CORAL target batches must be unlabelled: labels would leak.")
        source, source_features = classify_with_features(self.classifier, batch, "coral")
        target_features = features_only(self.classifier, target_batch, "coral")
        coral = coral_loss(source_features, target_features)
        return CoralOutput(loss=source.loss + self.weight * coral, logits=source.logits,
                           classification_loss=source.loss.detach(), coral_loss=coral.detach())


def coral_step(model, batch: dict, target_batch: dict, progress: float) -> torch.Tensor:
    """A ``Stage.loss_fn`` for :class:`CoralModel`."""
    return model(**batch, target_batch=target_batch).loss


@dataclass
class CoralOptions(StrategyOptions):
    coral_weight: float = setting(
        1e5, "`coral`: weight of the CORAL loss ||C_s - C_t||^2 / (4 d^2) between the source and "
        "target feature covariances, added to the classification loss (Sun & Saenko 2016). The "
        "loss is tiny for pooled sentence features (~3e-8 for MiniLM, d = 384, at the start), "
        "hence the large default; 1e6 collapsed every measured run to one class."
    )

    def problems(self, path: str) -> list[str]:
        if self.coral_weight < 0:
            return [f"`{path}.coral_weight` is {self.coral_weight}: use a value of at least 0."]
        return []


@register_strategy
class Coral(TargetTextAlongside):
    name = "coral"
    scenarios = ("domain_adaptation",)
    summary = "match the covariance of source and target features at the head's input"
    options_class = CoralOptions

    def wrap(self, classifier: nn.Module) -> nn.Module:
        return CoralModel(classifier, self.options.coral_weight)

    def step_loss(self):
        return coral_step

    def settings_report(self) -> dict:
        return {"weight": self.options.coral_weight}
