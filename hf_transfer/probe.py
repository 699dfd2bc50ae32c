"""Fit a classifier's output layer as a logistic regression on the frozen representation it
reads: the linear probe of LP-FT (Kumar et al., ICLR 2022), solved to convergence instead of
trained for a few epochs.

A few epochs of gradient descent from a random head move a few-shot classifier very little
(10 epochs of 16 examples are 10 updates). The probe's problem is convex and small (rows x
hidden size), so L-BFGS solves it in well under a second, for each L2 strength of a small grid;
the strength that scores best on the validation split is kept. The fitted layer is then the
start of fine-tuning (`lp_ft`), and the benchmarks' frozen-encoder reference arm."""

from __future__ import annotations

import logging
import time
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .metrics import classification_metrics
from .source_model import output_layer_name

logger = logging.getLogger(__name__)

# L2 strengths tried, on the mean loss of standardised features (sklearn's C = 1 / (l2 * rows)).
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def output_layer(model: nn.Module) -> nn.Linear:
    """The Linear layer that writes the logits of ``model`` (unwrapped from DDP or
    ``torch.compile``; under LoRA, PEFT's trainable copy of the head)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_submodule(output_layer_name(base))


def head_inputs(engine, model: nn.Module, layer: nn.Linear, split, batch_size: int):
    """(features, gold ids) of every row of ``split`` on every process, in row order: the input
    of ``layer`` with dropout off, as float64 on the CPU."""
    seen = []
    handle = layer.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        def read(model_, batch):
            seen.clear()
            model_(**batch)
            features = seen[0]
            return features[:, 0] if features.dim() == 3 else features

        features, labels = engine.predict_outputs(model, split, batch_size, read)
    finally:
        handle.remove()
    return features.double(), labels


def fit_logistic_regression(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float,
                            with_bias: bool = True, max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by L-BFGS: (weight [classes, features], bias; zeros
    without ``with_bias``)."""
    weight = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, requires_grad=with_bias)
    optimizer = torch.optim.LBFGS([weight, bias] if with_bias else [weight], lr=1.0, max_iter=max_iter,
                                  history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def fit_output_layer(engine, model: nn.Module, layer: nn.Linear, train, validation, batch_size: int,
                     metric: str = "macro_f1") -> dict:
    """Fit ``layer``, the :func:`output_layer` of ``model``, in place on ``train``'s frozen
    representation, picking the L2 strength on ``validation`` (``metric``, then its loss).
    Every process fits the same gathered rows, deterministically, so all end with the same
    weights. Returns what was chosen, for the results."""
    started = time.perf_counter()
    labels = engine.label_names
    x, y = head_inputs(engine, model, layer, train, batch_size)
    x_val, y_val = head_inputs(engine, model, layer, validation, batch_size)
    # Standardised features make one L2 grid fit every encoder; folded back into the layer
    # below. A layer without a bias (decoders' `score`) cannot absorb the centring: scaled only.
    with_bias = layer.bias is not None
    mean = x.mean(0) if with_bias else torch.zeros_like(x[0])
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    z, z_val = (x - mean) / std, (x_val - mean) / std
    best: Optional[tuple] = None
    for l2 in L2_GRID:
        weight, bias = fit_logistic_regression(z, y, len(labels), l2, with_bias)
        logits = z_val @ weight.T + bias
        scores = classification_metrics(logits.argmax(-1).tolist(), y_val.tolist(), labels)
        key = (scores[metric], -F.cross_entropy(logits, y_val).item())
        if best is None or key > best[0]:
            best = (key, l2, weight, bias, scores)
    (_, l2, weight, bias, scores) = best
    with torch.no_grad():
        layer.weight.copy_((weight / std).to(layer.weight.dtype))
        if with_bias:
            layer.bias.copy_((bias - (weight / std) @ mean).to(layer.bias.dtype))
    # No timing in the report: it lands in the stage history, which resume and the golden
    # fixtures compare exactly; the log line carries it.
    report = {"l2": l2, "train_rows": len(y), "features": x.shape[1],
              f"validation_{metric}": round(scores[metric], 4)}
    logger.info("Linear probe: logistic regression on the frozen %d-dim representation of %d rows, "
                "L2 %g chosen on validation (%s %.4f), %.1f s", x.shape[1], len(y), l2, metric,
                scores[metric], time.perf_counter() - started)
    return report
