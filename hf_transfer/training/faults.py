"""Faults during training: a NaN/inf loss, gradient or weight, and SIGTERM (preemption).

A non-finite value stops the run before anything non-finite is saved
(``training.on_nonfinite: stop``, the default) or drops that update (``skip``); SIGTERM makes
every process checkpoint at the same update boundary and stop (:class:`Preempted`, exit code
75). :class:`FaultGuard` makes every process take the same decision; the functions below raise
with advice on what to do next. See :class:`FaultGuard` for what the checks cost.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import NoReturn, Optional

import torch
from accelerate import Accelerator

from ..errors import NonFiniteError, Preempted
from .checkpoints import list_checkpoints

RESUME_HINT = ("Resume with the same command plus `--output.resume_from_checkpoint latest` "
               "(same output.dir).")
# `on_nonfinite: skip` gives up after this many consecutive bad updates: skipping cannot help.
MAX_CONSECUTIVE_SKIPS = 10


class FaultGuard:
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
        self.signal = False  # set by the SIGTERM/SIGINT handler of this process
        self.signal_name = "SIGTERM"  # which one, for the message
        self.consecutive_skips = 0
        self._first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        self._pending = None  # (agreed flags of the last update, on the host, CUDA event)
        self._previous = None  # the update before: what poll() reads
        self._agreed_signal = False  # skip mode: SIGTERM agreed at the last sync

    @contextlib.contextmanager
    def catching_stop_signals(self):
        """SIGTERM (preemption) and Ctrl-C (SIGINT) only set a flag: at the next update boundary
        every process checkpoints and stops (:class:`Preempted`, resumable). A second Ctrl-C
        stops at once (``KeyboardInterrupt``), without that checkpoint."""
        def handler(signum, frame):
            if signum == signal.SIGINT and self.signal:
                raise KeyboardInterrupt
            self.signal, self.signal_name = True, signal.Signals(signum).name
            if signum == signal.SIGINT:  # os.write: safe inside a signal handler, unlike logging
                os.write(2, b"\nCtrl-C: stopping at the next optimizer step with a checkpoint "
                            b"(resumable); press Ctrl-C again to stop at once, without one.\n")

        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                previous[signum] = signal.signal(signum, handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

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


def _nonfinite_advice(stage_dir: Path) -> str:
    newest = list_checkpoints(stage_dir)
    kept = (f"The last good checkpoint is {newest[-1]}." if newest
            else "No checkpoint had been written yet.")
    return (f"{kept} Lower `training.learning_rate`, keep gradient clipping "
            "(`training.max_grad_norm`), check the data and mixed precision, then resume with "
            "`--output.resume_from_checkpoint latest`; or set `--training.on_nonfinite skip` to "
            "drop such steps.")


def check_finite(guard: FaultGuard, model, stage_name: str, stage_dir: Path) -> None:
    """Before anything is evaluated or saved: every update so far and the weights are finite
    (a collective: every process takes the same decision)."""
    first_bad, weights_bad = guard.check_now(model)
    if first_bad is not None or weights_bad:
        stop_nonfinite(guard, model, stage_name, stage_dir, first_bad, weights_bad)


def stop_nonfinite(guard: FaultGuard, model, stage_name: str, stage_dir: Path,
                   first_bad: Optional[int] = None, weights_bad: bool = False) -> NoReturn:
    """Raise :class:`NonFiniteError`, naming the first bad update (found with a collective
    check unless given)."""
    if first_bad is None and not weights_bad:
        first_bad, weights_bad = guard.check_now(model)
    what = (f"the loss or gradients became non-finite (NaN/inf) at optimizer step {first_bad}"
            if first_bad is not None else "the weights became non-finite (NaN/inf)")
    raise NonFiniteError(
        f"Stage {stage_name!r}: {what}. Training stopped (`training.on_nonfinite: stop`); "
        f"nothing was saved after that step. {_nonfinite_advice(stage_dir)}"
    )


def give_up_after_skips(guard: FaultGuard, stage_name: str, step: int, stage_dir: Path) -> None:
    """``skip`` mode: raise :class:`NonFiniteError` after ``MAX_CONSECUTIVE_SKIPS`` dropped
    updates in a row."""
    if guard.consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
        raise NonFiniteError(
            f"Stage {stage_name!r}: {guard.consecutive_skips} optimizer steps in a row (up to "
            f"step {step}) had a non-finite loss or gradients; skipping cannot recover "
            f"from that. {_nonfinite_advice(stage_dir)}"
        )


def stop_preempted(stage_name: str, step: int, checkpoint: Path, signal_name: str = "SIGTERM") -> NoReturn:
    """SIGTERM or SIGINT during a stage, once ``checkpoint`` is on disk."""
    raise Preempted(
        f"Received {signal_name}: stopped stage {stage_name!r} at optimizer step {step} and "
        f"saved the checkpoint {checkpoint}. {RESUME_HINT}"
    )


def stop_if_preempted_after_stage(guard: FaultGuard, stage_name: str, result_file: Path) -> None:
    """End of a stage (a collective): raise :class:`Preempted` if any process got SIGTERM."""
    if guard.agree_now(None, at_end=True):
        raise Preempted(
            f"Received {guard.signal_name}: stage {stage_name!r} had just finished; its result is saved "
            f"in {result_file}. {RESUME_HINT}"
        )
