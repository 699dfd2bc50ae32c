"""Cross-lingual: train on several source languages together; evaluate on every language."""

from __future__ import annotations

from ..errors import DataError
from .registry import register_strategy
from .source_only import SourceOnly


@register_strategy
class MultiSource(SourceOnly):
    name = "multi_source"
    scenarios = ("cross_lingual",)
    summary = "train on several source languages together (`data.source` holds two or more)"

    def check(self, ctx, meta_model) -> None:
        languages = sorted({g for split in ctx.data.source.values() for g in split.unique("group")})
        if len(languages) < 2:
            raise DataError(f"`multi_source` needs two or more source languages; "
                            f"`data.source` holds {languages}. Widen `data.source.filter`.")
