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
from ..data.tokenize import make_loader
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

    def __init__(self, classifier: nn.Module, hidden: int, objective: str = "confusion"):
        super().__init__()
        self.classifier = classifier
        self.discriminator = DomainDiscriminator(classifier.config.hidden_size, hidden)
        self.objective = objective
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
        if self.objective == "reversal":
            logits = self.discriminator(reverse_gradient(features, grl_lambda)).squeeze(-1)
            domain_loss = F.binary_cross_entropy_with_logits(logits.float(), domains)
            adversarial = domain_loss.new_zeros(())  # inside domain_loss, through the reversal
        else:
            # The discriminator learns on features it cannot move; the encoder is pulled towards
            # the discriminator's indecision (probability 1/2 for every example of either
            # domain). Unlike the reversed gradient, that pull is bounded and vanishes once the
            # discriminator cannot tell the domains apart.
            logits = self.discriminator(features.detach()).squeeze(-1)
            domain_loss = F.binary_cross_entropy_with_logits(logits.float(), domains)
            frozen = frozen_forward(self.discriminator, features).squeeze(-1)
            adversarial = grl_lambda * F.binary_cross_entropy_with_logits(
                frozen.float(), torch.full_like(domains, 0.5))
        return DannOutput(loss=source.loss + domain_loss + adversarial, logits=source.logits,
                          classification_loss=source.loss.detach(), domain_loss=domain_loss.detach())


def frozen_forward(discriminator: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``discriminator(x)`` with its parameters detached: the gradient reaches ``x`` only."""
    for layer in discriminator:
        x = F.linear(x, layer.weight.detach(), layer.bias.detach()) if isinstance(layer, nn.Linear) else layer(x)
    return x


# Rows of each held-out domain the domain classifiers are scored on (every process scores the
# same rows, so no gathering is needed and each process reports the same numbers).
HELD_OUT_ROWS = 256


@torch.no_grad()
def held_out_features(model: DomainAdversarialModel, split, tokenizer, batch_size: int) -> torch.Tensor:
    """The final classifier's features (the head's input) of up to HELD_OUT_ROWS rows, float32."""
    device = next(model.parameters()).device
    split = split.select(range(min(len(split), HELD_OUT_ROWS)))
    parts = []
    for batch in make_loader(split, tokenizer, batch_size, shuffle=False):
        batch = {k: v.to(device) for k, v in batch.items() if k not in ("idx", "labels")}
        parts.append(features_only(model.classifier, batch, "dann").float())
    return torch.cat(parts)


def probe_accuracy(source: torch.Tensor, target: torch.Tensor, steps: int = 300) -> float:
    """A fresh logistic regression (standardised features, zero start: deterministic) trained
    to tell the domains apart on every other row and scored on the rest (balanced accuracy):
    how much the features still show the domain, whatever the co-trained discriminator learnt.
    0.5: nothing; 1.0: the domains are linearly separable."""
    x = torch.cat([source, target]).cpu()
    y = torch.cat([torch.zeros(len(source)), torch.ones(len(target))])
    train = torch.arange(len(x)) % 2 == 0
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    weights = torch.zeros(x.shape[1] + 1, requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=0.05)
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            logits = x[train] @ weights[:-1] + weights[-1]
            loss = F.binary_cross_entropy_with_logits(logits, y[train]) + 1e-3 * weights[:-1].pow(2).sum()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        right = ((x[~train] @ weights[:-1] + weights[-1] > 0).float() == y[~train])[:, None]
    held = y[~train]
    return round(0.5 * (right[held == 0].float().mean() + right[held == 1].float().mean()).item(), 4)


def domain_separability(model: DomainAdversarialModel, held_out: dict, tokenizer, batch_size: int) -> dict:
    """On held-out source and target validation texts (never trained on), by the final
    classifier's features: the trained discriminator's accuracy per domain and balanced, and a
    fresh linear probe's balanced accuracy."""
    was_training = model.training
    model.eval()
    features = {domain: held_out_features(model, split, tokenizer, batch_size) for domain, split in held_out.items()}
    with torch.no_grad():
        right = {domain: ((model.discriminator(f).squeeze(-1) > 0).long() == label).float().mean().item()
                 for label, (domain, f) in enumerate(features.items())}
    model.train(was_training)
    return {"discriminator": {**{d: round(v, 4) for d, v in right.items()},
                              "balanced": round(sum(right.values()) / len(right), 4)},
            "linear_probe": probe_accuracy(features["source"], features["target"]),
            "rows": {d: len(f) for d, f in features.items()}}


def dann_loss(weight: float):
    """A ``Stage.loss_fn`` for :class:`DomainAdversarialModel` with the scheduled lambda."""
    def loss_fn(model, batch: dict, target_batch: dict, progress: float) -> torch.Tensor:
        return model(**batch, target_batch=target_batch, grl_lambda=dann_lambda(progress, weight)).loss

    return loss_fn



DANN_OBJECTIVES = ("confusion", "reversal")


@dataclass
class DannOptions(StrategyOptions):
    dann_weight: float = setting(
        1.0, "`dann`: weight of the adversarial gradient. The reversal layer multiplies the "
        "discriminator's gradient by -dann_weight * (2 / (1 + exp(-10 p)) - 1), p = the "
        "fraction of training done (Ganin et al. 2016)."
    )
    dann_objective: str = setting(
        "confusion", "`dann`: what the encoder is trained towards. `confusion`: the "
        "discriminator's indecision (probability 1/2 for every text; Tzeng et al. 2015), a "
        "bounded pull that vanishes once the domains look alike. `reversal`: the discriminator's "
        "error, through the gradient-reversal layer (Ganin et al. 2016), unbounded: measured to "
        "collapse the classifier to one class (docs/benchmarks/domain_adaptation.md)."
    )
    discriminator_hidden: int = setting(
        256, "`dann`: hidden units of the domain discriminator (Linear-ReLU-Dropout-Linear)."
    )

    def problems(self, path: str) -> list[str]:
        out = []
        if self.dann_weight < 0:
            out.append(f"`{path}.dann_weight` is {self.dann_weight}: use a value of at least 0.")
        if self.dann_objective not in DANN_OBJECTIVES:
            out.append(f"`{path}.dann_objective` is {self.dann_objective!r}: choose one of "
                       f"{', '.join(DANN_OBJECTIVES)}.")
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
    domain_accuracy: Optional[dict] = None  # set when its stage ends (after_stage)

    def wrap(self, classifier: nn.Module) -> nn.Module:
        return DomainAdversarialModel(classifier, self.options.discriminator_hidden, self.options.dann_objective)

    def step_loss(self):
        return dann_loss(self.options.dann_weight)

    def after_stage(self, ctx, wrapper: nn.Module) -> None:
        held_out = {"source": ctx.data.source["validation"], "target": ctx.data.target_text["validation"]}
        self.domain_accuracy = domain_separability(wrapper, held_out, ctx.engine.tokenizer,
                                                   self.config.training.eval_batch_size)

    def settings_report(self) -> dict:
        return {"weight": self.options.dann_weight, "discriminator_hidden": self.options.discriminator_hidden,
                "domain_accuracy": self.domain_accuracy}
