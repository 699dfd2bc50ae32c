"""Data: built-in datasets, loading and splitting, label spaces, tokenization."""

from .builtin import BUILTIN_DATASETS, load_builtin
from .labels import LabelSpace
from .loading import load_splits

__all__ = ["BUILTIN_DATASETS", "LabelSpace", "load_builtin", "load_splits"]
