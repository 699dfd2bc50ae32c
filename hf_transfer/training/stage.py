"""What a recipe asks the training loop to do (:class:`Stage`) and what it gets back
(:class:`StageResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import datasets
import torch

from ..config import TrainingConfig


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
    # At least this many optimizer updates, however few rows ``train`` has (a few-shot stage of
    # 16 rows would otherwise take one update an epoch). A stage stretched this way evaluates
    # every tenth of its updates instead of every epoch.
    min_updates: int = 0
    # Before the first update, fit the output layer as a logistic regression on the frozen
    # representation of ``train`` (:mod:`hf_transfer.probe`, LP-FT's probe), then evaluate and
    # checkpoint that state as step 0, so that selection keeps it when training does not beat it.
    # With ``num_epochs`` 0 the fit is the whole stage.
    fit_head: bool = False
    # Whose labels ``train`` carries: ("source",), ("target",), both, or () (a masked-LM stage).
    # `strategy.label_shift` applies when the last stage trains on the source's labels alone.
    label_roles: tuple = ("source",)
    # A strategy's ``enter_stage`` builds this stage's model (e.g. a masked LM), not the run.
    builds_model: bool = False
    # A stage that starts a new classifier (the previous one left none) builds it on this
    # encoder folder instead of `model.name_or_path` (e.g. the one `tapt` adapted).
    start_from: Optional[str] = None


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
