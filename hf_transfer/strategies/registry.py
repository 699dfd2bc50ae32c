"""Every strategy by name, with the options class it reads (the way peft registers each tuner
with its config class). Strategies register themselves with :func:`register_strategy` when
their module is imported; ``hf_transfer.strategies`` imports all of them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..config import setting

_STRATEGIES: dict[str, type] = {}


@dataclass
class StrategyOptions:
    """Base of a strategy's own settings (a dataclass whose fields carry help text). They sit
    directly under `strategy` in YAML and on the command line."""

    def problems(self, path: str) -> list[str]:
        """Each wrong value, naming the field (``{path}.name``) and the fix."""
        return []


@dataclass
class TargetStageOptions(StrategyOptions):
    """The settings of a stage on the labelled target examples: the options of every strategy
    that plans one (and of `auto`, which passes them on to its candidates, and so to the
    `target_only` baseline)."""

    target_num_epochs: float = setting(
        10, "Epochs of the target stage on the labelled target examples.")
    target_min_steps: int = setting(
        0, "The target stage runs at least this many optimizer steps, however few the examples "
        "(16 examples are one step an epoch); such a stretched stage evaluates every tenth of its "
        "steps. 0: `target_num_epochs` alone decides.")
    target_learning_rate: Optional[float] = setting(
        None, "Learning rate of the target stage; null: the run's (`training.learning_rate(s)`).")

    def problems(self, path: str) -> list[str]:
        out = []
        if self.target_num_epochs <= 0:
            out.append(f"`{path}.target_num_epochs` must be positive.")
        if self.target_min_steps < 0:
            out.append(f"`{path}.target_min_steps` is {self.target_min_steps}: use 0 or more.")
        if self.target_learning_rate is not None and self.target_learning_rate <= 0:
            out.append(f"`{path}.target_learning_rate` must be positive or null.")
        return out


def target_stage_settings(options) -> dict:
    """The target-stage settings among ``options`` (empty when it has none)."""
    if not isinstance(options, TargetStageOptions):
        return {}
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(TargetStageOptions)}


def register_strategy(cls: type) -> type:
    """Class decorator: make ``cls`` available as `strategy.name: <cls.name>`."""
    if not cls.name or cls.name in _STRATEGIES:
        raise ValueError(f"strategy name {cls.name!r} is empty or taken")
    if not (isinstance(cls.options_class, type) and issubclass(cls.options_class, StrategyOptions)):
        raise TypeError(f"{cls.__name__}.options_class must subclass StrategyOptions")
    _STRATEGIES[cls.name] = cls
    return cls


def get(name: str) -> type:
    return _STRATEGIES[name]


def names() -> list[str]:
    return list(_STRATEGIES)


def for_scenario(scenario: str) -> tuple[str, ...]:
    """The strategies that serve ``scenario``, in registration order."""
    return tuple(name for name, cls in _STRATEGIES.items() if scenario in cls.scenarios)


def options_for(name: str) -> StrategyOptions:
    """Default options of strategy ``name`` (no options for an unknown name)."""
    cls = _STRATEGIES.get(name)
    return cls.options_class() if cls is not None else StrategyOptions()


def strategies_with_option(key: str) -> list[str]:
    return [name for name, cls in _STRATEGIES.items()
            if key in {f.name for f in dataclasses.fields(cls.options_class)}]


def option_fields() -> list[dataclasses.Field]:
    """Every strategy's own settings, once each (strategies may share an options class)."""
    seen: dict[str, dataclasses.Field] = {}
    for cls in _STRATEGIES.values():
        for f in dataclasses.fields(cls.options_class):
            seen.setdefault(f.name, f)
    return list(seen.values())


def option_names() -> list[str]:
    return [f.name for f in option_fields()]
