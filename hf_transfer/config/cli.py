"""The command line: ``--config FILE`` and ``--section.field VALUE`` overrides (a field may be
named by its last part when unambiguous), and ``--help``."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from pathlib import Path
from typing import Any, Optional, Union

from .loading import build_config, field_paths, load_config, parse_inline
from .schema import RunConfig, strategy_registry, redact_secrets

def parse_args(argv: Optional[list[str]] = None, default_config: Optional[Union[str, Path]] = None,
               description: str = "", strategies: Optional[list[str]] = None) -> RunConfig:
    """Parse ``--config FILE`` and ``--section.field VALUE`` overrides into a RunConfig.

    Without ``--config``, ``default_config`` (a recipe's shipped YAML) is read, if given.
    ``--help`` prints every setting with its default and help text (strategy settings: those
    of ``strategies``, default all).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(format_help(description, default_config, strategies))
        raise SystemExit(0)
    config_path, overrides, problems = default_config, {}, []
    paths = field_paths()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            problems.append(f"Unexpected argument {arg!r}: settings look like `--training.seed 1`.")
            i += 1
            continue
        key, has_value, value = arg[2:].partition("=")
        takes_next = not has_value and i + 1 < len(argv) and not argv[i + 1].startswith("--")
        if not has_value:
            value = argv[i + 1] if takes_next else "true"
        i += 2 if takes_next else 1
        if key == "config":
            config_path = value
            continue
        resolved = _resolve_key(key, paths, problems)
        if resolved:
            # An entry of a mapping setting has no declared type: read it as YAML
            # (`--data.source.filter.language "[en, it]"` is a list).
            overrides[resolved] = value if resolved in paths else parse_inline(value)
    return build_config(config_path, overrides, problems)


def _resolve_key(key: str, paths: dict, problems: list) -> Optional[str]:
    if key in paths:
        return key
    parent = key.rsplit(".", 1)[0]
    # Annotations are strings here (`from __future__ import annotations`).
    if parent in paths and str(paths[parent].type) in ("dict", "Optional[dict]"):
        return key  # an entry of a mapping setting, e.g. --data.source.files.train a.csv
    matches = [p for p in paths if p.endswith("." + key)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        problems.append(f"`--{key}` is ambiguous: write one of {', '.join('--' + m for m in matches)}.")
    else:
        hint = difflib.get_close_matches(key, list(paths), n=1)
        suggestion = f" Did you mean `--{hint[0]}`?" if hint else " See --help for the settings."
        problems.append(f"`--{key}` is not a known setting.{suggestion}")
    return None


def format_help(description: str = "", default_config: Optional[Union[str, Path]] = None,
                strategies: Optional[list[str]] = None) -> str:
    """Every common setting with its default and help, then the own settings of each strategy
    in ``strategies`` (default: every registered strategy)."""
    lines = [description.strip(), ""] if description else []
    lines += ["usage: [accelerate launch] SCRIPT [--config FILE.yaml] [--section.field VALUE ...]", ""]
    defaults = load_config(default_config) if default_config else RunConfig()
    if default_config:
        lines += [f"Defaults below come from {default_config}.", ""]
    values = defaults.to_dict()  # redacted: --help never prints a secret
    option_names = set(strategy_registry().option_names())
    for name, f in field_paths().items():
        if name.startswith("strategy.") and name.split(".", 1)[1] in option_names:
            continue  # listed below, under the strategy that reads it
        lines.append(f"  --{name}  (default: {_lookup(values, name)!r})")
        lines.append(f"      {f.metadata.get('help', '')}")
    registry = strategy_registry()
    for strategy in strategies if strategies is not None else registry.names():
        options = defaults.strategy.options.get(strategy) or registry.options_for(strategy)
        own = dataclasses.fields(options)
        lines += ["", f"Strategy `{strategy}`: {registry.get(strategy).summary}."
                  + ("" if own else " No settings of its own.")]
        for f in own:
            lines.append(f"  --strategy.{f.name}  (default: {redact_secrets(getattr(options, f.name))!r})")
            lines.append(f"      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def _lookup(data: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data
