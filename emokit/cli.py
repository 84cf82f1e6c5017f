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
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        cmd.add_arguments(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


# Errors a user can act on: printed as one line (``--debug`` shows the traceback).
USER_ERRORS = (KeyError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError, ImportError)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"emokit {args.command}: error: {message} (--debug shows the traceback)", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------
# emokit predict


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="folder of a finished training run")
    parser.add_argument("files", metavar="FILE", nargs="+", help="audio files (wav, flac ...)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument("--speakers", nargs="+", metavar="KEY",
                        help="one speaker key per file, for runs trained with speaker normalisation "
                             "(default: all files are one speaker)")


@command("predict", "predict the emotion of audio files with a trained run", _predict_arguments)
def run_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from emokit.prediction import predict

    table = predict(args.run_dir, args.files, device=args.device, speakers=args.speakers)
    with pd.option_context("display.max_colwidth", None, "display.width", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    failed = int(table["error"].notna().sum())
    if failed:
        print(f"{failed} of {len(table)} files could not be scored (see the error column)", file=sys.stderr)
    return 1 if failed else 0


# --------------------------------------------------------------------------
# emokit summary


def _summary_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="DIR", default=None,
                        help="folder holding one subfolder per corpus (default: $EMOKIT_DATA, else the checkout's data/, else ./data)")
    parser.add_argument("--corpora", nargs="+", default=None, metavar="NAME",
                        help="corpus names (default: every corpus under the data folder)")


@command("summary", "files, speakers, classes and folds of the corpora under the data folder", _summary_arguments)
def run_summary(args: argparse.Namespace) -> int:
    import pandas as pd

    from emokit.data import available_corpora, corpus_classes, corpus_root, load_corpus, summarize
    from emokit.diagnosis import speaker_confound
    from emokit.splits import SCHEME_RULES, fold_scheme, fold_table, make_folds

    status = 0
    names = args.corpora or available_corpora(args.data)
    if not names:
        print(f"no corpus under {args.data or 'the data folder'}: download EmoDB with `emokit download emodb`, or "
              "put a corpus there (<name>/manifest.csv with columns path, speaker, label)", file=sys.stderr)
        return 1
    for name in names:
        try:
            classes = corpus_classes(name, args.data)
            manifest = load_corpus(name, root=corpus_root(name, args.data), classes=classes)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
            continue
        folds = make_folds(manifest)  # warns, naming them, about test folds without a class
        with pd.option_context("display.width", 200):
            print(f"== {name}: {len(manifest)} files, {manifest['speaker'].nunique()} speakers "
                  f"(classes: {', '.join(classes)})")
            print(summarize(manifest).to_string())
            left_out = manifest.attrs.get("left_out_by_class", {})
            if left_out:
                print("left out (not among the classes): " + ", ".join(f"{k} {v}" for k, v in left_out.items()))
            skipped = manifest.attrs.get("skipped", [])
            if skipped:
                print(f"skipped {len(skipped)} unreadable files, e.g. {skipped[0]['reason']}")
            print(speaker_confound(manifest).describe(name))
            print(f"\n{len(folds)} folds: {SCHEME_RULES[fold_scheme(manifest)]}")
            print(fold_table(folds, manifest).to_string(index=False))
            print()
    return status



# --------------------------------------------------------------------------
# emokit run / compare / demo


def _grid_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="quick", help="paper or quick (default: quick)")
    parser.add_argument("--config", help="YAML file with grid settings (corpora, scopes, folds, seeds, "
                                         "baselines, features, space, search, net, train, workers, cluster)")
    parser.add_argument("--data", help="folder holding the corpora (default: $EMOKIT_DATA)")
    parser.add_argument("--results", default=None, help="results folder (default: $EMOKIT_RESULTS, else the "
                                                        "checkout's results/, else ./results)")
    parser.add_argument("--corpora", nargs="+")
    parser.add_argument("--test-corpora", nargs="+", metavar="NAME",
                        help="cross-corpus: score every model on each of these corpora too, and retrain genomes "
                             "searched on one corpus of --corpora on the others of these (see docs)")
    parser.add_argument("--scopes", nargs="*", help="SeqNN search scopes: emodarts lstm lstm_att rnn rnn_att (none: empty)")
    parser.add_argument("--baselines", nargs="*", help="baselines: cnn cnn_lstm cnn_lstm_att and the controls random "
                                                       "random_search classical (none: empty)")
    parser.add_argument("--folds", nargs="+", type=int, help="fold numbers (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--normalization", choices=["train", "speaker"],
                        help="feature normalisation (default: the preset's)")
    parser.add_argument("--val-speakers", type=int, default=None, metavar="N",
                        help="validate on all utterances of N training speakers per fold (default: the preset's, "
                             "0: a share of every training speaker's utterances)")
    parser.add_argument("--device", default=None, help="auto (default), cpu or cuda")
    parser.add_argument("--workers", type=int, default=None,
                        help="run the grid on a local Dask cluster of N worker processes (default 1: in this process)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the grid on a running Dask scheduler, e.g. tcp://host:8786 "
                             "(a batch-system cluster: the YAML 'cluster:' section)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per run (default: cores / workers on a local cluster)")
    parser.add_argument("--no-compare", action="store_true", help="skip notebook 05 at the end")


def _grid_from_args(args: argparse.Namespace):
    import os

    from emokit.experiments import make_grid

    data = args.data or os.environ.get("EMOKIT_DATA")
    return make_grid(args.preset, args.config, corpora=args.corpora, test_corpora=args.test_corpora,
                     scopes=args.scopes, baselines=args.baselines,
                     folds=args.folds, seeds=args.seeds, data_root=data, results_dir=args.results,
                     device=args.device, normalization=args.normalization, val_speakers=args.val_speakers,
                     workers=args.workers,
                     scheduler=args.scheduler, threads=args.threads)


def _run_and_report(grid, compare_after: bool) -> int:
    import time

    import pandas as pd

    from emokit.runner import compare, run_grid
    from emokit.results import summary_table
    from emokit.stats import paired_comparisons, search_helped

    started = time.perf_counter()
    results = run_grid(grid)
    if compare_after:
        notebook = compare(grid.results_dir)
        print(f"comparison: {notebook} and {notebook.with_suffix('.html')}")
    table = summary_table(results)
    with pd.option_context("display.width", 200):
        print(table.drop(columns=["ua_mean", "ua_std"]).to_string(index=False))
    comparisons = paired_comparisons(results)
    for corpus in dict.fromkeys(results.loc[results["kind"] == "darts", "corpus"]):
        print(search_helped(comparisons, corpus))
    if grid.test_corpora:
        _report_cross_corpus(grid, results)
    # Runs another runner holds or ran with its own settings are its business, not failures of this one.
    elsewhere = results[results["status"].isin(["held", "other settings"])]
    failed = results[~results["status"].isin(["done", "held", "other settings"])]
    print(f"{len(results) - len(failed) - len(elsewhere)} runs done, {len(elsewhere)} left to another runner, "
          f"{len(failed)} not done, in {(time.perf_counter() - started) / 60:.1f} min")
    for _, row in pd.concat([elsewhere, failed]).iterrows():
        print(f"  {row['status']}: {row['run_dir']}: {row['error']}")
    return 1 if len(failed) else 0


def _report_cross_corpus(grid, results) -> None:
    import pandas as pd

    from emokit.cross_corpus import cross_matrix, cross_table, transfer_comparisons, transfer_sentence

    cross = cross_table(grid.results_dir)
    cross = cross[cross["run_dir"].isin(set(results["run_dir"]))]
    with pd.option_context("display.width", 200):
        for name in dict.fromkeys(cross["name"]):
            print(f"\n{name}: mean test UA %, trained on (rows) x tested on (columns)")
            print(cross_matrix(results, cross, name).round(2).to_string())
    comparisons = transfer_comparisons(results)
    for (corpus, name) in dict.fromkeys(zip(comparisons["corpus"], comparisons["model"])):
        print(transfer_sentence(comparisons, name, corpus))


@command("run", "run an experiment grid (notebooks 01-04 per run, then 05) with papermill", _grid_arguments)
def run_grid_command(args: argparse.Namespace) -> int:
    return _run_and_report(_grid_from_args(args), not args.no_compare)


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="?", default=None, help="results folder (default: as for emokit run)")


@command("compare", "execute notebook 05 on a results folder (tables, figures, HTML)", _compare_arguments)
def run_compare(args: argparse.Namespace) -> int:
    from emokit.runner import compare

    from emokit.paths import results_root

    notebook = compare(args.results or results_root())
    print(f"comparison: {notebook} and {notebook.with_suffix('.html')}")
    return 0


# Small networks use one core poorly: on 2 cores, two one-thread processes
# run the demo's 30 runs faster than one process of two threads (docs/benchmarks.md).
DEMO_MAX_WORKERS = 8


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="folder holding the corpora (default: $EMOKIT_DATA)")
    parser.add_argument("--out", default=None, help="results folder (default: as for emokit run)")
    parser.add_argument("--workers", type=int, default=None,
                        help="run on a local Dask cluster of N worker processes of one thread each (default: one "
                             f"per CPU core, at most {DEMO_MAX_WORKERS}; 1: in this process)")


@command("demo", "the whole pipeline on EmoDB with the quick preset: features, search on every fold, "
                 "genome pictures, retraining, the three baselines, comparison", _demo_arguments)
def run_demo(args: argparse.Namespace) -> int:
    import os

    from emokit.cluster import usable_cores
    from emokit.experiments import make_grid

    data = args.data or os.environ.get("EMOKIT_DATA")
    run_summary(argparse.Namespace(data=data, corpora=["emodb", "emovo"]))
    workers = args.workers or min(usable_cores(), DEMO_MAX_WORKERS)
    grid = make_grid("quick", corpora=["emodb"], data_root=data, results_dir=args.out, workers=workers)
    return _run_and_report(grid, compare_after=True)



def _download_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", choices=["emodb"], help="only EmoDB is free to download")
    parser.add_argument("--data", default=None, help="folder for the corpora (default: $EMOKIT_DATA, else the checkout's data/, else ./data)")


@command("download", "download a freely licensed corpus (EmoDB) into the data folder", _download_arguments)
def run_download(args: argparse.Namespace) -> int:
    import os

    from emokit.download import download_emodb

    from emokit.paths import data_root

    data = args.data or data_root()
    try:
        print(f"EmoDB in {download_emodb(data)}")
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
