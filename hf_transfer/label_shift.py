"""Label-shift correction: the target's label distribution P(Y) differs from the source's.

A classifier trained on the source predicts with the source's class frequencies built in: 63%
of airline tweets are negative, 57% of Apple tweets neutral, so an airline classifier calls too
many Apple tweets negative. When only P(Y) changes (P(X|Y) stays), Bayes' rule gives the target
posterior from the source one: p_t(y|x) ∝ p_s(y|x) · π_t(y) / π_s(y). The target prior π_t is
unknown, but it can be estimated from unlabelled target text by EM (Saerens, Latinne &
Decaestecker, "Adjusting the outputs of a classifier to new a priori probabilities", Neural
Computation 2002): start from π_s, re-weight the posteriors, take their mean as the new prior,
repeat until it settles.

EM trusts the posteriors: an over-confident network makes it run to a corner (one class gets
the whole prior). So the logits are calibrated first on the source validation split, by a
temperature and one bias per class fitted to its labels (bias-corrected temperature scaling,
"BCTS": Alexandari, Kundaje & Shrikumar, "Maximum likelihood with bias-corrected calibration is
hard-to-beat at label shift adaptation", ICML 2020), and the source prior is that split's label
distribution. A weak classifier gets a high temperature, flat posteriors, and a small correction.

The correction is folded into the classifier's output layer (weights / T; bias / T + b +
log π_t/π_s), so the saved model carries it and loads anywhere without this library.
"""

from __future__ import annotations

import logging
import torch

from .probe import output_layer

logger = logging.getLogger(__name__)


def em_target_prior(probs: torch.Tensor, source_prior: torch.Tensor, max_iter: int = 1000,
                    tol: float = 1e-8) -> torch.Tensor:
    """The target's class prior by EM on source-classifier posteriors ``probs`` (rows: target
    texts) and the prior ``source_prior`` the classifier was trained with."""
    probs = probs.double()
    source_prior = source_prior.double().clamp_min(1e-12)
    prior = source_prior.clone()
    for _ in range(max_iter):
        weighted = probs * (prior / source_prior)
        posteriors = weighted / weighted.sum(-1, keepdim=True)
        new_prior = posteriors.mean(0)
        if (new_prior - prior).abs().max() < tol:
            prior = new_prior
            break
        prior = new_prior
    return prior.float()


# Bounds of the fitted temperature: a small validation split that the logits separate perfectly
# would otherwise drive it to 0 (infinitely confident posteriors, EM in a corner).
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.25, 20.0


def fit_calibration(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Temperature ``T`` and per-class bias ``b`` minimising the NLL of ``logits / T + b`` on
    held-out ``labels`` (BCTS); ``T`` kept within [MIN_TEMPERATURE, MAX_TEMPERATURE]."""
    low, high = torch.tensor(MIN_TEMPERATURE).log(), torch.tensor(MAX_TEMPERATURE).log()
    raw = torch.zeros(1, requires_grad=True)
    bias = torch.zeros(logits.shape[-1], requires_grad=True)
    optimizer = torch.optim.LBFGS([raw, bias], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def temperature():  # a smooth map of the real line onto [low, high] in log space
        return (low + (high - low) * torch.sigmoid(raw)).exp()

    def nll():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / temperature() + bias, labels)
        loss.backward()
        return loss

    with torch.no_grad():  # start at T = 1
        raw.fill_(float(torch.logit(-low / (high - low))))
    optimizer.step(nll)
    return temperature().item(), bias.detach()


def fold_into_output_layer(model: torch.nn.Module, temperature: float, bias: torch.Tensor) -> None:
    """Make the classifier output ``logits / temperature + bias``, in place."""
    layer = output_layer(model)
    if layer.bias is None:
        raise ValueError("the classifier's output layer has no bias to carry the correction")
    with torch.no_grad():
        layer.weight.div_(temperature)
        layer.bias.div_(temperature).add_(bias.to(layer.bias.device, layer.bias.dtype))


def has_output_bias(model: torch.nn.Module) -> bool:
    return output_layer(model).bias is not None


def correct_label_shift(engine, model, data, eval_sets: dict, batch_size: int, method: str) -> dict:
    """Calibrate on the source validation split, estimate the target prior from the target's
    training texts (their labels unused) by ``method`` (``em``, or ``mean``: the calibrated
    posteriors' mean), fold both into ``model``'s output layer, and return what results.json
    records: the calibration, the priors, the scores before the correction. A classifier that
    predicts one class for every source validation text is left as it is (``applied`` false,
    with the reason)."""
    from .training import unwrap

    names = list(data.labels.names)
    logits, labels = engine.predict_logits(model, data.source["validation"], batch_size)
    temperature, calibration_bias = fit_calibration(logits, labels)
    predicted = (logits / temperature + calibration_bias).argmax(-1).unique()
    if len(predicted) < 2:
        # Its posteriors say nothing about the class, only the prior: re-weighting them moves
        # every text to whichever class the estimate favours (measured: worse, not better).
        reason = (f"the classifier predicts one class ({names[int(predicted[0])]!r}) for every source "
                  "validation text, so its outputs carry no estimate of the target's classes")
        logger.warning("`strategy.label_shift` %s not applied: %s. Train the source classifier longer "
                       "or at another learning rate.", method, reason)
        return {"method": method, "applied": False, "reason": reason}
    # Smoothed: a class missing from the validation split must not get a zero prior.
    source_prior = (torch.bincount(labels, minlength=len(names)).float() + 1) / (len(labels) + len(names))
    target_logits, _ = engine.predict_logits(model, data.target["train"], batch_size)
    posteriors = torch.softmax(target_logits / temperature + calibration_bias, -1)
    target_prior = em_target_prior(posteriors, source_prior) if method == "em" else posteriors.mean(0)
    before = engine.evaluate(model, eval_sets, batch_size)
    fold_into_output_layer(unwrap(engine.accelerator, model), temperature,
                           calibration_bias + target_prior.clamp_min(1e-6).log() - source_prior.log())
    report = {
        "method": method, "applied": True,
        "calibration": {"on": "source/validation", "temperature": round(temperature, 4),
                        "bias": [round(float(b), 4) for b in calibration_bias]},
        "estimated_from": f"target/train: {len(data.target['train'])} texts, labels unused",
        "source_prior": _named(source_prior, names),
        "estimated_target_prior": _named(target_prior, names),
        # Known here, never used: how close the estimate came.
        "target_train_prior": _named(_prior(data.sizes["target"]["label_counts"]["train"], names), names),
        "before_correction": {name: {k: m[k] for k in ("accuracy", "macro_f1") if k in m}
                              for name, m in before.items() if "[" not in name},
    }
    logger.info("Label shift (%s on %d target texts, temperature %.2f): source prior %s -> estimated "
                "target prior %s", method, len(data.target["train"]), temperature, report["source_prior"],
                report["estimated_target_prior"])
    return report


def _prior(counts: dict, names: list[str]) -> torch.Tensor:
    values = torch.tensor([float(counts.get(name, 0)) for name in names])
    return values / values.sum().clamp_min(1.0)


def _named(prior: torch.Tensor, names: list[str]) -> dict:
    return {name: round(float(p), 4) for name, p in zip(names, prior)}
