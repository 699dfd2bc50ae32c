"""When to transfer: the gain of a transfer run over its baselines, and a verdict (pure
functions; the nested runs themselves are run by :mod:`hf_transfer.run.comparison`).

``strategy.baselines`` names baselines that run in the same invocation as the transfer run,
each as a *nested run* of the same recipe class with a changed configuration, in
``output.dir/baselines/<arm>_seed<N>/`` (no saved model, no push, no report):

``target_only``
    The same encoder and tuning method, trained only on the labelled target training data the
    run has (the target stage alone, from the pretrained encoder). What you would get without
    any source data: the reference for *negative transfer*.
``source_only``
    The source stage alone (for strategies that add a target stage or another step after it).

With ``strategy.baseline_seeds: k`` every arm runs on seeds ``training.seed`` … ``+k-1``; the
transfer strategy itself reruns on the extra seeds (``baselines/transfer_seed<N>/``) so each
gain is paired with a transfer run of the same seed.

The verdict rule (:func:`judge`), on ``target/test`` and the run's ``metric_for_best``:

    gain  = mean over seeds(transfer) - mean over seeds(baseline)
    sigma = sqrt(sigma_seed^2 + sigma_test^2)
        sigma_seed = standard error of the difference of the two means over seeds,
                     sqrt(s_t^2 / k_t + s_b^2 / k_b), s the sample std of an arm's k seeds
                     (0 with one seed: then only the test-set term is known)
        sigma_test = sqrt((p_t (1 - p_t) + p_b (1 - p_b)) / n), the binomial standard error of
                     the difference of two scores measured on n test examples (for macro-F1 the
                     same formula, an approximation)
    noise = max(0.01, 2 sigma)
    gain > noise: positive transfer; gain < -noise: negative transfer; else negligible.

Two sigma is a rough 95% band; treating the two arms as independent (they share the test set
and the seed) makes it conservative, so a "positive" or "negative" verdict is a real effect
at this budget, and "negligible" means this run cannot tell the two apart. The floor of one
point keeps a large test set from calling a 0.2-point difference a win.

A negligible verdict says what would decide it (:func:`what_would_decide`): more seeds shrink
``sigma_seed`` (as 1/sqrt(k)), never ``sigma_test`` (every seed is scored on the same test
examples), so either about k seeds per arm would, or only a larger test split would.
"""

from __future__ import annotations

import logging
import math
from typing import Optional, Sequence

logger = logging.getLogger("hf_transfer")

POSITIVE = "positive transfer"
NEGLIGIBLE = "negligible (within noise)"
NEGATIVE = "negative transfer"
MIN_EFFECT = 0.01  # the smallest gain called an effect, whatever the noise
METRICS = ("accuracy", "macro_f1")
SPLIT = "target/test"
TRANSFER_ARM = "transfer"
RULE = ("gain = mean(transfer) - mean(baseline) on target/test; noise = max(0.01, 2*sqrt("
        "sigma_seed^2 + sigma_test^2)) with sigma_seed = sqrt(s_t^2/k_t + s_b^2/k_b) over seeds and sigma_test "
        "= sqrt((p_t(1-p_t) + p_b(1-p_b))/n); positive if gain > noise, negative if gain < -noise, "
        "else negligible")


# --- the verdict (pure functions) --------------------------------------------------------------


def arm_stats(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (None for one value) and the values of one arm."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("an arm needs at least one score")
    mean = sum(values) / len(values)
    std = _std(values)
    return {"mean": round(mean, 6), "std": None if std is None else round(std, 6),
            "values": [round(v, 6) for v in values]}


def judge(transfer: Sequence[float], baseline: Sequence[float], n_test: Optional[int] = None,
          min_effect: float = MIN_EFFECT) -> dict:
    """The gain of ``transfer`` over ``baseline`` (scores of one metric, one per seed), its
    noise band and the verdict, by the rule in this module's docstring.

    Seeds are paired by position when both arms have the same number of scores; the spread
    of the paired gains is reported as ``gain_std``.
    """
    t, b = [float(v) for v in transfer], [float(v) for v in baseline]
    if not t or not b:
        raise ValueError("both arms need at least one score")
    mt, mb = sum(t) / len(t), sum(b) / len(b)
    gain = mt - mb
    st, sb = _std(t), _std(b)
    seed_sd = math.sqrt(st ** 2 / len(t) + sb ** 2 / len(b)) if st is not None and sb is not None else None
    test_se = None
    if n_test:
        pt, pb = min(max(mt, 0.0), 1.0), min(max(mb, 0.0), 1.0)
        test_se = math.sqrt((pt * (1 - pt) + pb * (1 - pb)) / n_test)
    sigma = math.sqrt((seed_sd or 0.0) ** 2 + (test_se or 0.0) ** 2)
    noise = max(min_effect, 2 * sigma)
    verdict = POSITIVE if gain > noise else NEGATIVE if gain < -noise else NEGLIGIBLE
    paired = [x - y for x, y in zip(t, b)] if len(t) == len(b) else None
    gain_std = _std(paired) if paired else None
    return {
        "gain": round(gain, 6),
        "gain_std": None if gain_std is None else round(gain_std, 6),
        "paired_gains": None if paired is None else [round(g, 6) for g in paired],
        "sigma_seed": None if seed_sd is None else round(seed_sd, 6),
        "sigma_test": None if test_se is None else round(test_se, 6),
        "noise": round(noise, 6),
        "verdict": verdict,
        "to_decide": None if verdict != NEGLIGIBLE else what_would_decide(gain, st, sb, test_se, min_effect),
    }


def what_would_decide(gain: float, std_transfer: Optional[float], std_baseline: Optional[float],
                      test_se: Optional[float], min_effect: float = MIN_EFFECT) -> dict:
    """For a negligible verdict: the fewest seeds per arm at which a gain of this size, at the
    measured spread, would leave the noise band (``seeds``; None when no number of seeds would)
    and why, in words."""
    test_se = test_se or 0.0
    if abs(gain) <= min_effect:
        return {"seeds": None, "why": f"a gain under {min_effect:.2f} is not called an effect, however many seeds"}
    if std_transfer is None or std_baseline is None:
        return {"seeds": None, "why": "one seed: run 2 or more (`strategy.baseline_seeds`) to measure the seed spread"}
    room = (abs(gain) / 2) ** 2 - test_se ** 2  # what the seed term may take up
    if room <= 0:
        return {"seeds": None, "why": f"the test split's own noise (±{2 * test_se:.3f}) is larger than the gain: "
                                      "more seeds cannot decide it, a larger target test split can"}
    seeds = max(2, math.floor((std_transfer ** 2 + std_baseline ** 2) / room) + 1)
    return {"seeds": seeds, "why": f"about {seeds} seeds per arm would tell a gain of {abs(gain):.3f} at this "
                                   "spread from noise (`strategy.baseline_seeds`)"}


def transfer_section(arms: dict[str, list[dict]], seeds: list[int], decide_on: str = "macro_f1",
                     n_test: Optional[int] = None, split: str = SPLIT) -> dict:
    """results.json's ``transfer`` section from the ``split`` rows of every arm.

    ``arms``: ``{"transfer": [row per seed], "target_only": [...], "source_only": [...]}``, each
    row holding ``accuracy`` and ``macro_f1`` (an eval-matrix row). The verdict compares the
    transfer run with ``target_only`` when it ran (negative transfer), else with ``source_only``.
    """
    if TRANSFER_ARM not in arms or len(arms) < 2:
        raise ValueError("need the transfer arm and at least one baseline")
    if decide_on not in METRICS:
        raise ValueError(f"decide_on must be one of {METRICS}")
    reference = "target_only" if "target_only" in arms else next(a for a in arms if a != TRANSFER_ARM)
    scores = {arm: {m: [float(row[m]) for row in rows] for m in METRICS} for arm, rows in arms.items()}
    gains = {arm: {m: judge(scores[TRANSFER_ARM][m], scores[arm][m], n_test) for m in METRICS}
             for arm in arms if arm != TRANSFER_ARM}
    decisive = gains[reference][decide_on]
    verdict = decisive["verdict"]
    spread = (f" ± {decisive['gain_std']:.3f} over {len(seeds)} seeds" if decisive["gain_std"] is not None
              else " (1 seed)")
    summary = (f"{split} {decide_on}: transfer {_mean(scores[TRANSFER_ARM][decide_on]):.3f} vs "
               f"{reference} {_mean(scores[reference][decide_on]):.3f}, gain "
               f"{decisive['gain']:+.3f}{spread}; noise band ±{decisive['noise']:.3f} -> {verdict}.")
    if decisive["to_decide"]:
        summary += f" To decide: {decisive['to_decide']['why']}."
    return {
        "verdict": verdict,
        "summary": summary,
        "split": split,
        "decided_on": decide_on,
        "reference": reference,
        "seeds": list(seeds),
        "n_test": n_test,
        "arms": {arm: {m: arm_stats(scores[arm][m]) for m in METRICS} for arm in arms},
        "gain": gains,
        "rule": RULE,
    }


def format_transfer(section: dict) -> str:
    """A few console lines for the end of a run."""
    lines = [f"Transfer verdict: {section['verdict']} — {section['summary']}"]
    for arm, gains in section["gain"].items():
        parts = [f"{m} {g['gain']:+.4f} (noise ±{g['noise']:.4f}: {g['verdict']})" for m, g in gains.items()]
        lines.append(f"  vs {arm}: " + ", ".join(parts))
    return "\n".join(lines)


def _std(values: Optional[Sequence[float]]) -> Optional[float]:
    if not values or len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)
