"""The training and evaluation loop every recipe uses, on Accelerate (:class:`Engine`).

:meth:`Engine.train` runs one :class:`~.stage.Stage`: prepare model/optimizer/data, warm up
and decay the learning rate, accumulate gradients with ``accelerator.accumulate``, clip,
evaluate every epoch or N steps (outputs gathered once per pass), checkpoint (:mod:`.checkpoints`),
keep the best checkpoint on the chosen metric, stop early when asked, and end with the best
weights loaded. NaN/inf values and SIGTERM are watched by :mod:`.faults`.

The order of everything that draws random numbers (dropout, masking, shuffling) or that
Accelerate registers (``prepare``) is part of the results: the same seeds give the same
numbers, and a resumed run the numbers of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import datasets
import torch
from accelerate import Accelerator
from accelerate.utils import is_npu_available, is_xpu_available
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..data.columns import column_values
from ..data.tokenize import make_loader
from ..errors import ConfigError
from ..metrics import classification_metrics
from ..probe import fit_output_layer, output_layer
from .checkpoints import FINISHED, CheckpointStore
from .faults import (FaultGuard, check_finite, give_up_after_skips, stop_if_preempted_after_stage,
                     stop_nonfinite, stop_preempted)
from .stage import Stage, StageResult

logger = logging.getLogger(__name__)

STRETCHED_EVALUATIONS = 10  # evaluations of a stage stretched to ``Stage.min_updates``


def make_accelerator(**kwargs) -> Accelerator:
    """An Accelerator that also does the right thing for multi-process runs on CPUs.

    ``accelerate launch --multi_gpu --num_processes N`` on a machine without GPUs starts N
    processes that each believe they run alone (``DistributedType.NO``): every sample would be
    trained and evaluated N times. Asking for the CPU there makes them one gloo group
    (``DistributedType.MULTI_CPU``).
    """
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    no_accelerator = not (torch.cuda.is_available() or is_xpu_available() or is_npu_available())
    sharded = [name for name in ("FSDP", "DEEPSPEED") if _env_flag(f"ACCELERATE_USE_{name}")]
    if launched and no_accelerator and sharded and os.environ.get("RANK", "0") == "0":
        # accelerate would drop the request silently: say what runs instead.
        logger.warning("%s was requested, but there is no GPU: the %s processes run as plain DDP on "
                       "the CPU (distributed_type MULTI_CPU in results.json), with unsharded "
                       "parameters.", sharded[0], os.environ["WORLD_SIZE"])
    return Accelerator(cpu=launched and no_accelerator, **kwargs)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def fsdp2_units_around_embeddings(plugin, model: torch.nn.Module) -> None:
    """FSDP2 with the transformer-based auto-wrap policy: shard no class that contains the input
    embeddings as a unit of its own.

    accelerate (1.15) wraps every class in the model's ``_no_split_modules`` first, then gives
    the input embeddings a unit of their own. For BERT-family models ``_no_split_modules``
    holds ``BertEmbeddings``/``RobertaEmbeddings``, so the word embeddings are already sharded
    (DTensor) when ``fully_shard`` reaches them; torch (2.13) then takes them for tensor
    parallelism and fails in ``DeviceMesh._concatenate`` (``TypeError: Invariant encountered:
    value was None``). Without that class the embeddings get exactly one unit, the layers theirs.
    """
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    policy = getattr(plugin, "auto_wrap_policy", None)
    if getattr(plugin, "fsdp_version", 1) != 2 or getattr(policy, "func", policy) is not transformer_auto_wrap_policy:
        return
    embeddings = getattr(model, "get_input_embeddings", lambda: None)()
    names = plugin.transformer_cls_names_to_wrap or list(getattr(model, "_no_split_modules", None) or [])
    if embeddings is None or not names:
        return
    holding = {type(m).__name__ for m in model.modules() if m is not embeddings
               and any(sub is embeddings for sub in m.modules())}
    plugin.transformer_cls_names_to_wrap = [name for name in names if name not in holding]


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """`training.gradient_checkpointing`: on the outermost transformers model inside ``model``
    (a PEFT or strategy wrapper holds one). Non-reentrant checkpointing: it needs no input that
    requires grad (LoRA over frozen embeddings) and restores the RNG state, so dropout, and so
    the results, are those of a run without it."""
    from transformers import PreTrainedModel

    inner = next((m for m in model.modules() if isinstance(m, PreTrainedModel)), None)
    if inner is None or not inner.supports_gradient_checkpointing:
        name = type(inner or model).__name__
        raise ConfigError(f"`training.gradient_checkpointing` is on, but {name} does not support it: "
                          "turn it off.")
    inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def unwrap(accelerator: Accelerator, model) -> torch.nn.Module:
    """The plain module inside a prepared one: no DDP/FSDP wrapper, no ``torch.compile``
    wrapper (a compiled module's weights are named ``_orig_mod.*``; saving and the next stage
    need the plain names)."""
    return accelerator.unwrap_model(model, keep_torch_compile=False)


def full_state_dict(accelerator: Accelerator, model) -> dict:
    """The whole model's weights (gathered under FSDP: a collective), with plain names."""
    state_dict = accelerator.get_state_dict(model)
    return {key.removeprefix("_orig_mod."): value for key, value in state_dict.items()}


@contextlib.contextmanager
def evaluation_loader(accelerator: Accelerator, loader) -> Iterator:
    """``loader`` prepared for this run's processes, for one pass of evaluation.

    Prepared: sharded across the processes (and, for ``gather_for_metrics``, which learns
    from the prepared loader which samples DDP repeats to even out the last batch). Afterwards
    the Accelerator forgets it, so that no checkpoint includes it and the loaders a checkpoint
    holds stay those of training. Accelerate has no public way to prepare a loader without
    registering it, or to unregister one (``free_memory`` drops the model and optimizer too);
    the module-level ``accelerate.data_loader.prepare_data_loader`` registers nothing but would
    mean copying every setting ``Accelerator.prepare_data_loader`` passes it (device mesh
    included, a private method). So this edits the private list, in this one place.
    """
    prepared = accelerator.prepare(loader)
    try:
        yield prepared
    finally:
        accelerator._dataloaders.remove(prepared)


def _holds_prepared_objects(accelerator: Accelerator) -> bool:
    """Whether an earlier stage (of any Engine on this Accelerator) left prepared objects
    registered. Accelerate keeps them in private lists and has no public way to ask."""
    return any(getattr(accelerator, name, None) for name in ("_models", "_optimizers", "_schedulers", "_dataloaders"))


def gather_rows(accelerator: Accelerator, *columns: torch.Tensor, idx: torch.Tensor) -> tuple:
    """``columns`` (one row per example) and ``idx`` from every process, each row once, in
    row order: one exchange for a whole pass.

    DDP repeats some rows to even out the last batch of each process (and the processes may
    hold different numbers of rows): rows are padded to the longest process's count with
    index -1, gathered, and kept once per row index."""
    if accelerator.num_processes > 1:
        idx = accelerator.gather(accelerator.pad_across_processes(idx, pad_index=-1))
        columns = tuple(accelerator.gather(accelerator.pad_across_processes(column)) for column in columns)
    order = torch.argsort(idx, stable=True)
    ordered = idx[order]
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    keep = order[first & (ordered >= 0)]
    return (*(column[keep] for column in columns), idx[keep])


@dataclass
class _LoopState:
    """Where a stage stands: saved with every checkpoint (``trainer_state.json``)."""

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


@dataclass
class _StageRun:
    """One stage in progress: what :meth:`Engine.train` and its helpers work with."""

    stage: Stage
    eval_sets: dict
    store: CheckpointStore
    # Prepared by Accelerate (a finished stage needs them too: its checkpoint is loaded into them).
    model: Any
    optimizer: Any
    scheduler: Any
    train_loader: Any
    aux_loader: Any  # None without ``stage.aux``
    updates_per_epoch: int
    total_updates: int
    eval_every: Optional[int]  # updates between evaluations, when not every epoch/`eval_steps`
    # Set by Engine._start, once the state is known (a resumed one or a fresh one).
    state: _LoopState = field(default_factory=_LoopState)
    guard: Optional[FaultGuard] = None
    params: list = field(default_factory=list)  # trainable parameters (gradient checks)
    progress: Any = None
    # Loss summed on the device and read back only when logged (no per-step host sync): since
    # the last log line (part of the checkpoint, so resumed logs match) and in this update.
    running_loss: Optional[torch.Tensor] = None
    update_loss: Optional[torch.Tensor] = None
    update_batches: int = 0
    started: float = 0.0  # perf_counter() at the start, less the training time of earlier attempts

    @property
    def cfg(self):
        return self.stage.training


class Engine:
    """Trains and evaluates classifiers on one Accelerator; each stage checkpoints into
    ``checkpoints_dir/<stage name>/`` (a run's :attr:`~hf_transfer.layout.RunLayout.checkpoints`)."""

    def __init__(self, accelerator: Accelerator, tokenizer, label_names: list[str], checkpoints_dir: Path,
                 pad_to_multiple_of: Optional[int] = None):
        self.accelerator = accelerator
        # Evaluation batches (training: the stage's config).
        self.pad_to_multiple_of = batch_multiple(pad_to_multiple_of, accelerator.device)
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.checkpoints_dir = Path(checkpoints_dir)
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
            groups = column_values(split, "group") if "group" in split.column_names else None
            for group, rows in _rows_by_group(groups, indices).items():
                results[f"{name}[{group}]"] = classification_metrics(
                    [predictions[i] for i in rows], [references[i] for i in rows], self.label_names
                )
        return results

    def predict(self, model, split: datasets.Dataset, batch_size: int):
        """Predicted ids, gold ids and row indices (in row order), each row exactly once,
        on every process."""
        gathered = self._gathered(model, split, batch_size, _logits)
        if gathered is None:
            return [], [], []
        logits, labels, idx = gathered
        return logits.argmax(-1).tolist(), labels.tolist(), idx.tolist()

    def predict_logits(self, model, split: datasets.Dataset, batch_size: int):
        """Logits (float32, on the CPU) and gold ids of every row of ``split``, in row order, on
        every process."""
        logits, labels = self.predict_outputs(model, split, batch_size, _logits)
        return logits.float(), labels

    def predict_outputs(self, model, split: datasets.Dataset, batch_size: int,
                        read: Callable[[Any, dict], torch.Tensor]):
        """``read(model, batch)`` (one row per example: logits, features) and the gold ids of
        every row of ``split``, in row order, on every process, on the CPU."""
        outputs, labels, _ = self._gathered(model, split, batch_size, read)
        return outputs.cpu(), labels.cpu()

    @torch.no_grad()
    def _gathered(self, model, split: datasets.Dataset, batch_size: int, read):
        """(``read(model, batch)``, gold ids, row indices) of every row of ``split`` exactly
        once, in row order, from every process; None for an empty split.

        Each process keeps its batches' outputs on the device and the processes exchange them
        once per pass (not once per batch): no host sync and no collective per batch."""
        # Longest rows first: similar lengths share a batch, so little padding is computed.
        batches = make_loader(split, self.tokenizer, batch_size, shuffle=False, group_by_length=True,
                              pad_to_multiple_of=self.pad_to_multiple_of)
        parts = []
        with evaluation_loader(self.accelerator, batches) as loader:
            model.eval()
            for batch in loader:
                idx = batch.pop("idx")
                outputs = read(model, {k: v for k, v in batch.items() if k != "labels"})
                parts.append((outputs, batch["labels"], idx))
        # Every process has the same number of batches (Accelerate's even_batches), so either
        # all of them reach the gather below or none does.
        if not parts:
            return None
        outputs, labels, idx = (torch.cat(column) for column in zip(*parts))
        return gather_rows(self.accelerator, outputs, labels, idx=idx)

    # --- training -----------------------------------------------------------------------

    def train(self, stage: Stage, model, eval_sets: dict[str, datasets.Dataset],
              resume: Union[None, str, Path] = None):
        """Run ``stage`` on ``model``; returns ``(prepared_model, StageResult)``.

        ``resume`` comes from :func:`~.checkpoints.resume_plan`: None (start fresh),
        ``FINISHED`` (restore the stage's best checkpoint and recorded result) or a checkpoint
        folder to continue from.

        Raises :class:`NonFiniteError` on a NaN/inf loss or gradient (``on_nonfinite: stop``)
        and :class:`Preempted` after SIGTERM, once a checkpoint is safely on disk.
        """
        _check_selection(stage, eval_sets)
        run = self._prepare(stage, model, eval_sets)
        if resume == FINISHED:
            return run.model, self._restore_finished(run)
        self._start(run, resume)
        if stage.fit_head and not resume:
            self._fit_head(run)
        acc, state, stop = self.accelerator, run.state, False
        run.model.train()
        with run.guard.catching_stop_signals():
            aux_batches = self._aux_batches(run)
            while state.step < run.total_updates and not stop:
                for batch in self._epoch_batches(run):
                    aux_batch = None if aux_batches is None else next(aux_batches)
                    with acc.accumulate(run.model):
                        loss = self._loss(run, batch, aux_batch)
                        acc.backward(loss)
                        run.update_loss += loss.detach()
                        run.update_batches += 1
                        # At the last micro-batch of an update: step (or drop a non-finite one).
                        skipped = self._optimizer_step(run) if acc.sync_gradients else False
                    state.batches_in_epoch += 1
                    if not acc.sync_gradients:
                        continue  # still accumulating this update
                    end_of_epoch = self._count_update(run, skipped)
                    stop = self._at_update_boundary(run, end_of_epoch)
                    if stop or state.step >= run.total_updates:
                        break
            # Inside the signal handlers still: a signal now stops the run after the result.
            result = self._finish(run, stopped_early=stop)
        return run.model, result

    # --- training: set-up ---------------------------------------------------------------

    def _prepare(self, stage: Stage, model, eval_sets: dict) -> _StageRun:
        """Model, optimizer, loaders and schedule, prepared in the order the results depend on."""
        acc, cfg = self.accelerator, stage.training
        # A model handed on from a previous stage is still wrapped (DDP); start from the module,
        # and forget the previous stage's optimizer and loaders (they would be checkpointed).
        model = unwrap(acc, model)
        if _holds_prepared_objects(acc):  # free_memory runs gc.collect(): ~0.15 s even with nothing to free
            acc.free_memory()
        acc.gradient_accumulation_steps = cfg.gradient_accumulation_steps

        multiple = batch_multiple(cfg.pad_to_multiple_of, acc.device)
        train_loader = make_loader(stage.train, self.tokenizer, cfg.batch_size, shuffle=True,
                                   seed=cfg.seed, group_by_length=cfg.group_by_length,
                                   num_processes=acc.num_processes, pad_to_multiple_of=multiple)
        optimizer = _adamw(_parameter_groups(model, cfg.weight_decay), stage.learning_rate)
        if cfg.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        if acc.distributed_type.value == "FSDP":
            fsdp2_units_around_embeddings(acc.state.fsdp_plugin, model)
        model, optimizer, train_loader = acc.prepare(model, optimizer, train_loader)
        aux_loader = None if stage.aux is None else acc.prepare(
            make_loader(stage.aux, self.tokenizer, cfg.batch_size, shuffle=True, seed=cfg.seed,
                        pad_to_multiple_of=multiple))
        # Count steps on the prepared loader: under DDP each process sees 1/N of the batches.
        updates_per_epoch = math.ceil(len(train_loader) / cfg.gradient_accumulation_steps)
        epoch_updates = max(1, math.ceil(stage.num_epochs * updates_per_epoch))
        total_updates = cfg.max_steps or max(epoch_updates, stage.min_updates)
        if stage.fit_head and stage.num_epochs == 0:
            total_updates = 0  # the fitted probe is the whole stage, whatever max_steps says
        # Stretched to min_updates: evaluate every tenth of the stage, not every (tiny) epoch.
        eval_every = math.ceil(total_updates / STRETCHED_EVALUATIONS) \
            if not cfg.max_steps and stage.min_updates > epoch_updates else None
        # A prepared scheduler steps once per process per update, hence the factor.
        scheduler = acc.prepare(get_scheduler(
            cfg.lr_scheduler, optimizer,
            num_warmup_steps=math.ceil(cfg.warmup_ratio * total_updates) * acc.num_processes,
            num_training_steps=total_updates * acc.num_processes,
        ))
        return _StageRun(stage=stage, eval_sets=eval_sets,
                         store=CheckpointStore(acc, self.checkpoints_dir / stage.name),
                         model=model, optimizer=optimizer, scheduler=scheduler,
                         train_loader=train_loader, aux_loader=aux_loader,
                         updates_per_epoch=updates_per_epoch, total_updates=total_updates,
                         eval_every=eval_every)

    def _restore_finished(self, run: _StageRun) -> StageResult:
        result = run.store.load_finished(run.stage.name)
        self.global_step_offset += result.steps
        return result

    def _start(self, run: _StageRun, resume: Union[None, str, Path]) -> None:
        """The loop state (fresh, or loaded with the checkpoint to resume from), the fault
        guard, the progress bar and the loss sums."""
        acc, stage, cfg = self.accelerator, run.stage, run.cfg
        run.store.set_aside_stale(Path(resume) if resume else None)
        if resume:
            run.state = run.store.resume(Path(resume), _LoopState)
            run.store.last_saved_step = run.state.step
        state = run.state
        state.num_processes = acc.num_processes
        if run.total_updates:
            logger.info(
                "Stage %r: %d examples, %d updates (%d per epoch, batch %d x %d processes x %d "
                "accumulation), lr %g", stage.name, len(stage.train), run.total_updates,
                run.updates_per_epoch, cfg.batch_size, acc.num_processes,
                cfg.gradient_accumulation_steps, stage.learning_rate,
            )
        else:  # a fit-only stage (linear_probe): no learning rate applies
            logger.info("Stage %r: %d examples, no gradient updates%s", stage.name, len(stage.train),
                        " (the output layer is fitted)" if stage.fit_head else "")
        run.guard = FaultGuard(acc, cfg.on_nonfinite)
        run.params = [p for p in run.model.parameters() if p.requires_grad]
        run.progress = tqdm(total=run.total_updates, initial=state.step,
                            desc=f"train [{stage.name}]", disable=not acc.is_local_main_process,
                            dynamic_ncols=True)
        run.running_loss = torch.full((), state.loss_sum, device=acc.device)
        run.update_loss = torch.zeros((), device=acc.device)
        run.started = time.perf_counter() - state.train_seconds

    def _fit_head(self, run: _StageRun) -> None:
        """LP-FT's probe: the output layer fitted on the frozen representation, evaluated and
        checkpointed as step 0 (a candidate for the best checkpoint)."""
        stage = run.stage
        layer = output_layer(unwrap(self.accelerator, run.model))
        probe = fit_output_layer(self, run.model, layer, stage.train, run.eval_sets[stage.select_on],
                                 run.cfg.eval_batch_size, stage.metric_for_best or run.cfg.metric_for_best)
        run.state.history.append({"step": 0, "epoch": 0, "probe": probe})
        self._evaluate_and_checkpoint(run)
        run.model.train()

    def _aux_batches(self, run: _StageRun) -> Optional[Iterator[dict]]:
        """The ``aux`` batches from where the micro-batches done so far left them."""
        if run.aux_loader is None:
            return None
        consumed = run.state.epoch * len(run.train_loader) + run.state.batches_in_epoch
        return _cycle(self.accelerator, run.aux_loader, consumed)

    def _epoch_batches(self, run: _StageRun):
        """The current epoch's training batches (its seeded order), after those already
        consumed (by a resumed run), without the ``idx`` column."""
        loader, skip = run.train_loader, run.state.batches_in_epoch
        loader.set_epoch(run.state.epoch)
        batches = self.accelerator.skip_first_batches(loader, skip) if skip else loader
        return map(_without_idx, batches)

    # --- training: one update -------------------------------------------------------------

    def _loss(self, run: _StageRun, batch: dict, aux_batch: Optional[dict]) -> torch.Tensor:
        stage, model = run.stage, run.model
        if stage.loss_fn is None:
            loss = model(**batch).loss
        else:
            loss = stage.loss_fn(model, batch, aux_batch, run.state.step / run.total_updates)
        if stage.regularizer is not None:
            loss = loss + stage.regularizer(unwrap(self.accelerator, model))
        return loss

    def _optimizer_step(self, run: _StageRun) -> bool:
        """Clip, check for non-finite values, step; True when the update was dropped instead."""
        cfg, guard, optimizer = run.cfg, run.guard, run.optimizer
        norm = self.accelerator.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm) \
            if cfg.max_grad_norm is not None else None
        bad = guard.nonfinite(run.update_loss, norm, run.params)
        skipped = False
        if guard.skip:
            skipped = guard.agree_now(bad)  # one host sync per update
        else:
            guard.record(bad, run.state.step + 1)  # read one update later
        if skipped:
            guard.drop_step(optimizer)
        else:
            optimizer.step()
            run.scheduler.step()
        optimizer.zero_grad()
        return skipped

    def _count_update(self, run: _StageRun, skipped: bool) -> bool:
        """Book an update that just ended (done or dropped); True at the end of an epoch."""
        state = run.state
        state.step += 1
        if skipped:
            self._note_skipped(run)
        else:
            run.running_loss += run.update_loss
            state.loss_batches += run.update_batches
            run.guard.consecutive_skips = 0
        run.update_loss.zero_()
        run.update_batches = 0
        run.progress.update(1)
        end_of_epoch = state.batches_in_epoch >= len(run.train_loader)
        if end_of_epoch:
            state.epoch, state.batches_in_epoch = state.epoch + 1, 0
        return end_of_epoch

    def _note_skipped(self, run: _StageRun) -> None:
        state, stage = run.state, run.stage
        state.skipped_steps += 1
        run.guard.consecutive_skips += 1
        state.history.append({"step": state.step, "epoch": state.epoch,
                              "skipped": "non-finite loss or gradients"})
        logger.warning("Stage %r, optimizer step %d: non-finite loss or gradients; step skipped "
                       "(%d skipped so far).", stage.name, state.step, state.skipped_steps)
        give_up_after_skips(run.guard, stage.name, state.step, run.store.stage_dir)

    def _at_update_boundary(self, run: _StageRun, end_of_epoch: bool) -> bool:
        """Faults, logging, evaluation and SIGTERM between two updates; True: stop early."""
        state, cfg, last = run.state, run.cfg, run.state.step == run.total_updates
        bad_seen, preempted = run.guard.poll()
        if bad_seen:
            stop_nonfinite(run.guard, run.model, run.stage.name, run.store.stage_dir)
        if state.step % cfg.logging_steps == 0 or last:
            self._log_loss(run)
        stop = False
        if run.eval_every:
            due = state.step % run.eval_every == 0
        else:
            due = end_of_epoch if cfg.eval_strategy == "epoch" else state.step % cfg.eval_steps == 0
        if due or last:
            state.train_seconds = time.perf_counter() - run.started
            check_finite(run.guard, run.model, run.stage.name, run.store.stage_dir)
            stop = self._evaluate_and_checkpoint(run)
            run.model.train()
        if preempted and state.step < run.total_updates and not stop:
            state.train_seconds = time.perf_counter() - run.started
            self._checkpoint_and_stop(run)
        return stop

    def _log_loss(self, run: _StageRun) -> None:
        """The mean loss over processes and micro-batches since the last log line."""
        state = run.state
        if state.loss_batches:
            loss = self.accelerator.reduce(run.running_loss, "mean").item() / state.loss_batches
            lr = run.scheduler.get_last_lr()[0]
            state.history.append({"step": state.step, "epoch": state.epoch, "loss": round(loss, 5),
                                  "learning_rate": lr})
            run.progress.set_postfix(loss=f"{loss:.4f}")
            self.accelerator.log({"train/loss": loss, "train/learning_rate": lr},
                                 step=self.global_step_offset + state.step)
        run.running_loss.zero_()
        state.loss_batches = 0

    def _evaluate_and_checkpoint(self, run: _StageRun) -> bool:
        """Evaluate the selection set, checkpoint, track the best; True means stop early."""
        stage, cfg, state = run.stage, run.cfg, run.state
        metric = stage.metric_for_best or cfg.metric_for_best
        if stage.evaluate_fn is None:
            metrics = self.evaluate(run.model, {stage.select_on: run.eval_sets[stage.select_on]},
                                    cfg.eval_batch_size)[stage.select_on]
            logged = {k: metrics[k] for k in ("accuracy", "macro_f1")}
        else:
            metrics = logged = stage.evaluate_fn(self, run.model)
        value = metrics[metric]
        state.history.append({"step": state.step, "epoch": state.epoch, "eval_on": stage.select_on,
                              **logged})
        self.accelerator.log({f"eval/{stage.select_on}/{k}": v for k, v in logged.items()},
                             step=self.global_step_offset + state.step)
        improved = state.best_metric is None or (
            value > state.best_metric if stage.greater_is_better else value < state.best_metric)
        checkpoint = run.store.path_for(state.step)
        if improved:
            state.best_metric, state.best_step = value, state.step
            state.best_checkpoint, state.evals_without_improvement = str(checkpoint), 0
        else:
            state.evals_without_improvement += 1
        if self.accelerator.is_main_process:
            logger.info("step %d: %s %s = %.4f%s", state.step, stage.select_on, metric,
                        value, " (best)" if improved else "")
        self._save(run, checkpoint)
        run.store.rotate(state.best_checkpoint, cfg.save_total_limit)
        patience = cfg.early_stopping_patience
        return patience is not None and state.evals_without_improvement >= patience

    def _save(self, run: _StageRun, checkpoint: Path) -> None:
        # Collective: the checkpoint holds the mean of every process's running loss sum.
        running_loss = run.running_loss.detach().clone()
        run.state.loss_sum = self.accelerator.reduce(running_loss, "mean").item()
        run.store.save(checkpoint, run.state)

    def _checkpoint_and_stop(self, run: _StageRun) -> None:
        """SIGTERM or Ctrl-C: checkpoint at this update boundary (unless just done), then stop."""
        state, store = run.state, run.store
        checkpoint = store.path_for(state.step)
        if store.last_saved_step != state.step:
            check_finite(run.guard, run.model, run.stage.name, store.stage_dir)
            self._save(run, checkpoint)
        if self.accelerator.is_main_process:
            logger.warning("%s: saved %s; stopping.", run.guard.signal_name, checkpoint)
        stop_preempted(run.stage.name, state.step, checkpoint, run.guard.signal_name)

    # --- training: the end ------------------------------------------------------------------

    def _finish(self, run: _StageRun, stopped_early: bool) -> StageResult:
        """The stage's result, written as ``result.json``, with the best weights loaded."""
        stage, state = run.stage, run.state
        run.progress.close()
        result = StageResult(
            name=stage.name, steps=state.step,
            epochs_completed=round(state.epoch + state.batches_in_epoch / len(run.train_loader), 4),
            best_step=state.best_step, best_metric=state.best_metric,
            metric_for_best=stage.metric_for_best or run.cfg.metric_for_best,
            select_on=stage.select_on, stopped_early=stopped_early,
            train_seconds=round(state.train_seconds, 3), history=state.history,
            skipped_steps=state.skipped_steps,
        )
        run.store.load_best(state.best_checkpoint, state.best_step)
        run.store.write_result(result)
        self.global_step_offset += state.step
        stop_if_preempted_after_stage(run.guard, stage.name, run.store.result_file)
        return result


def _logits(model, batch: dict) -> torch.Tensor:
    return model(**batch).logits


def batch_multiple(setting: Optional[int], device: torch.device) -> Optional[int]:
    """What batches are padded to a multiple of: `training.pad_to_multiple_of`, where null
    means 8 on a CUDA GPU (tensor cores, and few distinct shapes for the kernels' caches and
    ``torch.compile``: measured faster there, see docs/performance.md) and the longest row
    elsewhere (on a CPU every padded token costs its full share)."""
    if setting is None:
        return 8 if device.type == "cuda" else None
    return None if setting == 1 else setting


def _check_selection(stage: Stage, eval_sets: dict) -> None:
    if stage.evaluate_fn is None and stage.select_on not in eval_sets:
        raise ConfigError(
            f"Stage {stage.name!r} selects on {stage.select_on!r}, which is not evaluated; "
            f"choose one of {', '.join(eval_sets)}."
        )


def _without_idx(batch: dict) -> dict:
    batch.pop("idx", None)  # row ids, for evaluation only: not a model input
    return batch


def _cycle(accelerator: Accelerator, loader, consumed: int):
    """Batches of ``loader`` without end, starting after ``consumed`` of them: each pass
    is one epoch of its seeded sampler, so the sequence is the same after a resume."""
    epoch, offset = divmod(consumed, len(loader))
    while True:
        loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, offset) if offset else loader
        for batch in batches:
            yield _without_idx(batch)
        epoch, offset = epoch + 1, 0


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
