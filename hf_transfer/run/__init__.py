"""The run: its skeleton (:mod:`.pipeline`), its folder (:mod:`.layout`), its results
(:mod:`.results`) and the nested runs of the transfer comparison (:mod:`.comparison`)."""

from ..layout import RunLayout
from .pipeline import Recipe, RunData, run_from_command_line

__all__ = ["Recipe", "RunData", "RunLayout", "run_from_command_line"]
