"""Recipe classes, one per transfer scenario."""

from .base import Recipe, RunData, run_from_command_line
from .cross_lingual import CrossLingualRecipe
from .domain_adaptation import DomainAdaptationRecipe

__all__ = ["CrossLingualRecipe", "DomainAdaptationRecipe", "Recipe", "RunData", "run_from_command_line"]
