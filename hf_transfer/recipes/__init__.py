"""Recipe classes, one per transfer scenario."""

from .base import Recipe, RunData
from .domain_adaptation import DomainAdaptationRecipe

__all__ = ["DomainAdaptationRecipe", "Recipe", "RunData"]
