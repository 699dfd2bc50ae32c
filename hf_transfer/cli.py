"""The ``hf-transfer`` command: tools for finished runs and saved classifiers.

    hf-transfer merge MODEL_DIR OUT_DIR
    hf-transfer push RUN_OR_MODEL_DIR REPO_ID [--private] [--revision R] [--message M]
    hf-transfer report RUN_DIR... [--out DIR]
    hf-transfer diagnose [--config RUN.yaml] [--source.FIELD V ...] [--target.FIELD V ...] [--model M ...]

Training itself runs through the recipe scripts (``accelerate launch recipes/...``). Each
subcommand is one entry of ``COMMANDS``: a name, a help line, a function that adds its
arguments and a function that runs it; add an entry to add a subcommand.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, NamedTuple, Optional

from .errors import HfTransferError
from .version import __version__


class Command(NamedTuple):
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR",
                        help="a LoRA run's model/ folder (or a Hub repo id of one)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="new folder for the merged classifier "
                        "(must not exist or be empty)")


def _merge(args: argparse.Namespace) -> int:
    from .merging import merge_adapter

    out = merge_adapter(args.model_dir, args.out_dir)
    print(f"Merged classifier saved in {out}")
    return 0


def _push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="RUN_OR_MODEL_DIR",
                        help="a finished run folder (output.dir) or a saved model folder")
    parser.add_argument("repo_id", metavar="REPO_ID", help="Hub repo, owner/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch to push to (default: main)")
    parser.add_argument("--message", default=None, help="commit message")


def _push(args: argparse.Namespace) -> int:
    from .hub import DEFAULT_COMMIT_MESSAGE, push_to_hub

    # The token comes from HF_TOKEN or `hf auth login`: never a command-line argument.
    result = push_to_hub(args.path, args.repo_id, private=args.private, revision=args.revision,
                         commit_message=args.message or DEFAULT_COMMIT_MESSAGE)
    print(f"Pushed {len(result.files)} files to {result.repo_id} ({result.revision}): {result.commit_url}")
    return 0


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="finished run folders (with results.json)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="folder for comparison.md and comparison.png (default: ./comparison when "
                        "several runs are given; with one run and no --out, the run's own report.md and "
                        "report/ are rewritten)")


def _report(args: argparse.Namespace) -> int:
    from .report import compare_runs

    done = compare_runs(args.run_dirs, args.out)
    print(done["table"] if len(args.run_dirs) > 1 else "")
    print(f"Report written: {done['report']}")
    return 0


def _diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="RUN.yaml",
                        help="read data.source, data.target and the model from a recipe config")
    parser.add_argument("--model", action="append", default=None, metavar="ID_OR_DIR",
                        help="encoder(s) to embed with; repeat to compare encoders (default: the "
                        "config's model.name_or_path, all-MiniLM-L6-v2)")
    parser.add_argument("--max_samples", type=int, default=500, help="texts sampled per side (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and cross-validation seed (default 0)")
    parser.add_argument("--max_length", type=int, default=None, help="tokens per text (default: the config's)")
    parser.add_argument("--batch_size", type=int, default=32, help="texts per forward pass (default 32)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the numbers as JSON")
    parser.epilog = ("Datasets are given like a run's `data.source`/`data.target` settings, e.g. "
                     "--source.builtin tweets --source.filter.domain airline --target.builtin bbc, or "
                     "--target.files.train my.csv --target.text_column body; model settings likewise "
                     "(--model.text_prefix 'query: '). Default: airline -> apple tweets.")


def _diagnose(args: argparse.Namespace, extra: list[str]) -> int:
    import dataclasses
    import json

    from .config import parse_args
    from .diagnostics import diagnose, format_diagnostics
    from .errors import ConfigError

    # --source.X / --target.X are the run settings data.source.X / data.target.X.
    argv = [] if args.config is None else ["--config", args.config]
    for item in extra:
        if item.startswith(("--source.", "--target.")):
            item = "--data." + item[2:]
        elif item.startswith("--") and not item.startswith("--model."):
            raise ConfigError(f"`{item.split('=')[0]}` is not an option of `hf-transfer diagnose`: dataset "
                              "settings start with --source. or --target., model settings with --model. "
                              "(e.g. --model.text_prefix 'query: '); see --help.")
        argv.append(item)
    config = parse_args(argv)
    # The loader's notes on repeated texts matter for training, not for these statistics.
    logging.getLogger("hf_transfer.data").setLevel(logging.ERROR)
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()  # e.g. a classifier folder's unused head
    results = []
    for name in args.model or [config.model.name_or_path]:
        model = dataclasses.replace(config.model, name_or_path=name,
                                    max_length=args.max_length or config.model.max_length)
        results.append(diagnose(config.data.source, config.data.target, model, max_samples=args.max_samples,
                                seed=args.seed, batch_size=args.batch_size))
    print(format_diagnostics(results, title=f"{_describe(config.data.source)} -> {_describe(config.data.target)}"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results if len(results) > 1 else results[0], handle, indent=2)
    return 0


def _describe(spec) -> str:
    where = spec.builtin or spec.hub_id or "files"
    if spec.filter:
        where += "[" + ", ".join(f"{k}={v}" for k, v in spec.filter.items()) + "]"
    return where


COMMANDS: list[Command] = [
    Command("merge", "fold a LoRA adapter into its base model (a standalone classifier)",
            _merge_arguments, _merge),
    Command("push", "push a run or a saved classifier to the Hugging Face Hub, with a model card "
            "(token from HF_TOKEN or `hf auth login`)", _push_arguments, _push),
    Command("report", "write a run's report.md and figures again, or compare several runs side by "
            "side (one table, one chart)", _report_arguments, _report),
    Command("diagnose", "shift diagnostics before training: proxy A-distance, label and vocabulary "
            "overlap, LogME transferability of a frozen encoder", _diagnose_arguments, _diagnose),
]

# Commands that take free-form settings after their own options (passed as a second argument).
TAKES_SETTINGS = {"diagnose"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-transfer", description="Tools for finished runs and saved classifiers (training "
        "itself runs through the recipe scripts).")
    parser.add_argument("--version", action="version", version=f"hf_transfer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    if extra and args.command not in TAKES_SETTINGS:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("hf_transfer").setLevel(logging.INFO)
    try:
        return args.run(args, extra) if args.command in TAKES_SETTINGS else args.run(args)
    except HfTransferError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
