"""Domain-adversarial training (DANN; Ganin et al., JMLR 2016) around any sequence classifier.

A small discriminator learns to tell source from target examples by the representation the
classifier's head reads (BERT: the pooler output that feeds ``classifier``; RoBERTa-style
heads that read the whole sequence: its first token). Between the two sits a gradient-
reversal layer: identity forward, gradient times ``-lambda`` backward, so the encoder learns
features that serve the label classifier *and* confuse the discriminator. ``lambda`` grows
with training progress p as ``dann_weight * (2 / (1 + exp(-10 p)) - 1)`` (0 at the start,
near ``dann_weight`` at the end).

:class:`DomainAdversarialModel` holds classifier and discriminator in one module, so that
``accelerator.prepare`` wraps both (DDP sees every trainable parameter used in each forward),
the optimizer holds both, and checkpoints save and restore both. Its ``classifier`` alone is
what a run saves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from ..config import setting
from .features import classifier_head, classify_with_features, features_only
from .registry import StrategyOptions, register_strategy
from .unlabeled import TargetTextAlongside



class GradientReversal(torch.autograd.Function):
    """Identity in the forward pass; multiplies the gradient by ``-lambda`` in the backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lambda_ * grad, None


def reverse_gradient(x: torch.Tensor, lambda_: float) -> torch.Tensor:
    return GradientReversal.apply(x, float(lambda_))


def dann_lambda(progress: float, weight: float = 1.0) -> float:
    """The reversal strength at training progress ``progress`` (0..1)."""
    return weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class DomainDiscriminator(nn.Sequential):
    """Source (0) or target (1)? One logit per example."""

    def __init__(self, features: int, hidden: int, dropout: float = 0.1):
        super().__init__(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, 1))


@dataclass
class DannOutput(ModelOutput):
    loss: Optional[torch.Tensor] = None  # classification + domain loss
    logits: Optional[torch.Tensor] = None  # of the source batch
    classification_loss: Optional[torch.Tensor] = None
    domain_loss: Optional[torch.Tensor] = None


class DomainAdversarialModel(nn.Module):
    """A classifier and a domain discriminator behind a gradient-reversal layer.

    ``model(**batch)`` is the classifier (evaluation, prediction). ``model(**batch,
    target_batch=..., grl_lambda=...)`` is one DANN step: the classification loss on the
    labelled source batch plus the discriminator's loss on the source and (unlabelled) target
    representations, in one forward pass.
    """

    def __init__(self, classifier: nn.Module, hidden: int):
        super().__init__()
        self.classifier = classifier
        self.discriminator = DomainDiscriminator(classifier.config.hidden_size, hidden)
        classifier_head(classifier, "dann")  # fail now, not in the first step

    def forward(self, target_batch: dict = None, grl_lambda: float = 0.0, **batch):
        if target_batch is None:
            return self.classifier(**batch)
        if "labels" in target_batch:
            raise ValueError("DANN target batches must be unlabelled: labels would leak.")
        source, source_features = classify_with_features(self.classifier, batch, "dann")
        target_features = features_only(self.classifier, target_batch, "dann")
        features = torch.cat([source_features, target_features])
        domains = torch.cat([features.new_zeros(len(source_features)),
                             features.new_ones(len(target_features))]).float()
        logits = self.discriminator(reverse_gradient(features, grl_lambda)).squeeze(-1)
        domain_loss = F.binary_cross_entropy_with_logits(logits.float(), domains)
        return DannOutput(loss=source.loss + domain_loss, logits=source.logits,
                           classification_loss=source.loss.detach(), domain_loss=domain_loss.detach())


def dann_loss(weight: float):
    """A ``Stage.loss_fn`` for :class:`DomainAdversarialModel` with the scheduled lambda."""
    def loss_fn(model, batch: dict, target_batch: dict, progress: float) -> torch.Tensor:
        return model(**batch, target_batch=target_batch, grl_lambda=dann_lambda(progress, weight)).loss

    return loss_fn



@dataclass
class DannOptions(StrategyOptions):
    dann_weight: float = setting(
        1.0, "`dann`: weight of the adversarial gradient. The reversal layer multiplies the "
        "discriminator's gradient by -dann_weight * (2 / (1 + exp(-10 p)) - 1), p = the "
        "fraction of training done (Ganin et al. 2016)."
    )
    discriminator_hidden: int = setting(
        256, "`dann`: hidden units of the domain discriminator (Linear-ReLU-Dropout-Linear)."
    )

    def problems(self, path: str) -> list[str]:
        out = []
        if self.dann_weight < 0:
            out.append(f"`{path}.dann_weight` is {self.dann_weight}: use a value of at least 0.")
        if self.discriminator_hidden < 1:
            out.append(f"`{path}.discriminator_hidden` is {self.discriminator_hidden}: use at "
                       "least 1 unit.")
        return out


@register_strategy
class Dann(TargetTextAlongside):
    """One stage on the labelled source with the target's training text (labels dropped)
    cycled alongside; a domain discriminator on the representation the classifier's head reads,
    behind a gradient-reversal layer. The saved model is the plain classifier."""

    name = "dann"
    scenarios = ("domain_adaptation",)
    summary = "domain-adversarial training: features that confuse a source/target discriminator"
    options_class = DannOptions

    def wrap(self, classifier: nn.Module) -> nn.Module:
        return DomainAdversarialModel(classifier, self.options.discriminator_hidden)

    def step_loss(self):
        return dann_loss(self.options.dann_weight)

    def settings_report(self) -> dict:
        return {"weight": self.options.dann_weight, "discriminator_hidden": self.options.discriminator_hidden}
