"""Transfer strategies: one class each, with its own options, registered by name.

Importing this package registers every built-in strategy (the import order is the order of
the strategy tables and of `--help`). See :mod:`hf_transfer.strategies.base` for the hooks.
"""

from . import registry
from .base import FAMILIES, INDUCTIVE, SOURCE_ONLY, TRANSDUCTIVE, UNSUPERVISED, Needs, RunContext, Strategy
from .registry import StrategyOptions, register_strategy

# Built-in strategies (each module registers its classes when imported).
from . import source_only, sequential, linear_probe, multi_task, multi_source, tapt_dapt, dann, coral, self_training  # noqa: E402,F401  isort: skip
from . import new_head, lp_ft, label_map, finetune, l2sp  # noqa: E402,F401  isort: skip
from . import auto  # noqa: E402,F401  isort: skip  (after the strategies it chooses among)

__all__ = ["FAMILIES", "INDUCTIVE", "SOURCE_ONLY", "TRANSDUCTIVE", "UNSUPERVISED", "Needs", "RunContext", "Strategy",
           "StrategyOptions",
           "register_strategy", "registry"]
