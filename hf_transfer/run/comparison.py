"""The nested runs of the transfer comparison (`strategy.baselines`).

Each baseline arm, and the transfer strategy itself on every extra seed, is a run of the same
scenario in ``<output.dir>/baselines/<arm>_seed<N>/`` (no saved model, no push, no report),
started through the run's own :meth:`~hf_transfer.run.pipeline.Recipe.nested_run`. The verdict
on their scores is :func:`hf_transfer.baselines.transfer_section`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Callable, Optional

from ..baselines import SPLIT, TRANSFER_ARM, transfer_section
from ..config import RunConfig
from ..layout import BASELINES_DIR, RunLayout

logger = logging.getLogger("hf_transfer")


def comparison_plan(config: RunConfig) -> list[tuple[str, int]]:
    """``(arm, seed)`` of every nested run: the transfer strategy on the extra seeds, then each
    baseline on every seed."""
    seeds = seeds_of(config)
    plan = [(TRANSFER_ARM, seed) for seed in seeds[1:]]
    plan += [(name, seed) for name in config.strategy.baselines for seed in seeds]
    return plan


def seeds_of(config: RunConfig) -> list[int]:
    return [config.training.seed + i for i in range(config.strategy.baseline_seeds)]


def nested_config(config: RunConfig, folder: Path, seed: int) -> RunConfig:
    """The configuration of one nested run: another seed and folder, no baselines of its own,
    no saved model, push or trackers."""
    resume = None
    if config.output.resume_from_checkpoint and RunLayout(folder).checkpoints.is_dir():
        resume = "latest"
    return dataclasses.replace(
        config,
        training=dataclasses.replace(config.training, seed=seed, log_with=[]),
        strategy=dataclasses.replace(config.strategy, baselines=[], baseline_seeds=1),
        output=dataclasses.replace(config.output, dir=str(folder), save_model=False, push_to_hub=False,
                                   overwrite=True, resume_from_checkpoint=resume, report=False),
    )


def run_comparison(config: RunConfig, main_results: dict, layout: RunLayout,
                   run_arm: Callable[[RunConfig, Optional[str]], dict]) -> Optional[dict]:
    """Run the nested runs of a finished run (every process takes part) with ``run_arm(config,
    arm)`` (arm None: the transfer strategy on another seed) and return the ``transfer``
    section (None when no baseline was asked for)."""
    if not config.strategy.baselines:
        return None
    seeds = seeds_of(config)
    arms: dict[str, list[dict]] = {TRANSFER_ARM: [main_results["eval_matrix"][SPLIT]]}
    runs = {}
    for arm, seed in comparison_plan(config):
        cfg = nested_config(config, layout.baseline_run(arm, seed), seed)
        finished = RunLayout(cfg.output.dir).results
        if config.output.resume_from_checkpoint and finished.is_file():
            logger.info("Comparison run %s, seed %d finished in an earlier attempt: reusing %s", arm, seed, finished)
            results = json.loads(finished.read_text(encoding="utf-8"))
        else:
            logger.info("Comparison run: %s, seed %d -> %s", arm, seed, cfg.output.dir)
            results = run_arm(cfg, None if arm == TRANSFER_ARM else arm)
        arms.setdefault(arm, []).append(results["eval_matrix"][SPLIT])
        runs[f"{arm}_seed{seed}"] = f"{BASELINES_DIR}/{arm}_seed{seed}"
    n_test = main_results["eval_matrix"][SPLIT].get("n")
    section = transfer_section(arms, seeds, config.training.metric_for_best, n_test)
    section["runs"] = runs
    return section
