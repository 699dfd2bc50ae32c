import os


class HfTransferError(Exception):
    """Base class for all hf_transfer errors.

    ``exit_code`` is what a recipe script exits with when the error ends the run.
    """

    exit_code = 2


class ConfigError(HfTransferError, ValueError):
    """Raised when a configuration is invalid."""


class DataError(HfTransferError, ValueError):
    """Raised when data cannot be found, loaded or validated."""


class NonFiniteError(HfTransferError, FloatingPointError):
    """Training met a NaN/inf loss or gradient with ``training.on_nonfinite: stop``.

    Nothing was checkpointed after the bad step: the newest checkpoint is the last good one.
    """


class Preempted(HfTransferError):
    """The run received SIGTERM or Ctrl-C (SIGINT), saved a checkpoint at a step boundary and
    stopped.

    Exit code 75 (``EX_TEMPFAIL``: try again later), so a job scheduler can tell a
    preemption (resume with ``--output.resume_from_checkpoint latest``) from a failure.
    """

    exit_code = getattr(os, "EX_TEMPFAIL", 75)
