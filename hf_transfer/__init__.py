"""hf_transfer: transfer learning for text classification on the Hugging Face stack.

Public API::

    from hf_transfer import DomainAdaptationRecipe, load_config, load_classifier
    config = load_config("recipes/configs/domain_adaptation.yaml", {"output.dir": "runs/a"})
    results = DomainAdaptationRecipe(config).run()
    classifier = load_classifier("runs/a/model")
    classifier.predict(["@united lost my bag again"])
"""

from .config import RunConfig, load_config, parse_args
from .diagnostics import diagnose
from .errors import ConfigError, DataError, HfTransferError, NonFiniteError, Preempted
from .hub import HubError, push_to_hub
from .merging import merge_adapter
from .report import compare_runs, write_report
from .run import Recipe
from .scenarios import (ConditionalShiftRecipe, CrossLingualRecipe, DomainAdaptationRecipe,
                        LabelSpaceRecipe)
from .strategies import Strategy, StrategyOptions, register_strategy
from .saving import Classifier, load_classifier, save_classifier
from .version import __version__

__all__ = [
    "Classifier",
    "ConditionalShiftRecipe",
    "ConfigError",
    "CrossLingualRecipe",
    "DataError",
    "DomainAdaptationRecipe",
    "HfTransferError",
    "NonFiniteError",
    "Preempted",
    "HubError",
    "LabelSpaceRecipe",
    "Recipe",
    "Strategy",
    "StrategyOptions",
    "RunConfig",
    "__version__",
    "compare_runs",
    "diagnose",
    "load_classifier",
    "load_config",
    "merge_adapter",
    "parse_args",
    "push_to_hub",
    "register_strategy",
    "save_classifier",
    "write_report",
]
