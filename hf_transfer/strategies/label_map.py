"""Label space: like ``new_head``, but the head's rows of target labels that are also source
labels — by name, or by ``strategy.label_map: {target_label: source_label}`` — start as the
source head's rows (the head's other layers, e.g. RoBERTa's dense layer, are the source's too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import setting
from ..source_model import resolve_label_map
from .new_head import NewHead
from .registry import StrategyOptions, register_strategy


@dataclass
class LabelMapOptions(StrategyOptions):
    label_map: Optional[dict] = setting(
        None, "`label_map` strategy: {target_label: source_label}; those rows of the new head "
        "start as the source head's rows (labels with the same name are matched as well)."
    )

    def problems(self, path: str) -> list[str]:
        if self.label_map is not None and not all(
                isinstance(v, (str, int)) and not isinstance(v, bool)
                for pair in self.label_map.items() for v in pair):
            return [f"`{path}.label_map` must map target label names to source label names, "
                    f"e.g. {{sport: sports}}; got {self.label_map!r}."]
        return []


@register_strategy
class LabelMap(NewHead):
    name = "label_map"
    summary = "a new head whose rows of shared (or mapped) labels start as the source head's"
    options_class = LabelMapOptions

    def head_rows(self, target_labels, source_labels):
        return resolve_label_map(target_labels, source_labels, self.options.label_map)
