"""The ``emokit`` command.

Each subcommand is a pair of functions registered in :data:`COMMANDS`: one
adds its arguments to an argparse sub-parser, one runs it and returns the exit
status. Add a subcommand with::

    def _name_arguments(parser): ...             # adds the arguments

    @command("name", "one-line help", _name_arguments)
    def run_name(args) -> int: ...                # runs, returns the exit status
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Decorator registering ``run(args) -> exit status`` as subcommand ``name``."""

    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = Command(help, add_arguments, run)
        return run

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emokit", description="DARTS for speech emotion recognition.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        cmd.add_arguments(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit status."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


# --------------------------------------------------------------------------
# emokit predict


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="folder of a finished training run")
    parser.add_argument("files", metavar="FILE", nargs="+", help="audio files (wav, flac ...)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")


@command("predict", "predict the emotion of audio files with a trained run", _predict_arguments)
def run_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from emokit.predict import predict

    table = predict(args.run_dir, args.files, device=args.device)
    with pd.option_context("display.max_colwidth", None, "display.width", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 1 if len(table) and table["error"].notna().all() else 0


# --------------------------------------------------------------------------
# emokit summary


def _summary_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="folder holding one subfolder per corpus (default: $EMOKIT_DATA, else ./data)")
    parser.add_argument("--corpora", nargs="+", default=["emodb", "emovo"], metavar="NAME",
                        help="corpus names (default: emodb emovo)")


@command("summary", "files, speakers, classes and folds of corpora (the paper's four classes)", _summary_arguments)
def run_summary(args: argparse.Namespace) -> int:
    import pandas as pd

    from emokit.data import PAPER_CLASSES, load_corpus, summarize
    from emokit.splits import fold_table, make_folds

    status = 0
    for name in args.corpora:
        root = Path(args.data) / name if args.data else None
        try:
            manifest = load_corpus(name, root=root, classes=PAPER_CLASSES)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
            continue
        folds = make_folds(manifest)
        with pd.option_context("display.width", 200):
            print(f"== {name}: {len(manifest)} files, {manifest['speaker'].nunique()} speakers "
                  f"(classes: {', '.join(PAPER_CLASSES)})")
            print(summarize(manifest).to_string())
            print(f"\n{len(folds)} folds:")
            print(fold_table(folds, manifest).to_string(index=False))
            print()
    return status


if __name__ == "__main__":
    sys.exit(main())
