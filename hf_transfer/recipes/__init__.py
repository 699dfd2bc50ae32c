"""Recipe classes, one per transfer scenario."""

from .base import Recipe, RunData, run_from_command_line
from .conditional_shift import ConditionalShiftRecipe
from .cross_lingual import CrossLingualRecipe
from .domain_adaptation import DomainAdaptationRecipe
from .label_space import LabelSpaceRecipe

__all__ = ["ConditionalShiftRecipe", "CrossLingualRecipe", "DomainAdaptationRecipe",
           "LabelSpaceRecipe", "Recipe", "RunData", "run_from_command_line"]
