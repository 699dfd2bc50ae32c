"""Typed run configuration: dataclasses, YAML + command-line loading, validation.

A run is described by one :class:`RunConfig`. It is read from a YAML file and then
overridden field by field from the command line::

    accelerate launch recipes/domain_adaptation.py \\
        --config recipes/configs/domain_adaptation.yaml \\
        --tuning.method full --training.learning_rate 3e-5 --output.dir runs/full

A field can also be named by its last part when that is unambiguous
(``--learning_rate 3e-5``, ``--overwrite``). Every problem in a configuration —
unknown keys, wrong types, bad values — is collected and reported together in one
:class:`~hf_transfer.errors.ConfigError` before any model or data is loaded.

Modules: :mod:`.schema` (the dataclasses and their checks), :mod:`.loading` (YAML, overrides,
type coercion), :mod:`.cli` (the command line and ``--help``).
"""

from .cli import format_help, parse_args
from .loading import field_paths, from_dict, load_config
from .schema import (BASELINES, DATASET_ORIGINS, DEFAULT_LEARNING_RATES, EVAL_STRATEGIES,
                     LR_SCHEDULERS, METRICS_FOR_BEST, MIXED_PRECISION, ON_NONFINITE, REDACTED,
                     REPO_ID_PATTERN, TUNING_METHODS, DataConfig, DatasetConfig, ModelConfig,
                     OutputConfig, RunConfig, StrategyConfig, TrainingConfig, TuningConfig,
                     choice_problem, format_problems, redact_secrets, setting)

__all__ = ["BASELINES", "DATASET_ORIGINS", "DEFAULT_LEARNING_RATES", "EVAL_STRATEGIES",
           "LR_SCHEDULERS", "METRICS_FOR_BEST", "MIXED_PRECISION", "ON_NONFINITE", "REDACTED",
           "REPO_ID_PATTERN", "TUNING_METHODS", "DataConfig", "DatasetConfig", "ModelConfig",
           "OutputConfig", "RunConfig", "StrategyConfig", "TrainingConfig", "TuningConfig",
           "choice_problem", "field_paths", "format_help", "format_problems", "from_dict",
           "load_config", "parse_args", "redact_secrets", "setting"]
