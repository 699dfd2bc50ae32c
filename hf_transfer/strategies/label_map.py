"""Label space: like ``new_head``, but the head's rows of target labels that are also source
labels — by name, or by ``strategy.label_map: {target_label: source_label}`` — start as the
source head's rows (the head's other layers, e.g. RoBERTa's dense layer, are the source's too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import setting
from ..errors import ConfigError
from .new_head import NewHead
from .registry import TargetStageOptions, register_strategy


def resolve_label_map(target_labels: list[str], source_labels: Optional[list[str]],
                      user_map: Optional[dict]) -> dict[str, str]:
    """{target label: source label} for the ``label_map`` strategy: labels with the same name,
    then the user's mapping (which wins). Raises ConfigError naming unknown labels."""
    if source_labels is None:
        raise ConfigError(
            "`strategy.name` is `label_map` but the source model has no trained head (a plain "
            "encoder): start from a source classifier, or use `new_head`."
        )
    user_map = {str(k): str(v) for k, v in (user_map or {}).items()}
    problems = [f"`strategy.label_map` key {k!r} is not a target label ({', '.join(target_labels)})"
                for k in user_map if k not in target_labels]
    problems += [f"`strategy.label_map` value {v!r} is not a source label ({', '.join(source_labels)})"
                 for v in user_map.values() if v not in source_labels]
    if problems:
        raise ConfigError("; ".join(problems) + ".")
    mapping = {label: label for label in target_labels if label in source_labels}
    mapping.update(user_map)
    if not mapping:
        raise ConfigError(
            f"`label_map`: no target label ({', '.join(target_labels)}) is also a source label "
            f"({', '.join(source_labels)}) and `strategy.label_map` is empty. Give a mapping "
            "{target_label: source_label}, e.g. `--strategy.label_map.tech science`, or use `new_head`."
        )
    return dict(sorted(mapping.items()))


@dataclass
class LabelMapOptions(TargetStageOptions):
    label_map: Optional[dict] = setting(
        None, "`label_map` strategy: {target_label: source_label}; those rows of the new head "
        "start as the source head's rows (labels with the same name are matched as well)."
    )

    def problems(self, path: str) -> list[str]:
        if self.label_map is not None and not all(
                isinstance(v, (str, int)) and not isinstance(v, bool)
                for pair in self.label_map.items() for v in pair):
            return [f"`{path}.label_map` must map target label names to source label names, "
                    f"e.g. {{sport: sports}}; got {self.label_map!r}."] + super().problems(path)
        return super().problems(path)


@register_strategy
class LabelMap(NewHead):
    name = "label_map"
    summary = "a new head whose rows of shared (or mapped) labels start as the source head's"
    options_class = LabelMapOptions

    def head_rows(self, target_labels, source_labels):
        return resolve_label_map(target_labels, source_labels, self.options.label_map)
