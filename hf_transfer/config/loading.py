"""Building a :class:`RunConfig` from YAML and ``{dotted.name: value}`` overrides: types
checked and coerced (command-line strings accepted), unknown keys named with a suggestion,
every problem collected into one :class:`~hf_transfer.errors.ConfigError`."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from ..errors import ConfigError
from .schema import (DATASET_ORIGINS, DatasetConfig, RunConfig, StrategyConfig, strategy_registry,
                     format_problems)

def from_dict(cls: type, data: Any, path: str = "", problems: Optional[list] = None,
              base: Any = None) -> Any:
    """Build dataclass ``cls`` from nested plain data on top of ``base`` (default ``cls()``).

    Type and unknown-key problems are collected in ``problems``; when the caller passes
    none, they are raised together as one ConfigError.
    """
    own = problems is None
    problems = [] if own else problems
    base = cls() if base is None else base
    if not isinstance(data, dict):
        problems.append(f"`{path or 'config'}` must be a mapping of fields, got {data!r}.")
        data = {}
    if cls is DatasetConfig and any(key in data for key in DATASET_ORIGINS):
        # Naming where the data comes from starts a fresh dataset: the default dataset's
        # filter or columns must not leak onto the user's own data.
        base = DatasetConfig()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    changes = {}
    option_data = {}
    if cls is StrategyConfig:  # the strategy's own settings are read once its name is known
        option_data = {k: v for k, v in data.items() if k not in fields or k == "options"}
        data = {k: v for k, v in data.items() if k not in option_data}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            problems.append(_unknown_key_problem(where, key, list(fields)))
        elif dataclasses.is_dataclass(hints[key]):
            changes[key] = from_dict(hints[key], value, where, problems, getattr(base, key))
        elif cls is StrategyConfig and key == "name":
            coerced = _strategy_names(value, where, problems)
            if coerced is not _INVALID:
                changes[key] = coerced
        else:
            coerced = _coerce(value, hints[key], where, problems)
            if coerced is not _INVALID:
                changes[key] = coerced
    instance = dataclasses.replace(base, **changes)
    if cls is StrategyConfig:
        instance = _with_strategy_options(instance, option_data, path, problems)
    if own and problems:
        raise ConfigError(format_problems(problems))
    return instance


_INVALID = object()


def _strategy_names(value: Any, where: str, problems: list) -> Any:
    """`strategy.name`: one name, or a list of names to compose (`[tapt, sequential]`, also as
    text on the command line); a list of one is that name."""
    if isinstance(value, str) and value.strip().startswith("["):
        value = parse_inline(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        names = [v.strip() for v in value]
        return names[0] if len(names) == 1 else names
    problems.append(f"`{where}` must be a strategy name or a list of them (e.g. `[tapt, sequential]`), "
                    f"got {reprlib.repr(value)}.")
    return _INVALID


def _with_strategy_options(strategy: "StrategyConfig", data: dict, path: str,
                           problems: list) -> "StrategyConfig":
    """``strategy`` with the options of each strategy it names read from ``data`` (the keys
    under `strategy` that are not its common fields). A setting of a strategy it does not name
    is a problem."""
    registry = strategy_registry()
    where = path or "strategy"
    classes = {name: type(registry.options_for(name)) for name in strategy.chain}
    owned = {f.name for cls in classes.values() for f in dataclasses.fields(cls)}
    # A name no strategy has is the recipe's problem to report (with the scenario's choices);
    # whose setting a key is says nothing then.
    named = all(name in registry.names() for name in strategy.chain)
    for key in [k for k in data if k not in owned]:
        owners = registry.strategies_with_option(key)
        if owners and not named:
            continue
        if owners:
            problems.append(
                f"`{where}.{key}` is a setting of {', '.join(f'`{o}`' for o in owners)}, but "
                f"`{where}.name` is {strategy.name!r}: remove it, or choose that strategy.")
        else:
            known = [f.name for f in dataclasses.fields(StrategyConfig) if f.name != "options"]
            problems.append(_unknown_key_problem(f"{where}.{key}", key, known + registry.option_names()))
    earlier = strategy.options if isinstance(strategy.options, dict) else {}
    options = {}
    for name, cls in classes.items():
        base = earlier.get(name) if isinstance(earlier.get(name), cls) else cls()
        own = {f.name for f in dataclasses.fields(cls)}
        options[name] = from_dict(cls, {k: v for k, v in data.items() if k in own}, where, problems, base)
    return dataclasses.replace(strategy, options=options)


def _unknown_key_problem(where: str, key: Any, known: list[str]) -> str:
    hint = difflib.get_close_matches(str(key), known, n=1)
    suggestion = f" Did you mean `{hint[0]}`?" if hint else f" Known: {', '.join(known)}."
    return f"`{where}` is not a known setting.{suggestion}"


def _coerce(value: Any, hint: Any, where: str, problems: list) -> Any:
    """Check ``value`` against a type hint; accept strings from the command line."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none")):
            return None
        return _coerce(value, options[0], where, problems)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif hint in (int, float):
        number = _as_number(value)
        if number is not None and hint is float:
            try:
                number = float(number)
            except OverflowError:  # an int beyond float range
                number = math.inf
            if math.isfinite(number):
                return number
            problems.append(f"`{where}` must be a finite number, got {reprlib.repr(value)}.")
            return _INVALID
        if isinstance(number, int):
            return number
        if isinstance(number, float) and math.isfinite(number) and number.is_integer():
            return int(number)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif hint in (list, dict) or origin in (list, dict):
        container = origin or hint
        if isinstance(value, str):
            value = parse_inline(value)
        if container is list and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, container):
            return value
    else:  # pragma: no cover - a field type this module does not know yet
        return value
    type_name = getattr(hint, "__name__", str(hint))
    problems.append(f"`{where}` must be {type_name}, got {reprlib.repr(value)}.")
    return _INVALID


def _as_number(value: Any) -> Union[int, float, None]:
    """An int or float from a number or its text (bools are not numbers here); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
        except (ValueError, OverflowError):  # not a number, or more digits than Python reads
            return None
    return None


def parse_inline(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_config(
    path: Optional[Union[str, Path]] = None,
    overrides: Optional[dict] = None,
) -> RunConfig:
    """Read a YAML file, apply ``{dotted.name: value}`` overrides, validate everything."""
    return build_config(path, overrides, problems=[])


def build_config(path, overrides, problems: list) -> RunConfig:
    """:func:`load_config` with ``problems`` found earlier (e.g. on the command line) reported
    together with the configuration's own."""
    data: dict = {}
    if path is not None:
        data = _read_yaml(Path(path), problems)
    cleared = set()
    # Overrides that name where a dataset comes from go first and replace the file's dataset
    # section: `--data.source.files.train a.csv` must not inherit the YAML's built-in filter.
    for bad in [k for k in (overrides or {}) if not isinstance(k, str) or not k]:
        problems.append(f"Override {bad!r} is not a setting name like `training.seed`.")
    valid = {k: v for k, v in (overrides or {}).items() if isinstance(k, str) and k}
    for dotted, value in sorted(valid.items(), key=lambda kv: not _names_origin(kv[0])):
        section = tuple(dotted.split(".")[:2])
        if _names_origin(dotted) and section not in cleared:
            if isinstance(data.get("data"), dict):
                data["data"].pop(section[1], None)
            cleared.add(section)
        _set_dotted(data, dotted, value, problems)
    config = from_dict(RunConfig, data, "", problems)
    problems += config.problems()
    if problems:
        raise ConfigError(format_problems(problems))
    return config


def _read_yaml(path: Path, problems: list) -> dict:
    if not path.is_file():
        problems.append(f"`--config`: no such file {str(path)!r}.")
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        problems.append(f"`--config` {path} is not valid YAML: {err}")
        return {}
    if not isinstance(data, dict):
        problems.append(f"`--config` {path} must hold a mapping of sections, not {type(data).__name__}.")
        return {}
    return data


def _names_origin(dotted: str) -> bool:
    parts = dotted.split(".")
    return len(parts) > 2 and parts[0] == "data" and parts[2] in DATASET_ORIGINS


def _set_dotted(data: dict, dotted: str, value: Any, problems: Optional[list] = None) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            where = ".".join(parents[: depth + 1])
            if problems is not None:
                problems.append(f"`{where}` must be a mapping of fields, got {node!r}.")
            return
    node[leaf] = value


def field_paths(cls: type = RunConfig, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every leaf setting as ``{"training.learning_rate": Field, ...}``."""
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        if f.metadata.get("strategy_options"):  # every registered strategy's own settings
            out.update({f"{prefix}{o.name}": o for o in strategy_registry().option_fields()})
        elif dataclasses.is_dataclass(hints[f.name]):
            out.update(field_paths(hints[f.name], name + "."))
        else:
            out[name] = f
    return out
