"""The representation a classifier's head reads, for strategies that act on it (DANN's
discriminator, CORAL's covariance alignment)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


def classifier_head(model: nn.Module, strategy: str = "this strategy") -> nn.Module:
    """The first module of the classification head (its input is the pooled representation):
    ``pre_classifier`` (DistilBERT) or ``classifier`` (BERT, RoBERTa, ELECTRA, DeBERTa, ...)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for name in ("pre_classifier", "classifier"):
        head = getattr(base, name, None)
        if isinstance(head, nn.Module):
            return head
    raise ConfigError(
        f"`{strategy}` needs the classifier's head to read its representation, but this "
        f"{base.config.model_type} model has no `classifier` module: use another encoder."
    )


def classify_with_features(classifier: nn.Module, batch: dict, strategy: str = "this strategy"):
    """``classifier(**batch)`` and the representation its head read, ``(batch, features)``:
    BERT's pooler output; for heads that read the whole sequence (RoBERTa), its first token."""
    seen = []

    def keep_input(module, args, kwargs):
        seen.append(args[0] if args else next(iter(kwargs.values())))

    handle = classifier_head(classifier, strategy).register_forward_pre_hook(keep_input, with_kwargs=True)
    try:
        output = classifier(**batch)
    finally:
        handle.remove()
    features = seen[0]
    return output, features[:, 0] if features.dim() == 3 else features


def features_only(classifier: nn.Module, batch: dict, strategy: str = "this strategy") -> torch.Tensor:
    """The representation the head reads for an unlabelled batch (the logits are discarded)."""
    return classify_with_features(classifier, batch, strategy)[1]
