"""The one training/evaluation loop every recipe uses, on Accelerate.

A recipe runs one or more *stages* (e.g. train on the source, then continue on the target).
Each stage: prepare model/optimizer/data, warm up and decay the learning rate, accumulate
gradients with ``accelerator.accumulate``, clip, evaluate every epoch or N steps with
``gather_for_metrics``, checkpoint with ``save_state`` (atomically: write to a temporary
folder, then rename), keep the best checkpoint on the chosen metric, stop early when asked,
and end with the best weights loaded. A finished stage leaves ``result.json`` in its
checkpoint folder, so a resumed run skips it and restores its best weights. A stage may also
bring its own loss, a second (unlabelled) dataset read alongside, and its own selection metric
and direction (see :class:`Stage`): the masked-LM and domain-adversarial stages use them.

Faults: every file is published atomically (:mod:`hf_transfer.atomic`), so after a kill at
any moment ``latest`` finds the newest complete checkpoint; SIGTERM makes every process
checkpoint at the same update boundary and stop (:class:`~hf_transfer.errors.Preempted`,
exit code 75); a NaN/inf loss or gradient stops the run before anything non-finite is
saved, or skips that update (``training.on_nonfinite``). See :class:`_Guard` for the cost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Optional, Union

import datasets
import torch
from accelerate import Accelerator
from accelerate.utils import is_npu_available, is_xpu_available
from tqdm.auto import tqdm
from transformers import get_scheduler

from .atomic import PARTIAL, clean_leftovers, publish_dir, remove_tree, write_json
from .config import TrainingConfig
from .data.tokenize import make_loader
from .errors import ConfigError, NonFiniteError, Preempted
from .metrics import classification_metrics

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
RESULT_FILE = "result.json"
# accelerate unpickles optimizer/scheduler/sampler states with torch.load; ask for the
# restricted unpickler explicitly (its RNG states are always read with weights_only=True).
# Checkpoints are still trusted input: resume only from checkpoints your runs wrote.
SAFE_LOAD = {"weights_only": True}
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


def unwrap(accelerator: Accelerator, model) -> torch.nn.Module:
    """The plain module inside a prepared one: no DDP/FSDP wrapper, no ``torch.compile``
    wrapper (a compiled module's weights are named ``_orig_mod.*``; saving and the next stage
    need the plain names)."""
    return accelerator.unwrap_model(model, keep_torch_compile=False)


def full_state_dict(accelerator: Accelerator, model) -> dict:
    """The whole model's weights (gathered under FSDP: a collective), with plain names."""
    state_dict = accelerator.get_state_dict(model)
    return {key.removeprefix("_orig_mod."): value for key, value in state_dict.items()}


@dataclass
class Stage:
    """One training phase of a recipe."""

    name: str  # also the checkpoint sub-folder, e.g. "source"
    train: datasets.Dataset  # tokenized, with a ``labels`` column (unless ``loss_fn`` needs none)
    training: TrainingConfig
    learning_rate: float
    num_epochs: float
    select_on: str  # evaluation set that picks the best checkpoint, e.g. "source/validation"
    # Optional penalty on the weights added to every micro-batch's loss (e.g. L2-SP): called
    # with the unwrapped model, returns a scalar tensor. The logged loss includes it.
    regularizer: Optional[Callable[[torch.nn.Module], torch.Tensor]] = None
    # Optional: how a micro-batch becomes a loss, instead of ``model(**batch).loss``. Called as
    # ``loss_fn(model, batch, aux_batch, progress)``: the prepared model, the batch of ``train``,
    # the next batch of ``aux`` (None without one) and the fraction of optimizer updates done
    # (0 at the first update, e.g. for a schedule). Masked-LM and domain-adversarial stages.
    loss_fn: Optional[Callable[..., torch.Tensor]] = None
    # Optional second dataset (e.g. unlabelled target text) read alongside ``train``: one batch
    # per micro-batch, cycled and reshuffled (seeded) whenever it runs out, sharded under DDP.
    # Its position follows from the micro-batches done, so a resumed run reads the same batches.
    aux: Optional[datasets.Dataset] = None
    # Optional selection metric instead of classification metrics on ``select_on`` (which then
    # only names what was evaluated): ``evaluate_fn(engine, model) -> {metric: value}``, run by
    # every process. ``metric_for_best`` names the value (default ``training.metric_for_best``);
    # ``greater_is_better`` False for a loss.
    evaluate_fn: Optional[Callable[..., dict]] = None
    metric_for_best: Optional[str] = None
    greater_is_better: bool = True


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
    history: list = field(default_factory=list)  # [{"step", "epoch", "loss" | eval metrics | "skipped"}]
    skipped_steps: int = 0  # optimizer steps dropped for a non-finite loss/gradient (on_nonfinite: skip)


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
    skipped_steps: int = 0
    loss_sum: float = 0.0  # training loss summed since the last log line (mean over processes)
    loss_batches: int = 0  # micro-batches in that sum
    num_processes: Optional[int] = None


class Engine:
    """Trains and evaluates classifiers for one run folder on one Accelerator."""

    def __init__(self, accelerator: Accelerator, tokenizer, label_names: list[str], run_dir: Path,
                 pad_to_multiple_of: Optional[int] = None):
        self.accelerator = accelerator
        self.pad_to_multiple_of = pad_to_multiple_of  # evaluation batches (training: the stage's config)
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.run_dir = Path(run_dir)
        self.global_step_offset = 0  # tracker steps keep increasing across stages
        # {split: (predicted ids, gold ids)} of the latest evaluate() call (confusion matrices)
        self.predictions: dict[str, tuple[list[int], list[int]]] = {}

    # --- evaluation ---------------------------------------------------------------------

    def evaluate(self, model, eval_sets: dict[str, datasets.Dataset], batch_size: int) -> dict[str, dict]:
        """Metrics for every evaluation set, plus one row per value of its ``group`` column
        (language, domain) where a set has several."""
        results = {}
        self.predictions = {}
        for name, split in eval_sets.items():
            predictions, references, indices = self.predict(model, split, batch_size)
            self.predictions[name] = (predictions, references)
            results[name] = classification_metrics(predictions, references, self.label_names)
            groups = split["group"] if "group" in split.column_names else None
            for group, rows in _rows_by_group(groups, indices).items():
                results[f"{name}[{group}]"] = classification_metrics(
                    [predictions[i] for i in rows], [references[i] for i in rows], self.label_names
                )
        return results

    @torch.no_grad()
    def predict(self, model, split: datasets.Dataset, batch_size: int):
        """Predicted ids, gold ids and row indices, each row exactly once across processes."""
        # Longest rows first: similar lengths share a batch, so little padding is computed.
        loader = self.accelerator.prepare(make_loader(split, self.tokenizer, batch_size, shuffle=False,
                                                      group_by_length=True,
                                                      pad_to_multiple_of=self.pad_to_multiple_of))
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

        Raises :class:`NonFiniteError` on a NaN/inf loss or gradient (``on_nonfinite: stop``)
        and :class:`Preempted` after SIGTERM, once a checkpoint is safely on disk.
        """
        acc, cfg = self.accelerator, stage.training
        if stage.evaluate_fn is None and stage.select_on not in eval_sets:
            raise ConfigError(
                f"Stage {stage.name!r} selects on {stage.select_on!r}, which is not evaluated; "
                f"choose one of {', '.join(eval_sets)}."
            )
        # A model handed on from a previous stage is still wrapped (DDP); start from the module,
        # and forget the previous stage's optimizer and loaders (they would be checkpointed).
        model = unwrap(acc, model)
        acc.free_memory()
        acc.gradient_accumulation_steps = cfg.gradient_accumulation_steps
        stage_dir = self.run_dir / "checkpoints" / stage.name

        train_loader = make_loader(stage.train, self.tokenizer, cfg.batch_size, shuffle=True,
                                   seed=cfg.seed, group_by_length=cfg.group_by_length,
                                   num_processes=acc.num_processes,
                                   pad_to_multiple_of=cfg.pad_to_multiple_of)
        optimizer = _adamw(_parameter_groups(model, cfg.weight_decay), stage.learning_rate)
        model, optimizer, train_loader = acc.prepare(model, optimizer, train_loader)
        aux_loader = None if stage.aux is None else acc.prepare(
            make_loader(stage.aux, self.tokenizer, cfg.batch_size, shuffle=True, seed=cfg.seed))
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
        self._set_aside_stale(stage_dir, Path(resume) if resume else None)
        state = self._resume(Path(resume), stage_dir) if resume else _LoopState()
        state.num_processes = acc.num_processes

        logger.info(
            "Stage %r: %d examples, %d updates (%d per epoch, batch %d x %d processes x %d "
            "accumulation), lr %g", stage.name, len(stage.train), total_updates, updates_per_epoch,
            cfg.batch_size, acc.num_processes, cfg.gradient_accumulation_steps, stage.learning_rate,
        )
        guard = _Guard(acc, cfg.on_nonfinite)
        params = [p for p in model.parameters() if p.requires_grad]
        progress = tqdm(total=total_updates, initial=state.step, desc=f"train [{stage.name}]",
                        disable=not acc.is_local_main_process, dynamic_ncols=True)
        # Loss summed on the device and read back only when logged (no per-step host sync);
        # the sum since the last log line is part of the checkpoint, so resumed logs match.
        running_loss = torch.full((), state.loss_sum, device=acc.device)
        step_loss = torch.zeros((), device=acc.device)
        step_batches, stop = 0, False
        self._last_saved_step = state.step if resume else None
        started = time.perf_counter() - state.train_seconds
        model.train()
        with guard.catching_sigterm():
            aux_batches = None if aux_loader is None else self._cycle(
                aux_loader, state.epoch * len(train_loader) + state.batches_in_epoch)
            while state.step < total_updates and not stop:
                train_loader.set_epoch(state.epoch)
                batches = acc.skip_first_batches(train_loader, state.batches_in_epoch) \
                    if state.batches_in_epoch else train_loader
                for batch in batches:
                    batch.pop("idx", None)
                    aux_batch = None if aux_batches is None else next(aux_batches)
                    with acc.accumulate(model):
                        if stage.loss_fn is None:
                            loss = model(**batch).loss
                        else:
                            loss = stage.loss_fn(model, batch, aux_batch, state.step / total_updates)
                        if stage.regularizer is not None:
                            loss = loss + stage.regularizer(unwrap(acc, model))
                        acc.backward(loss)
                        step_loss += loss.detach()
                        step_batches += 1
                        skipped = False
                        if acc.sync_gradients:
                            norm = acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm) \
                                if cfg.max_grad_norm is not None else None
                            bad = guard.nonfinite(step_loss, norm, params)
                            if guard.skip:
                                skipped = guard.agree_now(bad)  # one host sync per update
                            else:
                                guard.record(bad, state.step + 1)  # read one update later
                            if skipped:
                                guard.drop_step(optimizer)
                            else:
                                optimizer.step()
                                scheduler.step()
                            optimizer.zero_grad()
                    state.batches_in_epoch += 1
                    if not acc.sync_gradients:
                        continue
                    state.step += 1
                    if skipped:
                        self._note_skipped(stage, state, guard)
                    else:
                        running_loss += step_loss
                        state.loss_batches += step_batches
                        guard.consecutive_skips = 0
                    step_loss.zero_()
                    step_batches = 0
                    progress.update(1)
                    end_of_epoch = state.batches_in_epoch >= len(train_loader)
                    if end_of_epoch:
                        state.epoch, state.batches_in_epoch = state.epoch + 1, 0
                    bad_seen, preempted = guard.poll()
                    if bad_seen:
                        self._stop_nonfinite(stage, model, guard, stage_dir)
                    if state.step % cfg.logging_steps == 0 or state.step == total_updates:
                        if state.loss_batches:
                            mean_loss = acc.reduce(running_loss, "mean").item() / state.loss_batches
                            self._log_loss(state, mean_loss, scheduler.get_last_lr()[0], progress)
                        running_loss.zero_()
                        state.loss_batches = 0
                    due = end_of_epoch if cfg.eval_strategy == "epoch" else state.step % cfg.eval_steps == 0
                    if due or state.step == total_updates:
                        state.train_seconds = time.perf_counter() - started
                        self._check_finite(stage, model, guard, stage_dir)
                        stop = self._evaluate_and_checkpoint(stage, model, eval_sets, state, stage_dir,
                                                             running_loss)
                        model.train()
                    if preempted and state.step < total_updates and not stop:
                        state.train_seconds = time.perf_counter() - started
                        self._stop_preempted(stage, model, guard, state, stage_dir, running_loss)
                    if stop or state.step >= total_updates:
                        break
            progress.close()
            result = StageResult(
                name=stage.name, steps=state.step,
                epochs_completed=round(state.epoch + state.batches_in_epoch / len(train_loader), 4),
                best_step=state.best_step, best_metric=state.best_metric,
                metric_for_best=stage.metric_for_best or cfg.metric_for_best,
                select_on=stage.select_on, stopped_early=stop,
                train_seconds=round(state.train_seconds, 3), history=state.history,
                skipped_steps=state.skipped_steps,
            )
            self._load_best(state, stage_dir)
            if acc.is_main_process:
                write_json(finished, asdict(result))
            acc.wait_for_everyone()
            self.global_step_offset += state.step
            if guard.agree_now(None, at_end=True):
                raise Preempted(
                    f"Received SIGTERM: stage {stage.name!r} had just finished; its result is saved "
                    f"in {finished}. {RESUME_HINT}"
                )
        return model, result

    def _cycle(self, loader, consumed: int):
        """Batches of ``loader`` without end, starting after ``consumed`` of them: each pass
        is one epoch of its seeded sampler, so the sequence is the same after a resume."""
        epoch, offset = divmod(consumed, len(loader))
        while True:
            loader.set_epoch(epoch)
            batches = self.accelerator.skip_first_batches(loader, offset) if offset else loader
            for batch in batches:
                batch.pop("idx", None)
                yield batch
            epoch, offset = epoch + 1, 0

    def _log_loss(self, state: _LoopState, loss: float, lr: float, progress) -> None:
        state.history.append({"step": state.step, "epoch": state.epoch, "loss": round(loss, 5),
                              "learning_rate": lr})
        progress.set_postfix(loss=f"{loss:.4f}")
        self.accelerator.log({"train/loss": loss, "train/learning_rate": lr},
                             step=self.global_step_offset + state.step)

    def _evaluate_and_checkpoint(self, stage: Stage, model, eval_sets, state: _LoopState,
                                 stage_dir: Path, running_loss: torch.Tensor) -> bool:
        """Evaluate the selection set, checkpoint, track the best; True means stop early."""
        cfg = stage.training
        metric = stage.metric_for_best or cfg.metric_for_best
        if stage.evaluate_fn is None:
            metrics = self.evaluate(model, {stage.select_on: eval_sets[stage.select_on]},
                                    cfg.eval_batch_size)[stage.select_on]
            logged = {k: metrics[k] for k in ("accuracy", "macro_f1")}
        else:
            metrics = logged = stage.evaluate_fn(self, model)
        value = metrics[metric]
        state.history.append({"step": state.step, "epoch": state.epoch, "eval_on": stage.select_on,
                              **logged})
        self.accelerator.log({f"eval/{stage.select_on}/{k}": v for k, v in logged.items()},
                             step=self.global_step_offset + state.step)
        improved = state.best_metric is None or (
            value > state.best_metric if stage.greater_is_better else value < state.best_metric)
        checkpoint = stage_dir / f"step_{state.step:07d}"
        if improved:
            state.best_metric, state.best_step = value, state.step
            state.best_checkpoint, state.evals_without_improvement = str(checkpoint), 0
        else:
            state.evals_without_improvement += 1
        if self.accelerator.is_main_process:
            logger.info("step %d: %s %s = %.4f%s", state.step, stage.select_on, metric,
                        value, " (best)" if improved else "")
        self._save_checkpoint(checkpoint, state, running_loss)
        self._rotate_checkpoints(stage_dir, state, cfg.save_total_limit)
        patience = cfg.early_stopping_patience
        return patience is not None and state.evals_without_improvement >= patience

    # --- faults: non-finite numbers, preemption -------------------------------------------

    def _note_skipped(self, stage: Stage, state: _LoopState, guard: "_Guard") -> None:
        state.skipped_steps += 1
        guard.consecutive_skips += 1
        state.history.append({"step": state.step, "epoch": state.epoch,
                              "skipped": "non-finite loss or gradients"})
        logger.warning("Stage %r, optimizer step %d: non-finite loss or gradients; step skipped "
                       "(%d skipped so far).", stage.name, state.step, state.skipped_steps)
        if guard.consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
            raise NonFiniteError(
                f"Stage {stage.name!r}: {guard.consecutive_skips} optimizer steps in a row (up to "
                f"step {state.step}) had a non-finite loss or gradients; skipping cannot recover "
                f"from that. {_nonfinite_advice(self._last_good(stage.name))}"
            )

    def _check_finite(self, stage: Stage, model, guard: "_Guard", stage_dir: Path) -> None:
        """Before anything is evaluated or saved: every update so far and the weights are finite
        (a collective: every process takes the same decision)."""
        first_bad, weights_bad = guard.check_now(model)
        if first_bad is not None or weights_bad:
            self._stop_nonfinite(stage, model, guard, stage_dir, first_bad, weights_bad)

    def _stop_nonfinite(self, stage: Stage, model, guard: "_Guard", stage_dir: Path,
                        first_bad: Optional[int] = None, weights_bad: bool = False) -> None:
        if first_bad is None and not weights_bad:
            first_bad, weights_bad = guard.check_now(model)
        what = (f"the loss or gradients became non-finite (NaN/inf) at optimizer step {first_bad}"
                if first_bad is not None else "the weights became non-finite (NaN/inf)")
        raise NonFiniteError(
            f"Stage {stage.name!r}: {what}. Training stopped (`training.on_nonfinite: stop`); "
            f"nothing was saved after that step. {_nonfinite_advice(self._last_good(stage.name))}"
        )

    def _last_good(self, stage_name: str) -> Optional[Path]:
        newest = list_checkpoints(self.run_dir / "checkpoints" / stage_name)
        return newest[-1] if newest else None

    def _stop_preempted(self, stage: Stage, model, guard: "_Guard", state: _LoopState,
                        stage_dir: Path, running_loss: torch.Tensor) -> None:
        """SIGTERM: checkpoint at this step boundary (unless just done), then stop."""
        checkpoint = stage_dir / f"step_{state.step:07d}"
        if self._last_saved_step != state.step:
            self._check_finite(stage, model, guard, stage_dir)
            self._save_checkpoint(checkpoint, state, running_loss)
        if self.accelerator.is_main_process:
            logger.warning("SIGTERM: saved %s; stopping.", checkpoint)
        raise Preempted(
            f"Received SIGTERM: stopped stage {stage.name!r} at optimizer step {state.step} and "
            f"saved the checkpoint {checkpoint}. {RESUME_HINT}"
        )

    # --- checkpoints --------------------------------------------------------------------

    def _save_checkpoint(self, checkpoint: Path, state: _LoopState,
                         running_loss: Optional[torch.Tensor] = None) -> None:
        """``save_state`` into ``step_N.partial``, then rename: a kill at any moment never
        leaves a half-written folder under a name that ``latest`` would pick (a checkpoint
        counts only once its ``trainer_state.json``, written last, is there)."""
        acc = self.accelerator
        if running_loss is not None:  # collective: the mean of every process's running sum
            state.loss_sum = acc.reduce(running_loss.detach().clone(), "mean").item()
        partial = checkpoint.with_name(checkpoint.name + PARTIAL)
        if acc.is_main_process:
            clean_leftovers(checkpoint.parent, "step_*")  # what a killed attempt left behind
            partial.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(partial))
        # Every process writes its own random states: all must be done before the rename.
        acc.wait_for_everyone()
        if acc.is_main_process:
            write_json(partial / STATE_FILE, asdict(state))
            publish_dir(partial, checkpoint)
        acc.wait_for_everyone()
        self._last_saved_step = state.step

    def _rotate_checkpoints(self, stage_dir: Path, state: _LoopState, limit: int) -> None:
        if not self.accelerator.is_main_process:
            return
        checkpoints = list_checkpoints(stage_dir)
        best = Path(state.best_checkpoint).name if state.best_checkpoint else None
        removable = [c for c in checkpoints[:-1] if c.name != best]
        for old in removable[: max(0, len(checkpoints) - max(limit, 1))]:
            remove_tree(old)

    def _set_aside_stale(self, stage_dir: Path, resume: Optional[Path]) -> None:
        """Outputs of an earlier attempt that this one would replace (a stage started afresh
        over old checkpoints, or resumed from an older checkpoint than its newest) are moved
        to ``checkpoints/<stage>.superseded-N/``: never deleted, never picked by ``latest``."""
        acc = self.accelerator
        if acc.is_main_process and stage_dir.is_dir():
            clean_leftovers(stage_dir)
            newer = [c for c in list_checkpoints(stage_dir)
                     if resume is None or _step_of(c) > _step_of(resume)]
            stale = ([stage_dir / RESULT_FILE] if (stage_dir / RESULT_FILE).is_file() else []) + newer
            if stale:
                n = 1
                while stage_dir.with_name(f"{stage_dir.name}.superseded-{n}").exists():
                    n += 1
                aside = stage_dir.with_name(f"{stage_dir.name}.superseded-{n}")
                aside.mkdir()
                for path in stale:  # result.json first: the stage no longer counts as finished
                    path.rename(aside / path.name)
                logger.warning("Moved %d output(s) of an earlier attempt (%s) to %s.", len(stale),
                               ", ".join(p.name for p in stale), aside)
        acc.wait_for_everyone()

    def _resume(self, checkpoint: Path, stage_dir: Path) -> _LoopState:
        acc = self.accelerator
        logger.info("Resuming from %s", checkpoint)
        data = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        known = {f.name for f in fields(_LoopState)}
        state = _LoopState(**{k: v for k, v in data.items() if k in known})
        if state.num_processes not in (None, acc.num_processes):
            logger.warning("%s was written by %d process(es), this run has %d: batches (and so "
                           "results) will differ from an uninterrupted run.", checkpoint,
                           state.num_processes, acc.num_processes)
        if not (checkpoint / f"random_states_{acc.process_index}.pkl").is_file():
            logger.warning("%s has no random state for process %d: dropout and shuffling will "
                           "differ from an uninterrupted run.", checkpoint, acc.process_index)
        acc.load_state(str(checkpoint), load_kwargs=SAFE_LOAD)
        # The best checkpoint is a sibling: a run folder that was moved or copied still resumes.
        if state.best_checkpoint:
            state.best_checkpoint = str(stage_dir / Path(state.best_checkpoint).name)
        return state

    def _restore_finished_stage(self, stage: Stage, finished: Path) -> StageResult:
        data = json.loads(finished.read_text(encoding="utf-8"))
        known = {f.name for f in fields(StageResult)}
        result = StageResult(**{k: v for k, v in data.items() if k in known})
        best = finished.parent / f"step_{result.best_step:07d}"
        logger.info("Stage %r already finished; restoring its best checkpoint %s", stage.name, best)
        self.accelerator.load_state(str(best), load_kwargs=SAFE_LOAD)
        self.global_step_offset += result.steps
        return result

    def _load_best(self, state: _LoopState, stage_dir: Path) -> None:
        latest = list_checkpoints(stage_dir)[-1]
        if state.best_checkpoint and Path(state.best_checkpoint) != latest:
            logger.info("Loading the best checkpoint (step %d)", state.best_step)
            self.accelerator.load_state(state.best_checkpoint, load_kwargs=SAFE_LOAD)


RESUME_HINT = ("Resume with the same command plus `--output.resume_from_checkpoint latest` "
               "(same output.dir).")
# `on_nonfinite: skip` gives up after this many consecutive bad updates: skipping cannot help.
MAX_CONSECUTIVE_SKIPS = 10


def _nonfinite_advice(last_good: Optional[Path]) -> str:
    kept = (f"The last good checkpoint is {last_good}." if last_good
            else "No checkpoint had been written yet.")
    return (f"{kept} Lower `training.learning_rate`, keep gradient clipping "
            "(`training.max_grad_norm`), check the data and mixed precision, then resume with "
            "`--output.resume_from_checkpoint latest`; or set `--training.on_nonfinite skip` to "
            "drop such steps.")


class _Guard:
    """Non-finite and SIGTERM checks that every process answers the same way.

    The cost trade-off: reading a device value on the host (``.item()``) makes the host wait
    for the accelerator, which on a GPU drains the queue of launched kernels every step.

    * ``skip`` must decide before ``optimizer.step()``, so it syncs once per update (and
      all-reduces a 2-number flag under several processes).
    * ``stop`` (the default) never waits for the current update: each update's flag is
      recorded on the device and read one update later, when the device has long passed it.
      Before anything is evaluated or saved, :meth:`check_now` reads the flags of every update
      so far and checks the weights, so a checkpoint never holds non-finite weights.

    SIGTERM only sets a flag; the agreed flag (an all-reduce, so a signal that reached one
    process stops all of them at the same step) is read at update boundaries.
    """

    def __init__(self, accelerator: Accelerator, on_nonfinite: str):
        self.acc = accelerator
        self.device = accelerator.device
        self.skip = on_nonfinite == "skip"
        self.multi = accelerator.num_processes > 1
        # With fp16 the GradScaler owns gradient overflow (it skips the step and lowers the
        # scale): only the loss is checked then.
        self.check_grads = accelerator.scaler is None
        self.signal = False  # set by the SIGTERM handler of this process
        self.consecutive_skips = 0
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        self._pending = None  # (agreed flags of the last update, on the host, CUDA event)
        self._previous = None  # the update before: what poll() reads
        self._agreed_signal = False  # skip mode: SIGTERM agreed at the last sync

    @contextlib.contextmanager
    def catching_sigterm(self):
        def handler(signum, frame):
            self.signal = True  # just a flag: it is acted upon at the next update boundary

        try:
            previous = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def nonfinite(self, loss: torch.Tensor, grad_norm, params) -> torch.Tensor:
        """A device bool: is this update's summed loss, or its gradient norm, non-finite?"""
        bad = ~torch.isfinite(loss)
        if self.check_grads:
            if grad_norm is None:  # no clipping (or a backend that clips inside): measure
                grads = [p.grad for p in params if p.grad is not None]
                grad_norm = torch.nn.utils.get_total_norm(grads) if grads else None
            if isinstance(grad_norm, torch.Tensor):
                bad = bad | ~torch.isfinite(grad_norm.to(self.device))
        return bad

    def agree_now(self, bad: Optional[torch.Tensor], at_end: bool = False):
        """Sync now. ``skip`` mode: True when this update must be dropped on every process
        (also notes an agreed SIGTERM for :meth:`poll`). ``at_end``: whether any process got
        SIGTERM."""
        if at_end:
            flags = torch.tensor([0.0, float(self.signal)], device=self.device)
        else:
            flags = torch.stack([bad.float(), torch.full((), float(self.signal), device=self.device)])
        if self.multi:
            flags = self.acc.reduce(flags, "sum")
        bad_any, signal_any = (v > 0 for v in flags.tolist())
        if at_end:
            return signal_any
        self._agreed_signal = signal_any
        return bad_any

    def drop_step(self, optimizer) -> None:
        """Neither optimizer nor scheduler moves; the gradients are zeroed by the caller."""
        scaler = self.acc.scaler
        if scaler is not None:  # reset its per-step state, lowering the scale as for an overflow
            scaler.update(scaler.get_scale() * scaler.get_backoff_factor())

    def record(self, bad: torch.Tensor, step: int) -> None:
        """``stop`` mode: remember the first bad update on the device; start agreeing on flags
        without waiting for them."""
        self._first_bad = torch.where(bad & (self._first_bad < 0),
                                      torch.full_like(self._first_bad, step), self._first_bad)
        flags = torch.stack([(self._first_bad >= 0).float(),
                             torch.full((), float(self.signal), device=self.device)])
        if self.multi:
            flags = self.acc.reduce(flags, "sum")
        self._previous = self._pending
        if self.device.type == "cuda":
            event = torch.cuda.Event()
            host = flags.to("cpu", non_blocking=True)
            event.record()
            self._pending = (host, event)
        else:
            self._pending = (flags, None)

    def poll(self) -> tuple[bool, bool]:
        """At an update boundary: (a non-finite value was seen, SIGTERM agreed), as of one
        update ago in ``stop`` mode (no waiting) and as of now in ``skip`` mode."""
        if self.skip:
            return False, self._agreed_signal or (not self.multi and self.signal)
        previous, self._previous = self._previous, None
        if previous is None:
            return False, not self.multi and self.signal
        host, event = previous
        if event is not None:
            event.synchronize()
        bad_any, signal_any = (v > 0 for v in host.tolist())
        return bad_any, signal_any or (not self.multi and self.signal)

    def check_now(self, model) -> tuple[Optional[int], bool]:
        """Collective, synced: (first non-finite update of any process or None, whether any
        trainable weight is non-finite)."""
        params = [p for p in model.parameters() if p.requires_grad]
        weights_bad = torch.stack([~torch.isfinite(p).all() for p in params]).any() if params \
            else torch.zeros((), dtype=torch.bool, device=self.device)
        first = self._first_bad.clone() if not self.skip else torch.full_like(self._first_bad, -1)
        row = torch.stack([first, weights_bad.long().to(self.device)]).reshape(1, 2)
        rows = self.acc.gather(row) if self.multi else row
        firsts = [v for v in rows[:, 0].tolist() if v >= 0]
        return (min(firsts) if firsts else None), bool(rows[:, 1].max().item())


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
    if not (path / STATE_FILE).is_file() or not CHECKPOINT_NAME.fullmatch(path.name):
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


CHECKPOINT_NAME = re.compile(r"step_(\d+)")


def list_checkpoints(stage_dir: Path) -> list[Path]:
    """Complete checkpoints of a stage, oldest first: folders named exactly ``step_N`` that
    hold ``trainer_state.json`` (``.partial``/``.trash`` folders never count)."""
    if not stage_dir.is_dir():
        return []
    return sorted((p for p in stage_dir.glob("step_*")
                   if CHECKPOINT_NAME.fullmatch(p.name) and p.is_dir() and (p / STATE_FILE).is_file()),
                  key=_step_of)


def _step_of(checkpoint: Path) -> int:
    match = CHECKPOINT_NAME.fullmatch(Path(checkpoint).name)
    return int(match.group(1)) if match else -1


def _adamw(groups: list[dict], learning_rate: float) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (one kernel for all parameters: faster on CPUs and GPUs
    alike, and what the Trainer uses since torch 2.8), else torch's default implementation."""
    try:
        return torch.optim.AdamW(groups, lr=learning_rate, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(groups, lr=learning_rate)


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


# Kept for callers of the former private helper.
_write_json = write_json
