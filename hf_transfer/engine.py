"""Kept for the transition: the training loop now lives in :mod:`hf_transfer.training`."""

from .atomic import write_json as _write_json  # noqa: F401  (former private helper)
from .training import (FINISHED, RESULT_FILE, STATE_FILE, Engine, Stage, StageResult,  # noqa: F401
                       full_state_dict, list_checkpoints, make_accelerator, resume_plan, unwrap)
