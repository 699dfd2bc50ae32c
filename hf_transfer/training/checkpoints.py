"""Checkpoints on disk: ``checkpoints/<stage>/step_NNNNNNN/`` folders and ``result.json``.

Every file is published atomically (:mod:`hf_transfer.atomic`), so after a kill at any moment
``latest`` finds the newest complete checkpoint. A finished stage leaves ``result.json`` in its
folder, so a resumed run skips it and restores its best weights (:func:`resume_plan`).
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections import OrderedDict
from dataclasses import asdict, fields
from pathlib import Path
from typing import Optional

from accelerate import Accelerator
from accelerate.utils.constants import SAFE_MODEL_NAME
from safetensors import SafetensorError, safe_open

from ..atomic import PARTIAL, clean_leftovers, publish_dir, remove_tree, write_json
from ..errors import ConfigError
from .stage import StageResult

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
RESULT_FILE = "result.json"
# accelerate unpickles optimizer/scheduler/sampler states with torch.load; ask for the
# restricted unpickler explicitly (its RNG states are always read with weights_only=True).
# Checkpoints are still trusted input: resume only from checkpoints your runs wrote.
SAFE_LOAD = {"weights_only": True}
FINISHED = "finished"  # resume plan entry: the stage completed in an earlier attempt
CHECKPOINT_NAME = re.compile(r"step_(\d+)")


def weights_bytes(model) -> int:
    """Bytes of the model's weights in float32 (works on a model built on the meta device)."""
    return 4 * sum(p.numel() for p in model.parameters())


def checkpoint_bytes(model, tuning_method: str) -> int:
    """A rough size of one checkpoint: under full tuning the weights and Adam's two moments for
    every weight; under the other methods the size of the weights, an upper bound for LoRA and
    frozen (their checkpoints hold only what trains and its optimizer state: far less)."""
    return weights_bytes(model) * (3 if tuning_method == "full" else 1)


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


def resume_plan(checkpoints_dir: Path, stage_names: list[str], resume: Optional[str]) -> dict:
    """What each stage resumes from: None, ``FINISHED`` or a checkpoint folder (stages
    checkpoint into ``checkpoints_dir/<stage>/``).

    ``latest``: finished stages (those with a ``result.json``) are restored, the first
    unfinished one continues from its newest complete checkpoint, later ones start fresh.
    A checkpoint folder: the stages before its own must have finished; its stage continues
    from it; later ones start fresh.
    """
    plan = dict.fromkeys(stage_names)
    if not resume:
        return plan
    checkpoints = Path(checkpoints_dir)
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


def _from_saved(cls, data: dict):
    """A dataclass from saved JSON; keys it does not know (an older or newer version) are dropped."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


class CheckpointStore:
    """The checkpoints of one stage, ``checkpoints/<stage>/``, on every process of a run.

    Methods that call the Accelerator (save, load, wait) are collectives: every process calls
    them; files are written by the main process only (each process writes its own RNG state).
    """

    def __init__(self, accelerator: Accelerator, stage_dir: Path):
        self.acc = accelerator
        self.stage_dir = Path(stage_dir)
        # The step whose checkpoint is on disk for this attempt (written or resumed from):
        # SIGTERM right after it need not write it again.
        self.last_saved_step: Optional[int] = None

    @property
    def result_file(self) -> Path:
        return self.stage_dir / RESULT_FILE

    def path_for(self, step: int) -> Path:
        return self.stage_dir / f"step_{step:07d}"

    def newest(self) -> Optional[Path]:
        checkpoints = list_checkpoints(self.stage_dir)
        return checkpoints[-1] if checkpoints else None

    # --- writing ------------------------------------------------------------------------

    def save(self, checkpoint: Path, state) -> None:
        """``save_state`` into ``step_N.partial``, then rename: a kill at any moment never
        leaves a half-written folder under a name that ``latest`` would pick (a checkpoint
        counts only once ``state`` (a dataclass) as ``trainer_state.json``, written last, is
        there)."""
        acc = self.acc
        partial = checkpoint.with_name(checkpoint.name + PARTIAL)
        if acc.is_main_process:
            clean_leftovers(checkpoint.parent, "step_*")  # what a killed attempt left behind
            partial.mkdir(parents=True)
        acc.wait_for_everyone()
        handle = acc.register_save_state_pre_hook(_keep_trained_weights_only)
        try:
            acc.save_state(str(partial))
        finally:
            handle.remove()
        # Every process writes its own random states: all must be done before the rename.
        acc.wait_for_everyone()
        if acc.is_main_process:
            write_json(partial / STATE_FILE, asdict(state))
            publish_dir(partial, checkpoint)
        acc.wait_for_everyone()
        self.last_saved_step = state.step

    def rotate(self, best_checkpoint: Optional[str], limit: int) -> None:
        """Keep the newest ``limit`` checkpoints (at least 1), and the best one besides."""
        if not self.acc.is_main_process:
            return
        checkpoints = list_checkpoints(self.stage_dir)
        best = Path(best_checkpoint).name if best_checkpoint else None
        removable = [c for c in checkpoints[:-1] if c.name != best]
        for old in removable[: max(0, len(checkpoints) - max(limit, 1))]:
            remove_tree(old)

    def write_result(self, result: StageResult) -> None:
        """``result.json``: the stage counts as finished from now on."""
        if self.acc.is_main_process:
            write_json(self.result_file, asdict(result))
        self.acc.wait_for_everyone()

    def set_aside_stale(self, resume: Optional[Path]) -> None:
        """Outputs of an earlier attempt that this one would replace (a stage started afresh
        over old checkpoints, or resumed from an older checkpoint than its newest) are moved
        to ``checkpoints/<stage>.superseded-N/``: never deleted, never picked by ``latest``."""
        acc, stage_dir = self.acc, self.stage_dir
        if acc.is_main_process and stage_dir.is_dir():
            clean_leftovers(stage_dir)
            newer = [c for c in list_checkpoints(stage_dir)
                     if resume is None or _step_of(c) > _step_of(resume)]
            stale = ([self.result_file] if self.result_file.is_file() else []) + newer
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

    # --- reading ------------------------------------------------------------------------

    def resume(self, checkpoint: Path, state_type):
        """Load ``checkpoint`` into the prepared objects; return its saved loop state as a
        ``state_type`` (a dataclass with ``num_processes`` and ``best_checkpoint``)."""
        acc = self.acc
        logger.info("Resuming from %s", checkpoint)
        saved = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        state = _from_saved(state_type, saved)
        if state.num_processes not in (None, acc.num_processes):
            logger.warning("%s was written by %d process(es), this run has %d: batches (and so "
                           "results) will differ from an uninterrupted run.", checkpoint,
                           state.num_processes, acc.num_processes)
        if not (checkpoint / f"random_states_{acc.process_index}.pkl").is_file():
            logger.warning("%s has no random state for process %d: dropout and shuffling will "
                           "differ from an uninterrupted run.", checkpoint, acc.process_index)
        self._load(checkpoint)
        # The best checkpoint is a sibling: a run folder that was moved or copied still resumes.
        if state.best_checkpoint:
            state.best_checkpoint = str(self.stage_dir / Path(state.best_checkpoint).name)
        return state

    def load_finished(self, stage_name: str) -> StageResult:
        """A stage finished in an earlier attempt: its recorded result, its best weights loaded."""
        result = _from_saved(StageResult, json.loads(self.result_file.read_text(encoding="utf-8")))
        best = self.path_for(result.best_step)
        logger.info("Stage %r already finished; restoring its best checkpoint %s", stage_name, best)
        self._load(best)
        return result

    def load_best(self, best_checkpoint: Optional[str], best_step: Optional[int]) -> None:
        """End of a stage: the best checkpoint's weights, unless the newest one is the best."""
        latest = list_checkpoints(self.stage_dir)[-1]
        if best_checkpoint and Path(best_checkpoint) != latest:
            logger.info("Loading the best checkpoint (step %d)", best_step)
            self._load(Path(best_checkpoint))

    def _load(self, checkpoint: Path) -> None:
        """``load_state``: the checkpoint's weights (the trained ones only, unless every
        parameter trains) over the prepared model, whose frozen weights are the base model's. A
        checkpoint that is damaged (truncated, overwritten) or that does not fit this run's model
        becomes one message naming it, and the checkpoints to use instead."""
        handle = self.acc.register_load_state_pre_hook(_require_trained_weights)
        try:
            self.acc.load_state(str(checkpoint), load_kwargs=SAFE_LOAD, strict=False)
        except (SafetensorError, RuntimeError, EOFError, pickle.UnpicklingError, OSError, KeyError,
                ValueError) as err:
            # torch's unpickling message advises weights_only=False: not advice to pass on.
            reason = ("not a readable torch file" if isinstance(err, pickle.UnpicklingError)
                      else (str(err).strip().splitlines() or ["-"])[0][:300])
            others = [str(c) for c in list_checkpoints(self.stage_dir) if c.name != Path(checkpoint).name]
            instead = (f"resume from another checkpoint (`--output.resume_from_checkpoint {others[-1]}`)"
                       if others else "start the run anew (`--output.overwrite true`)")
            raise ConfigError(
                f"Checkpoint {checkpoint} cannot be loaded ({type(err).__name__}: {reason}): it is "
                f"damaged, or it was written for another model. Delete or move it away and "
                f"{instead}.") from err
        finally:
            handle.remove()


# A checkpoint holds what the run changes: the weights that train, the optimizer, scheduler,
# samplers, RNG and loop state. Frozen weights (a LoRA or frozen run's base model, most of a
# top_k run) are left out: they equal the base model's, which every attempt loads anyway, and
# would make each checkpoint as large as the model (91 MB for a 0.3 MB adapter). With every
# parameter training (full), the state dict is saved whole, buffers included, as before.


def _trained_names(model) -> Optional[set]:
    """State-dict names of the parameters that train, or None when all do."""
    params = list(model.named_parameters(remove_duplicate=False))
    if all(p.requires_grad for _, p in params):
        return None
    return {name for name, p in params if p.requires_grad}


def _keep_trained_weights_only(models, weights, output_dir) -> None:
    for i, model in enumerate(models):
        trained = _trained_names(model)
        if trained is not None:
            # An OrderedDict, like a state dict: accelerate then drops tied copies (an MLM
            # head's bias) before safetensors, which refuses tensors that share memory.
            weights[i] = OrderedDict((k, v) for k, v in weights[i].items() if k in trained)


def _require_trained_weights(models, input_dir) -> None:
    """Weights load with ``strict=False`` (a checkpoint holds the trained ones only): check
    instead that it holds every weight that trains here and nothing this model lacks."""
    for i, model in enumerate(models):
        # accelerate's names: model.safetensors, model_1.safetensors, ...
        file = Path(input_dir) / f"{SAFE_MODEL_NAME}{f'_{i}' if i else ''}.safetensors"
        if not file.is_file():
            continue  # no safetensors weights: accelerate's own error says so
        with safe_open(str(file), framework="pt") as saved:
            keys = set(saved.keys())
        state = model.state_dict(keep_vars=True)
        names = set(state) | {name for name, _ in model.named_parameters(remove_duplicate=False)}
        trained = _trained_names(model) or names
        # A tied copy was saved once, under one of its names.
        saved_storage = {state[k].data_ptr() for k in keys if k in state}
        lacking = sorted(n for n in trained - keys if n not in state or state[n].data_ptr() not in saved_storage)
        unknown = sorted(keys - names)
        if lacking or unknown:  # _load turns it into the message naming the checkpoint
            raise RuntimeError(f"it lacks {len(lacking)} weight(s) that train here (e.g. "
                               f"{lacking[:3]}) and has {len(unknown)} this model lacks (e.g. {unknown[:3]})")
