"""The ``hf-transfer`` command: tools for finished runs and saved classifiers.

    hf-transfer merge MODEL_DIR OUT_DIR
    hf-transfer push RUN_OR_MODEL_DIR REPO_ID [--private] [--revision R] [--message M]

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


COMMANDS: list[Command] = [
    Command("merge", "fold a LoRA adapter into its base model (a standalone classifier)",
            _merge_arguments, _merge),
    Command("push", "push a run or a saved classifier to the Hugging Face Hub, with a model card "
            "(token from HF_TOKEN or `hf auth login`)", _push_arguments, _push),
]


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
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("hf_transfer").setLevel(logging.INFO)
    try:
        return args.run(args)
    except HfTransferError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
