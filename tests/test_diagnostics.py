"""Shift diagnostics with known answers: the measures on crafted arrays, LogME against the
closed-form evidence, `diagnose` and `hf-transfer diagnose` on the tiny model and data."""

import json
import math
import random

import datasets
import numpy as np
import pytest

from hf_transfer.cli import main as cli
from hf_transfer.diagnostics import (class_evidence, diagnose, format_diagnostics, jaccard,
                                     js_divergence, logme, proxy_a_distance)
from tiny_assets import COMMON_WORDS

# --- the measures on arrays -----------------------------------------------------------------------


def test_proxy_a_distance_on_gaussians():
    rng = np.random.default_rng(0)
    same = proxy_a_distance(rng.normal(size=(300, 16)), rng.normal(size=(300, 16)), seed=0)
    shifted = proxy_a_distance(rng.normal(size=(300, 16)), rng.normal(size=(300, 16)) + 3.0, seed=0)
    assert same["value"] < 0.3 and abs(same["domain_error"] - 0.5) < 0.1
    assert shifted["value"] > 1.9 and shifted["domain_error"] < 0.03
    assert shifted["n_per_domain"] == 300


def test_label_measures():
    assert js_divergence({"a": 5, "b": 5}, {"a": 1, "b": 1}) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence({"a": 3}, {"b": 7}) == pytest.approx(1.0)
    assert 0 < js_divergence({"a": 9, "b": 1}, {"a": 1, "b": 9}) < 1
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)


def _blobs(rng, n_per_class, separation, dim=20, classes=3):
    means = rng.normal(size=(classes, dim)) * separation
    labels = [c for c in range(classes) for _ in range(n_per_class)]
    features = np.stack([means[c] + rng.normal(size=dim) for c in labels])
    return features, labels


def test_logme_prefers_separable_features():
    rng = np.random.default_rng(0)
    separable, labels = _blobs(rng, 80, separation=4.0)
    random_features = rng.normal(size=separable.shape)
    weak, _ = _blobs(rng, 80, separation=0.5)
    scores = [logme(x, labels) for x in (separable, weak, random_features)]
    assert scores[0] > scores[1] > scores[2]


def test_logme_is_the_maximum_of_the_closed_form_evidence():
    """At LogME's alpha, beta the value is log N(y | 0, I/beta + F F^T/alpha) / n, and moving
    alpha or beta away from the fixed point only lowers it."""
    rng = np.random.default_rng(1)
    f, labels = _blobs(rng, 20, separation=1.0, dim=8)
    y = np.array([1.0 if c == 0 else 0.0 for c in labels])
    s, v = np.linalg.eigh(f.T @ f)
    value, alpha, beta = class_evidence(f, y, s, v)

    def closed_form(a, b):
        n = len(y)
        cov = np.eye(n) / b + f @ f.T / a
        _, logdet = np.linalg.slogdet(cov)
        return -0.5 * (n * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(cov, y)) / n

    assert value == pytest.approx(closed_form(alpha, beta), abs=1e-8)
    for a, b in ((alpha * 1.5, beta), (alpha / 1.5, beta), (alpha, beta * 1.5), (alpha, beta / 1.5)):
        assert closed_form(a, b) < value


# --- diagnose() with the tiny encoder -----------------------------------------------------------


def _random_texts(words, n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(12)) for _ in range(n)]


def test_identical_distributions_are_near_zero_and_disjoint_vocabularies_far(tiny_model, tiny_data):
    rows = datasets.load_dataset("csv", data_files=str(tiny_data["source"]))["train"].shuffle(seed=0)
    half = len(rows) // 2
    same = diagnose(rows.select(range(half)), rows.select(range(half, len(rows))), str(tiny_model),
                    max_samples=200, max_length=32)
    assert same["proxy_a_distance"] < 0.4
    assert same["label_jaccard"] == 1.0 and same["label_js_divergence"] < 0.02
    assert same["target_token_coverage"] > 0.95 and same["centroid_cosine"] > 0.99
    assert same["logme_target"] is not None and same["readings"]["label_jaccard"] == "same label set"

    words = sorted(set(COMMON_WORDS))
    left, right = words[:40], words[-40:]  # two disjoint vocabularies of 40 words
    far = diagnose(_random_texts(left, 150, 0), _random_texts(right, 150, 1), str(tiny_model),
                   max_samples=150, max_length=32)
    assert far["token_jaccard"] == 0.0 and far["target_token_coverage"] == 0.0
    assert far["proxy_a_distance"] > 1.5
    assert far["proxy_a_distance"] > same["proxy_a_distance"] + 1.0
    assert far["label_js_divergence"] is None and far["logme_target"] is None  # no labels
    assert "no labels" in far["readings"]["label_js_divergence"]
    table = format_diagnostics([same, far])
    assert table.count("| proxy_a_distance |") == 1 and "logme_target" in table


def test_diagnose_cli_on_tiny_files(tiny_model, tiny_data, tmp_path, capsys):
    out = tmp_path / "diag.json"
    code = cli(["diagnose", "--source.files.train", str(tiny_data["source"]),
                "--target.files.train", str(tiny_data["target"]), "--model", str(tiny_model),
                "--max_samples", "120", "--max_length", "32", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| measure |" in printed and "proxy_a_distance" in printed and "files -> files" in printed
    result = json.loads(out.read_text())
    assert result["samples"] == {"source": 120, "target": 120}
    # airline vs apple tiny tweets: same labels and templates, other nouns and brands
    assert result["label_jaccard"] == 1.0
    assert 0.3 < result["target_token_coverage"] < 1.0
    assert result["proxy_a_distance"] > 0.6  # separable from the domain nouns alone (identical: < 0.4)
    assert cli(["diagnose", "--bogus", "1"]) == 1
    assert "not an option of `hf-transfer diagnose`" in capsys.readouterr().err
