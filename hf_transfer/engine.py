"""The one training/evaluation loop every recipe uses, on Accelerate.

A recipe runs one or more *stages* (e.g. train on the source, then continue on the target).
Each stage: prepare model/optimizer/data, warm up and decay the learning rate, accumulate
gradients with ``accelerator.accumulate``, clip, evaluate every epoch or N steps with
``gather_for_metrics``, checkpoint with ``save_state`` (atomically: write to a temporary
folder, then rename), keep the best checkpoint on the chosen metric, stop early when asked,
and end with the best weights loaded. A finished stage leaves ``result.json`` in its
checkpoint folder, so a resumed run skips it and restores its best weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import datasets
import torch
from accelerate import Accelerator
from accelerate.utils import is_npu_available, is_xpu_available
from tqdm.auto import tqdm
from transformers import get_scheduler

from .config import TrainingConfig
from .data.tokenize import make_loader
from .errors import ConfigError
from .metrics import classification_metrics

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
RESULT_FILE = "result.json"
FINISHED = "finished"  # resume plan entry: the stage completed in an earlier attempt


def make_accelerator(**kwargs) -> Accelerator:
    """An Accelerator that also does the right thing for multi-process runs on CPUs.

    ``accelerate launch --multi_gpu --num_processes N`` on a machine without GPUs starts N
    processes that each believe they run alone (``DistributedType.NO``): every sample would be
    trained and evaluated N times. Asking for the CPU there makes them one gloo group
    (``DistributedType.MULTI_CPU``).
    """
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    no_accelerator = not (torch.cuda.is_available() or is_xpu_available() or is_npu_available())
    return Accelerator(cpu=launched and no_accelerator, **kwargs)


@dataclass
class Stage:
    """One training phase of a recipe."""

    name: str  # also the checkpoint sub-folder, e.g. "source"
    train: datasets.Dataset  # tokenized, with a ``labels`` column
    training: TrainingConfig
    learning_rate: float
    num_epochs: float
    select_on: str  # evaluation set that picks the best checkpoint, e.g. "source/validation"


@dataclass
class StageResult:
    name: str
    steps: int = 0
    epochs_completed: float = 0.0
    best_step: Optional[int] = None
    best_metric: Optional[float] = None
    metric_for_best: str = "macro_f1"
    select_on: str = ""
    stopped_early: bool = False
    train_seconds: float = 0.0
    history: list = field(default_factory=list)  # [{"step", "epoch", "loss" | eval metrics}]


@dataclass
class _LoopState:
    step: int = 0  # optimizer updates done
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    best_metric: Optional[float] = None
    best_step: Optional[int] = None
    best_checkpoint: Optional[str] = None
    evals_without_improvement: int = 0
    train_seconds: float = 0.0
    history: list = field(default_factory=list)


class Engine:
    """Trains and evaluates classifiers for one run folder on one Accelerator."""

    def __init__(self, accelerator: Accelerator, tokenizer, label_names: list[str], run_dir: Path):
        self.accelerator = accelerator
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.run_dir = Path(run_dir)
        self.global_step_offset = 0  # tracker steps keep increasing across stages

    # --- evaluation ---------------------------------------------------------------------

    def evaluate(self, model, eval_sets: dict[str, datasets.Dataset], batch_size: int,
                 groups: Optional[dict[str, list]] = None) -> dict[str, dict]:
        """Metrics for every evaluation set, plus one row per group where a set has several."""
        results = {}
        for name, split in eval_sets.items():
            predictions, references, indices = self.predict(model, split, batch_size)
            results[name] = classification_metrics(predictions, references, self.label_names)
            for group, rows in _rows_by_group((groups or {}).get(name), indices).items():
                results[f"{name}[{group}]"] = classification_metrics(
                    [predictions[i] for i in rows], [references[i] for i in rows], self.label_names
                )
        return results

    @torch.no_grad()
    def predict(self, model, split: datasets.Dataset, batch_size: int):
        """Predicted ids, gold ids and row indices, each row exactly once across processes."""
        loader = self.accelerator.prepare(make_loader(split, self.tokenizer, batch_size, shuffle=False))
        model.eval()
        predictions, references, indices = [], [], []
        for batch in loader:
            idx = batch.pop("idx")
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            # gather_for_metrics drops the samples DDP repeats to even out the last batch.
            pred, ref, idx = self.accelerator.gather_for_metrics(
                (logits.argmax(-1), batch["labels"], idx)
            )
            predictions += pred.tolist()
            references += ref.tolist()
            indices += idx.tolist()
        self.accelerator._dataloaders.remove(loader)  # not part of any checkpoint
        return predictions, references, indices

    # --- training -----------------------------------------------------------------------

    def train(self, stage: Stage, model, eval_sets: dict[str, datasets.Dataset],
              resume: Union[None, str, Path] = None):
        """Run ``stage`` on ``model``; returns ``(prepared_model, StageResult)``.

        ``resume`` comes from :func:`resume_plan`: None (start fresh), ``FINISHED`` (restore the
        stage's best checkpoint and recorded result) or a checkpoint folder to continue from.
        """
        acc, cfg = self.accelerator, stage.training
        if stage.select_on not in eval_sets:
            raise ConfigError(
                f"Stage {stage.name!r} selects on {stage.select_on!r}, which is not evaluated; "
                f"choose one of {', '.join(eval_sets)}."
            )
        # A model handed on from a previous stage is still wrapped (DDP); start from the module,
        # and forget the previous stage's optimizer and loaders (they would be checkpointed).
        model = acc.unwrap_model(model)
        acc.free_memory()
        acc.gradient_accumulation_steps = cfg.gradient_accumulation_steps
        stage_dir = self.run_dir / "checkpoints" / stage.name

        train_loader = make_loader(stage.train, self.tokenizer, cfg.batch_size, shuffle=True,
                                   seed=cfg.seed)
        optimizer = torch.optim.AdamW(
            _parameter_groups(model, cfg.weight_decay), lr=stage.learning_rate,
            fused=torch.cuda.is_available() or None,
        )
        model, optimizer, train_loader = acc.prepare(model, optimizer, train_loader)
        # Count steps on the prepared loader: under DDP each process sees 1/N of the batches.
        updates_per_epoch = math.ceil(len(train_loader) / cfg.gradient_accumulation_steps)
        total_updates = cfg.max_steps or max(1, math.ceil(stage.num_epochs * updates_per_epoch))
        # A prepared scheduler steps once per process per update, hence the factor.
        scheduler = acc.prepare(get_scheduler(
            cfg.lr_scheduler, optimizer,
            num_warmup_steps=math.ceil(cfg.warmup_ratio * total_updates) * acc.num_processes,
            num_training_steps=total_updates * acc.num_processes,
        ))

        finished = stage_dir / RESULT_FILE
        if resume == FINISHED:
            return model, self._restore_finished_stage(stage, finished)
        state = self._resume(Path(resume)) if resume else _LoopState()

        logger.info(
            "Stage %r: %d examples, %d updates (%d per epoch, batch %d x %d processes x %d "
            "accumulation), lr %g", stage.name, len(stage.train), total_updates, updates_per_epoch,
            cfg.batch_size, acc.num_processes, cfg.gradient_accumulation_steps, stage.learning_rate,
        )
        progress = tqdm(total=total_updates, initial=state.step, desc=f"train [{stage.name}]",
                        disable=not acc.is_local_main_process, dynamic_ncols=True)
        running_loss = torch.zeros((), device=acc.device)
        loss_batches, stop = 0, False
        started = time.perf_counter() - state.train_seconds
        model.train()
        while state.step < total_updates and not stop:
            train_loader.set_epoch(state.epoch)
            batches = acc.skip_first_batches(train_loader, state.batches_in_epoch) \
                if state.batches_in_epoch else train_loader
            for batch in batches:
                batch.pop("idx", None)
                with acc.accumulate(model):
                    loss = model(**batch).loss
                    acc.backward(loss)
                    if acc.sync_gradients and cfg.max_grad_norm is not None:
                        acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                # Summed on the device; read back only when logged (no per-step host sync).
                running_loss += loss.detach()
                loss_batches += 1
                state.batches_in_epoch += 1
                if not acc.sync_gradients:
                    continue
                state.step += 1
                progress.update(1)
                end_of_epoch = state.batches_in_epoch >= len(train_loader)
                if end_of_epoch:
                    state.epoch, state.batches_in_epoch = state.epoch + 1, 0
                if state.step % cfg.logging_steps == 0 or state.step == total_updates:
                    mean_loss = acc.reduce(running_loss, "mean").item() / loss_batches
                    self._log_loss(state, mean_loss, scheduler.get_last_lr()[0], progress)
                    running_loss.zero_()
                    loss_batches = 0
                due = end_of_epoch if cfg.eval_strategy == "epoch" else state.step % cfg.eval_steps == 0
                if due or state.step == total_updates:
                    state.train_seconds = time.perf_counter() - started
                    stop = self._evaluate_and_checkpoint(stage, model, eval_sets, state, stage_dir)
                    model.train()
                if stop or state.step >= total_updates:
                    break
        progress.close()
        result = StageResult(
            name=stage.name, steps=state.step,
            epochs_completed=round(state.epoch + state.batches_in_epoch / len(train_loader), 4),
            best_step=state.best_step, best_metric=state.best_metric,
            metric_for_best=cfg.metric_for_best, select_on=stage.select_on, stopped_early=stop,
            train_seconds=round(state.train_seconds, 3), history=state.history,
        )
        self._load_best(state, stage_dir)
        if acc.is_main_process:
            _write_json(finished, asdict(result))
        acc.wait_for_everyone()
        self.global_step_offset += state.step
        return model, result

    def _log_loss(self, state: _LoopState, loss: float, lr: float, progress) -> None:
        state.history.append({"step": state.step, "epoch": state.epoch, "loss": round(loss, 5),
                              "learning_rate": lr})
        progress.set_postfix(loss=f"{loss:.4f}")
        self.accelerator.log({"train/loss": loss, "train/learning_rate": lr},
                             step=self.global_step_offset + state.step)

    def _evaluate_and_checkpoint(self, stage: Stage, model, eval_sets, state: _LoopState,
                                 stage_dir: Path) -> bool:
        """Evaluate the selection set, checkpoint, track the best; True means stop early."""
        cfg = stage.training
        metrics = self.evaluate(model, {stage.select_on: eval_sets[stage.select_on]},
                                cfg.eval_batch_size)[stage.select_on]
        value = metrics[cfg.metric_for_best]
        state.history.append({"step": state.step, "epoch": state.epoch, "eval_on": stage.select_on,
                              "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]})
        self.accelerator.log({f"eval/{stage.select_on}/{k}": metrics[k] for k in ("accuracy", "macro_f1")},
                             step=self.global_step_offset + state.step)
        improved = state.best_metric is None or value > state.best_metric
        checkpoint = stage_dir / f"step_{state.step:07d}"
        if improved:
            state.best_metric, state.best_step = value, state.step
            state.best_checkpoint, state.evals_without_improvement = str(checkpoint), 0
        else:
            state.evals_without_improvement += 1
        if self.accelerator.is_main_process:
            logger.info("step %d: %s %s = %.4f%s", state.step, stage.select_on, cfg.metric_for_best,
                        value, " (best)" if improved else "")
        self._save_checkpoint(checkpoint, state)
        self._rotate_checkpoints(stage_dir, state, cfg.save_total_limit)
        patience = cfg.early_stopping_patience
        return patience is not None and state.evals_without_improvement >= patience

    # --- checkpoints --------------------------------------------------------------------

    def _save_checkpoint(self, checkpoint: Path, state: _LoopState) -> None:
        """``save_state`` into a temporary folder, then rename: a crash never leaves a
        half-written folder under a name that ``latest`` would pick."""
        acc = self.accelerator
        partial = checkpoint.with_name(checkpoint.name + ".partial")
        if acc.is_main_process and partial.exists():
            shutil.rmtree(partial)
        acc.wait_for_everyone()
        acc.save_state(str(partial))
        if acc.is_main_process:
            _write_json(partial / STATE_FILE, asdict(state))
            if checkpoint.exists():
                shutil.rmtree(checkpoint)
            partial.rename(checkpoint)
        acc.wait_for_everyone()

    def _rotate_checkpoints(self, stage_dir: Path, state: _LoopState, limit: int) -> None:
        if not self.accelerator.is_main_process:
            return
        checkpoints = list_checkpoints(stage_dir)
        removable = [c for c in checkpoints[:-1] if str(c) != state.best_checkpoint]
        for old in removable[: max(0, len(checkpoints) - max(limit, 1))]:
            shutil.rmtree(old)

    def _resume(self, checkpoint: Path) -> _LoopState:
        logger.info("Resuming from %s", checkpoint)
        self.accelerator.load_state(str(checkpoint))
        return _LoopState(**json.loads((checkpoint / STATE_FILE).read_text()))

    def _restore_finished_stage(self, stage: Stage, finished: Path) -> StageResult:
        result = StageResult(**json.loads(finished.read_text()))
        best = finished.parent / f"step_{result.best_step:07d}"
        logger.info("Stage %r already finished; restoring its best checkpoint %s", stage.name, best)
        self.accelerator.load_state(str(best))
        self.global_step_offset += result.steps
        return result

    def _load_best(self, state: _LoopState, stage_dir: Path) -> None:
        latest = list_checkpoints(stage_dir)[-1]
        if state.best_checkpoint and Path(state.best_checkpoint) != latest:
            logger.info("Loading the best checkpoint (step %d)", state.best_step)
            self.accelerator.load_state(state.best_checkpoint)


def resume_plan(run_dir: Path, stage_names: list[str], resume: Optional[str]) -> dict:
    """What each stage resumes from: None, ``FINISHED`` or a checkpoint folder.

    ``latest``: finished stages (those with a ``result.json``) are restored, the first
    unfinished one continues from its newest complete checkpoint, later ones start fresh.
    A checkpoint folder: the stages before its own must have finished; its stage continues
    from it; later ones start fresh.
    """
    plan = dict.fromkeys(stage_names)
    if not resume:
        return plan
    checkpoints = Path(run_dir) / "checkpoints"
    if resume == "latest":
        for name in stage_names:
            if (checkpoints / name / RESULT_FILE).is_file():
                plan[name] = FINISHED
                continue
            newest = list_checkpoints(checkpoints / name)
            plan[name] = newest[-1] if newest else None
            break
        return plan
    path = Path(resume)
    owner = path.parent.name
    if path.parent.parent.resolve() != checkpoints.resolve() or owner not in stage_names:
        raise ConfigError(
            f"`output.resume_from_checkpoint` {resume!r} is not a checkpoint of this run: use "
            f"`latest` or a folder like {checkpoints / stage_names[0] / 'step_0000100'}."
        )
    if not (path / STATE_FILE).is_file():
        raise ConfigError(
            f"`output.resume_from_checkpoint` {resume!r} is missing or incomplete (no "
            f"{STATE_FILE}); use `latest` to take the newest complete checkpoint."
        )
    for name in stage_names[: stage_names.index(owner)]:
        if not (checkpoints / name / RESULT_FILE).is_file():
            raise ConfigError(
                f"`output.resume_from_checkpoint` {resume!r} belongs to stage {owner!r}, but the "
                f"earlier stage {name!r} never finished: resume with `latest` instead."
            )
        plan[name] = FINISHED
    plan[owner] = path
    return plan


def list_checkpoints(stage_dir: Path) -> list[Path]:
    """Complete checkpoints of a stage, oldest first (``.partial`` folders never count)."""
    if not stage_dir.is_dir():
        return []
    return sorted(p for p in stage_dir.glob("step_*")
                  if p.is_dir() and not p.name.endswith(".partial") and (p / STATE_FILE).is_file())


def _parameter_groups(model, weight_decay: float) -> list[dict]:
    """No weight decay on biases and normalisation weights (the usual AdamW practice)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def _rows_by_group(groups: Optional[list], indices: list[int]) -> dict[str, list[int]]:
    """Positions in the prediction list for each group; empty unless there are 2+ groups."""
    if groups is None:
        return {}
    out: dict[str, list[int]] = {}
    for position, row in enumerate(indices):
        out.setdefault(str(groups[row]), []).append(position)
    return dict(sorted(out.items())) if len(out) > 1 else {}


def _write_json(path: Path, data: dict) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    partial.replace(path)
