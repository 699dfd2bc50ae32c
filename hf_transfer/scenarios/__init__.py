"""One recipe class per scenario of the lecture: how source and target differ."""

from .conditional_shift import ConditionalShiftRecipe
from .cross_lingual import CrossLingualRecipe
from .domain_adaptation import DomainAdaptationRecipe
from .label_space import LabelSpaceRecipe
from .source_transfer import SourceTransferRecipe

__all__ = ["ConditionalShiftRecipe", "CrossLingualRecipe", "DomainAdaptationRecipe",
           "LabelSpaceRecipe", "SourceTransferRecipe"]
