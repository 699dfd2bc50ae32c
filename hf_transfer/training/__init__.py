"""The one training/evaluation loop every recipe uses, on Accelerate.

A recipe runs one or more *stages* (e.g. train on the source, then continue on the target).
Each stage: prepare model/optimizer/data, warm up and decay the learning rate, accumulate
gradients with ``accelerator.accumulate``, clip, evaluate every epoch or N steps (outputs
gathered from the processes once per pass), checkpoint with ``save_state`` (atomically: write to a temporary
folder, then rename), keep the best checkpoint on the chosen metric, stop early when asked,
and end with the best weights loaded. A finished stage leaves ``result.json`` in its
checkpoint folder, so a resumed run skips it and restores its best weights. A stage may also
bring its own loss, a second (unlabelled) dataset read alongside, and its own selection metric
and direction (see :class:`Stage`): the masked-LM and domain-adversarial stages use them.

* :mod:`.stage` — :class:`Stage` (what to train) and :class:`StageResult` (what came of it).
* :mod:`.loop` — :class:`Engine`: ``train``, ``evaluate``, ``predict``.
* :mod:`.checkpoints` — the checkpoint folders, ``result.json``, :func:`resume_plan`.
* :mod:`.faults` — NaN/inf and SIGTERM: every file is published atomically, so after a kill at
  any moment ``latest`` finds the newest complete checkpoint; SIGTERM makes every process
  checkpoint at the same update boundary and stop (:class:`~hf_transfer.errors.Preempted`,
  exit code 75); a NaN/inf loss or gradient stops the run before anything non-finite is saved,
  or skips that update (``training.on_nonfinite``).
"""

from .checkpoints import (FINISHED, RESULT_FILE, STATE_FILE, checkpoint_bytes, list_checkpoints, resume_plan,
                          weights_bytes)
from .loop import Engine, full_state_dict, make_accelerator, unwrap
from .stage import Stage, StageResult

__all__ = [
    "FINISHED",
    "RESULT_FILE",
    "STATE_FILE",
    "Engine",
    "Stage",
    "StageResult",
    "checkpoint_bytes",
    "full_state_dict",
    "list_checkpoints",
    "make_accelerator",
    "resume_plan",
    "unwrap",
    "weights_bytes",
]
