"""What a run reports: the results.json document, the confusion matrix, console summaries."""

from __future__ import annotations

import platform
from dataclasses import asdict
from typing import TYPE_CHECKING, Optional

import datasets
import torch

from ..version import __version__

if TYPE_CHECKING:
    from .pipeline import Recipe, RunData


def run_results(recipe: "Recipe", data: "RunData", matrix: dict, stages: list, accelerator,
                timings: dict) -> dict:
    """results.json of a run: the eval matrix, the scenario's and the strategy's own sections,
    the stages, data sizes, timings, environment and configuration."""
    cfg = recipe.config
    return {
        "hf_transfer_version": __version__,
        "scenario": recipe.scenario,
        "strategy": cfg.strategy.label,  # `tapt+sequential` for a composition (the list: config)
        "labels": list(data.labels.names),
        "eval_matrix": matrix,
        **recipe.scenario_results,
        **{k: v for strategy in recipe.chain for k, v in strategy.results().items()},
        "labelled_target_examples": recipe.labelled_target,
        "best_step": {s.name: s.best_step for s in stages},
        "stages": [asdict(s) for s in stages],
        "data": data.sizes,
        "timings": timings,
        "environment": {
            "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type.value),
            "mixed_precision": accelerator.mixed_precision,
            "device": str(accelerator.device),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": _version("transformers"),
            "accelerate": _version("accelerate"),
            "peft": _version("peft"),
            "datasets": datasets.__version__,
        },
        "config": cfg.to_dict(),
    }


def confusion_of(predictions: dict, labels: list[str]) -> Optional[dict]:
    """The confusion matrix of ``target/test`` (else the first ``*/test`` split) from the
    final evaluation's predictions: rows are the gold labels, columns the predicted ones."""
    names = [n for n in predictions if n == "target/test"] or [n for n in predictions if n.endswith("/test")]
    if not names:
        return None
    predicted, gold = predictions[names[0]]
    matrix = [[0] * len(labels) for _ in labels]
    for p, g in zip(predicted, gold):
        matrix[g][p] += 1
    return {"split": names[0], "labels": list(labels), "rows": "gold", "columns": "predicted",
            "matrix": matrix}


def insert_after(data: dict, key: str, new_key: str, value) -> dict:
    """``data`` with ``new_key: value`` placed right after ``key`` (results.json reads in order)."""
    out = {}
    for k, v in data.items():
        if k != new_key:
            out[k] = v
        if k == key:
            out[new_key] = value
    if new_key not in out:
        out[new_key] = value
    return out


def one_line(recipe: "Recipe", results: dict) -> str:
    """The summary of a nested run of the comparison."""
    row = results["eval_matrix"].get("target/test") or next(iter(results["eval_matrix"].values()))
    arm = recipe.arm or recipe.config.strategy.label
    return (f"[{arm}, seed {recipe.config.training.seed}] target/test accuracy {row['accuracy']:.4f}, "
            f"macro-F1 {row['macro_f1']:.4f} ({recipe.run_dir})")


def format_summary(results: dict) -> str:
    """A small table of the eval matrix, printed at the end of a run."""
    rows = [f"{'split':<32} {'n':>6} {'accuracy':>9} {'macro_f1':>9}"]
    for name, m in results["eval_matrix"].items():
        rows.append(f"{name:<32} {m['n']:>6} {m['accuracy']:>9.4f} {m['macro_f1']:>9.4f}")
    header = f"{results['scenario']} / {results['strategy']}  (best step: {results['best_step']})"
    return "\n".join([header, *rows])


def flat_config(data: dict, prefix: str = "") -> dict:
    """The configuration as flat scalar values, as trackers take it."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("files", "filter"):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
