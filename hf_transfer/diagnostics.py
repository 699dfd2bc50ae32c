"""Shift diagnostics: how far is the target from the source, before anything is trained?

:func:`diagnose` embeds a seeded sample of each dataset with a *frozen* pretrained encoder
(mean-pooled last hidden states) and measures:

``proxy_a_distance``
    2 (1 - 2 eps), where eps is the held-out error (5-fold cross-validation) of an
    L2-regularised logistic-regression *domain classifier* on the embeddings (Ben-David et
    al. 2007/2010; Ganin et al. 2016). 0: the domains cannot be told apart; 2: perfectly
    separable. Balanced: the same number of texts from each side. Clipped at 0.
``centroid_cosine``
    Cosine similarity of the two domains' mean embeddings (1: same centre). Unlike the
    A-distance it does not saturate when every pair of topics is separable.
``label_js_divergence``, ``label_jaccard``
    Jensen–Shannon divergence (base 2, in [0, 1]) between the label distributions, and the
    Jaccard index of the label sets: when they share no label, a new head is needed.
``token_jaccard``, ``target_token_coverage``
    Jaccard index of the sets of token ids (the encoder's tokenizer, no special tokens) in the
    two balanced samples, and the share of the target's token occurrences whose id also occurs
    in the source sample.
``logme_target`` (``logme_source``)
    LogME (You et al., ICML 2021): the log maximum evidence per example of a Bayesian linear
    model from the frozen features to the (one-hot) target labels, averaged over classes —
    how well the pretrained features fit the target task without fine-tuning. Higher is
    better; compare encoders on the same data, not values across datasets.

Everything is seeded and subsampled (``max_samples`` texts per side), so it costs the
forward passes over a few hundred texts. ``hf-transfer diagnose`` is the command-line face.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from typing import TYPE_CHECKING, Optional, Sequence, Union

import numpy as np
import torch

from .config import DatasetConfig, ModelConfig, from_dict

if TYPE_CHECKING:  # imported lazily: datasets is heavy
    import datasets

logger = logging.getLogger("hf_transfer")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MEASURES = ("proxy_a_distance", "domain_error", "centroid_cosine", "label_js_divergence",
            "label_jaccard", "token_jaccard", "target_token_coverage", "logme_target", "logme_source")


# --- the numbers (pure functions on arrays) ------------------------------------------------------


def proxy_a_distance(source: np.ndarray, target: np.ndarray, seed: int = 0, folds: int = 5,
                     C: float = 1.0) -> dict:
    """Proxy A-distance 2(1 - 2 eps) from a logistic-regression domain classifier's held-out
    error eps (``folds``-fold cross-validation on a balanced sample); returns
    ``{"value", "domain_error", "n_per_domain"}``."""
    rng = np.random.default_rng(seed)
    n = min(len(source), len(target))
    if n < folds:
        raise ValueError(f"need at least {folds} examples per domain, got {n}")
    xs = source[rng.permutation(len(source))[:n]]
    xt = target[rng.permutation(len(target))[:n]]
    x = np.concatenate([xs, xt]).astype(np.float64)
    y = np.concatenate([np.zeros(n), np.ones(n)])
    # Folds are balanced: each holds the same share of either domain.
    fold_of = np.concatenate([rng.permutation(n) % folds, rng.permutation(n) % folds])
    wrong = 0
    for k in range(folds):
        train, test = fold_of != k, fold_of == k
        mean, std = x[train].mean(0), x[train].std(0) + 1e-8
        w, b = _fit_logistic((x[train] - mean) / std, y[train], C)
        predicted = ((x[test] - mean) / std) @ w + b > 0
        wrong += int((predicted != y[test].astype(bool)).sum())
    error = wrong / (2 * n)
    return {"value": round(max(0.0, 2 * (1 - 2 * error)), 4), "domain_error": round(error, 4),
            "n_per_domain": n}


def _fit_logistic(x: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression, sum of log-losses + ||w||^2 / (2C) (scikit-learn's
    objective), fitted with L-BFGS in float64."""
    X = torch.from_numpy(np.ascontiguousarray(x))
    Y = torch.from_numpy(y)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], lr=1, max_iter=500, tolerance_grad=1e-6,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, Y, reduction="sum") \
            + w.dot(w) / (2 * C)
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach().numpy(), float(b.detach())


def logme(features: np.ndarray, labels: Sequence) -> float:
    """LogME of ``features`` (n x d) for the class ``labels`` (You et al., ICML 2021, Alg. 1):
    for each class, the evidence of a Bayesian linear regression from the features to the
    class's 0/1 indicator, with the prior precision alpha and noise precision beta set by
    the fixed-point iteration of MacKay's evidence framework; the mean over classes of the
    log evidence divided by n."""
    f = np.asarray(features, dtype=np.float64)
    labels = list(labels)
    n, d = f.shape
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError("LogME needs at least two classes")
    # F^T F = V diag(s) V^T: everything below needs only the eigen-decomposition.
    s, v = np.linalg.eigh(f.T @ f)
    s = np.clip(s, 0.0, None)
    evidences = [class_evidence(f, np.array([1.0 if label == c else 0.0 for label in labels]), s, v)[0]
                 for c in classes]
    return float(np.mean(evidences))


def class_evidence(f: np.ndarray, y: np.ndarray, s: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """LogME for one target vector ``y``: (log evidence / n, alpha, beta) at the fixed point
    of alpha = gamma / |m|^2, beta = (n - gamma) / |y - F m|^2, gamma = sum beta s / (alpha + beta s),
    where m is the posterior mean and ``s``, ``v`` the eigen-decomposition of F^T F."""
    n, d = f.shape
    projected = v.T @ (f.T @ y)  # V^T F^T y
    alpha, beta = 1.0, 1.0
    for _ in range(100):
        gamma = float((beta * s / (alpha + beta * s)).sum())
        m = v @ (beta * projected / (alpha + beta * s))
        new_alpha = gamma / (float(m @ m) + 1e-10)
        new_beta = (n - gamma) / (float(((y - f @ m) ** 2).sum()) + 1e-10)
        converged = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 1e-6
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    m = v @ (beta * projected / (alpha + beta * s))
    alpha_de, beta_de = float(m @ m), float(((y - f @ m) ** 2).sum())
    evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta)
                - 0.5 * float(np.log(alpha + beta * s).sum())
                - beta / 2 * beta_de - alpha / 2 * alpha_de - n / 2 * math.log(2 * math.pi))
    return evidence / n, alpha, beta


def js_divergence(p: dict, q: dict) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of two count or probability dicts."""
    keys = sorted(set(p) | set(q))
    a = np.array([p.get(k, 0) for k in keys], dtype=np.float64)
    b = np.array([q.get(k, 0) for k in keys], dtype=np.float64)
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x, y):
        mask = x > 0
        return float((x[mask] * np.log2(x[mask] / y[mask])).sum())

    return max(0.0, 0.5 * kl(a, m) + 0.5 * kl(b, m))


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def centroid_cosine(source: np.ndarray, target: np.ndarray) -> float:
    a, b = source.mean(0), target.mean(0)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


# --- data and model -----------------------------------------------------------------------------

DataSpec = Union[DatasetConfig, dict, "datasets.Dataset", "datasets.DatasetDict", Sequence[str]]


def load_texts(spec: DataSpec, role: str, seed: int = 0) -> tuple[list[str], Optional[list[str]]]:
    """Texts and labels (None when there are none) of a dataset, all splits together.

    ``spec`` is a :class:`DatasetConfig` (or its fields as a dict: loaded with the library's
    own loader, :func:`hf_transfer.data.loading.load_splits`, so ``builtin``, ``files``,
    ``filter`` etc. work as in a run; ``k_shot`` and sample caps are ignored: the diagnostics
    describe the domain, not a training budget), a ``datasets`` Dataset/DatasetDict with a
    ``text`` (and optionally ``label``) column, or a list of texts.
    """
    import datasets

    from .data.loading import load_splits

    if isinstance(spec, dict):
        spec = from_dict(DatasetConfig, spec, f"{role}")
    if isinstance(spec, DatasetConfig):
        spec = dataclasses.replace(spec, k_shot=None, max_train_samples=None, max_eval_samples=None)
        problems = spec.problems(role)
        if problems:
            from .config import format_problems
            from .errors import ConfigError

            raise ConfigError(format_problems(problems))
        spec = load_splits(spec, seed, role)
    if isinstance(spec, datasets.DatasetDict):
        spec = datasets.concatenate_datasets(list(spec.values()))
    if isinstance(spec, datasets.Dataset):
        if "text" not in spec.column_names:
            from .errors import DataError

            raise DataError(f"The {role} dataset has no `text` column (columns: {spec.column_names}).")
        from .data.columns import column_values

        labels = [str(x) for x in column_values(spec, "label")] if "label" in spec.column_names else None
        return column_values(spec, "text"), labels
    return [str(t) for t in spec], None


@torch.no_grad()
def embed(texts: Sequence[str], model, tokenizer, max_length: int = 128, batch_size: int = 32,
          text_prefix: str = "", pooling: str = "mean") -> np.ndarray:
    """Mean-pooled (or, ``pooling="last"``, last-token) last hidden states (padding excluded)
    of a frozen encoder, in text order: the representation a pooled classifier reads."""
    from .pooling import pool

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch together
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    model.eval()
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = tokenizer([text_prefix + texts[i] for i in rows], truncation=True, max_length=max_length,
                          padding=True, return_tensors="pt")
        out[rows] = pool(model(**batch).last_hidden_state, batch["attention_mask"], pooling).float().numpy()
    return out


def load_encoder(model: Union[str, ModelConfig]):
    """(encoder, tokenizer) of a model id or folder: packaged ids resolve offline, weights from
    safetensors only unless ``allow_pickle`` (as in training)."""
    from transformers import AutoModel

    from .modeling import load_pretrained, load_tokenizer

    cfg = model if isinstance(model, ModelConfig) else ModelConfig(name_or_path=model)
    encoder, _ = load_pretrained(AutoModel, cfg.name_or_path, cfg, revision=cfg.revision, dtype=torch.float32)
    return encoder, load_tokenizer(cfg)


def representation_pooling(cfg: ModelConfig, config) -> str:
    """How the diagnostics read the frozen encoder: the last token where `model.pooling`
    resolves to it (decoders), else the mean; a plain encoder's [CLS] pooler was never trained
    to compare sentences, so `cls` is read by the mean too."""
    from .modeling import resolve_pooling

    return "last" if resolve_pooling(cfg, config)[0] == "last" else "mean"


# --- the whole diagnosis ------------------------------------------------------------------------


def diagnose(source: DataSpec, target: DataSpec, model: Union[str, ModelConfig] = DEFAULT_MODEL, *,
             max_samples: int = 500, seed: int = 0, max_length: Optional[int] = None,
             batch_size: int = 32, text_prefix: Optional[str] = None) -> dict:
    """Shift diagnostics of ``source`` -> ``target`` with the frozen encoder ``model``.

    Returns a dict of the measures in :data:`MEASURES` (None where one does not apply, e.g.
    label measures without labels), ``readings`` (one line per measure), ``samples`` and
    ``label_counts``.
    """
    cfg = model if isinstance(model, ModelConfig) else ModelConfig(name_or_path=model)
    max_length = max_length or cfg.max_length
    prefix = cfg.text_prefix if text_prefix is None else text_prefix
    rng = np.random.default_rng(seed)
    texts, labels = {}, {}
    for role, spec in (("source", source), ("target", target)):
        all_texts, all_labels = load_texts(spec, role, seed)
        if len(all_texts) < 10:
            from .errors import DataError

            raise DataError(f"The {role} data has {len(all_texts)} texts: the diagnostics need at least 10.")
        keep = np.sort(rng.permutation(len(all_texts))[:max_samples])
        texts[role] = [all_texts[i] for i in keep]
        labels[role] = [all_labels[i] for i in keep] if all_labels is not None else None
    encoder, tokenizer = load_encoder(cfg)
    pooling = representation_pooling(cfg, encoder.config)
    vectors = {role: embed(texts[role], encoder, tokenizer, max_length, batch_size, prefix, pooling)
               for role in texts}
    pad = proxy_a_distance(vectors["source"], vectors["target"], seed=seed)
    n = pad["n_per_domain"]
    tokens = {role: _token_ids(texts[role][:n], tokenizer, max_length, prefix) for role in texts}
    source_ids, target_ids = set(tokens["source"]), set(tokens["target"])
    counts = {role: dict(Counter(labels[role])) if labels[role] else None for role in texts}
    both = counts["source"] is not None and counts["target"] is not None
    result = {
        "model": cfg.name_or_path,
        "seed": seed,
        "pooling": pooling,
        "samples": {role: len(texts[role]) for role in texts},
        "proxy_a_distance": pad["value"],
        "domain_error": pad["domain_error"],
        "centroid_cosine": round(centroid_cosine(vectors["source"], vectors["target"]), 4),
        "label_js_divergence": round(js_divergence(counts["source"], counts["target"]), 4) if both else None,
        "label_jaccard": round(jaccard(set(counts["source"]), set(counts["target"])), 4) if both else None,
        "token_jaccard": round(jaccard(source_ids, target_ids), 4),
        "target_token_coverage": round(sum(1 for t in tokens["target"] if t in source_ids)
                                       / max(len(tokens["target"]), 1), 4),
        "logme_target": _logme_or_none(vectors["target"], labels["target"]),
        "logme_source": _logme_or_none(vectors["source"], labels["source"]),
        "label_counts": counts,
    }
    result["readings"] = readings(result)
    return result


def _token_ids(texts: list[str], tokenizer, max_length: int, prefix: str) -> list[int]:
    encoded = tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length,
                        add_special_tokens=False)["input_ids"]
    special = set(tokenizer.all_special_ids)
    return [i for ids in encoded for i in ids if i not in special]


def _logme_or_none(features: np.ndarray, labels: Optional[list]) -> Optional[float]:
    if not labels or len(set(labels)) < 2:
        return None
    return round(logme(features, labels), 4)


def readings(result: dict) -> dict:
    """One line per measure, saying what its value means here."""
    out = {}
    a = result["proxy_a_distance"]
    out["proxy_a_distance"] = (
        f"a linear probe tells the domains apart {100 * (1 - result['domain_error']):.0f}% of the time: "
        + ("hard to tell apart, little shift of P(X)" if a < 0.5 else
           "moderate shift of P(X)" if a < 1.5 else
           "nearly separable: large shift of P(X) (saturates for any two distinct topics; see centroid_cosine)"))
    c = result["centroid_cosine"]
    out["centroid_cosine"] = ("the domains' average embeddings " + (
        "nearly coincide" if c > 0.95 else "are close" if c > 0.85 else "differ" if c > 0.6 else "are far apart")
        + " (1 = same centre)")
    js, jac = result["label_js_divergence"], result["label_jaccard"]
    if js is None:
        out["label_js_divergence"] = "not measured: one side has no labels"
    elif jac == 0:
        out["label_js_divergence"] = "no shared label: the target needs a new head (label-space scenario)"
    else:
        out["label_js_divergence"] = ("label distributions " + (
            "match" if js < 0.02 else "differ somewhat" if js < 0.1 else "differ strongly")
            + " (0 = same, 1 = disjoint): expect the source's class priors to be off")
    out["label_jaccard"] = ("not measured" if jac is None else
                            "same label set" if jac == 1 else
                            "no shared label" if jac == 0 else f"{jac:.0%} of the labels are shared")
    cov = result["target_token_coverage"]
    out["token_jaccard"] = (f"{result['token_jaccard']:.0%} of the token types of the two samples are shared "
                            "(depends on sample size and text length)")
    out["target_token_coverage"] = (f"{cov:.0%} of the target's tokens also occur in the source sample"
                                    + (": low lexical overlap" if cov < 0.8 else ""))
    for key in ("logme_target", "logme_source"):
        value = result[key]
        role = key.split("_")[1]
        out[key] = (f"not measured: the {role} has no labels" if value is None else
                    f"fit of the frozen features to the {role} labels (higher is better; compare encoders "
                    f"on the same data, not across datasets)")
    return out


def format_diagnostics(results: Union[dict, list[dict]], title: str = "") -> str:
    """A Markdown table: one row per measure, one value column per model, a reading (for the
    first model)."""
    results = [results] if isinstance(results, dict) else list(results)
    models = [r["model"] for r in results]
    header = "| measure | " + " | ".join(f"`{m}`" for m in models) + " | reading |"
    lines = ([f"**{title}**", ""] if title else []) + [header, "|---|" + "---:|" * len(models) + "---|"]
    for key in MEASURES:
        if key == "domain_error":
            continue
        values = [r.get(key) for r in results]
        reading = results[0]["readings"].get(key, "")
        cells = " | ".join("—" if v is None else f"{v:.4f}" for v in values)
        lines.append(f"| {key} | {cells} | {reading} |")
    first = results[0]
    lines.append("")
    lines.append(f"Samples: source {first['samples']['source']}, target {first['samples']['target']} texts "
                 f"(seed {first['seed']}); A-distance and token overlap on {min(first['samples'].values())} "
                 "per side.")
    return "\n".join(lines)
