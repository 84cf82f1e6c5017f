"""Does a genome that is good for one group of speakers stay good for another?

Question: Does a genome that wins on one fold's speakers win on another's?
Docs row: docs/findings.md, "Why" (from docs/journal/2026-12-05-results.md, "Does a genome's quality carry to new speakers?").

The same random genomes of the quick preset's space (genome ``g`` drawn with
the seed ``1000 + g`` on every fold) are retrained with the quick recipe on
every fold of a corpus under several training seeds. The report splits the
spread of their accuracies into what belongs to the genome on every fold
(what a search on training speakers could find and carry to unseen ones),
what changes from fold to fold, and what the training seed does
(:func:`emokit.stats.genome_transfer`). It prints random search with
selection on validation (per fold, the genome with the best validation UA,
paired with the genomes' mean over fold x seed runs), and, per fold, the
test UA of the genome with the best mean test UA on the *other* folds: a
diagnosis of how much a perfectly informed choice made elsewhere is worth
here, not a method (those folds' models were trained on this fold's test
speakers).

Runs are kept under ``--out`` and resumed. Retrain in parts (two processes
on two cores, say), then report on everything finished:

    python studies/genome_transfer.py --results results --genomes 0 1 2 3
    python studies/genome_transfer.py --results results --genomes 4 5 6 7
    python studies/genome_transfer.py --report --figure genome_transfer.png
"""
from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import pandas as pd

from emokit.experiments import PRESETS, n_folds
from emokit.pipeline import prepare_fold, retrain_fold, search_space_for
from emokit.search.genotype import random_genome
from emokit.stats import genome_signal, genome_transfer, paired_difference

QUICK = PRESETS["quick"]
GENOME_SEED = 1000  # genome g: random_genome(space, GENOME_SEED + g), the same on every fold


def retrain(corpus: str, folds: list[int] | None, genomes: list[int], seeds: list[int], results: Path,
            data_root: str, out: Path) -> None:
    folds = folds if folds is not None else list(range(n_folds(corpus, data_root)))
    for fold in folds:
        data = prepare_fold(corpus, fold, data_root, QUICK["features"], results / "features",
                            normalization=QUICK["normalization"], progress=False)
        space = search_space_for(data, QUICK["space"])
        for g in genomes:
            genome_dir = out / corpus / f"genome-{g}"
            genome_dir.mkdir(parents=True, exist_ok=True)
            random_genome(space, GENOME_SEED + g).save(genome_dir / "genome.json")
            for seed in seeds:
                # One thread per process, as the grid's runs of two workers.
                metrics = retrain_fold(data, genome_dir / f"fold{fold}" / f"train{seed}", "genome",
                                       genome_json=genome_dir / "genome.json",
                                       train={**QUICK["train"], "seed": seed, "num_threads": 1}, net=QUICK["net"],
                                       progress=False)
                print(json.dumps({"fold": fold, "genome": g, "seed": seed, "ua": metrics["ua"],
                                  "val_ua": metrics["best_val_ua"]}), flush=True)


def finished_runs(out: Path, corpus: str) -> pd.DataFrame:
    rows = []
    for metrics_file in sorted((out / corpus).glob("genome-*/fold*/train*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        run, fold_dir, genome_dir = metrics_file.parent, metrics_file.parent.parent, metrics_file.parent.parent.parent
        rows.append({"genome": int(genome_dir.name.split("-")[1]), "fold": int(fold_dir.name[4:]),
                     "seed": int(run.name[5:]), "ua": metrics["ua"], "val_ua": metrics["best_val_ua"]})
    return pd.DataFrame(rows)


def report(runs: pd.DataFrame) -> None:
    for value, label in (("ua", "test UA"), ("val_ua", "validation UA")):
        t, within = genome_transfer(runs, value), genome_signal(runs, value, within="fold")
        print(f"{label}: {t['genomes']} genomes x {t['folds']} folds x {t['seeds']} seeds; "
              f"genome sd {t['genome_sd']:.2f} (95 % upper bound {t['genome_sd_upper']:.2f}; F {t['f_genome']:.2f}, "
              f"p {t['p_genome']:.3f}), "
              f"genome x fold sd {t['interaction_sd']:.2f} (F {t['f_interaction']:.2f}, p {t['p_interaction']:.3f}), "
              f"seed sd {t['seed_sd']:.2f} points; within each fold (genome + genome x fold) "
              f"between-genome sd {within['between_sd']:.2f}, p {within['p']:.3f}")
    cell = runs.groupby(["genome", "fold"])["ua"].mean().unstack() * 100
    print("\nmean test UA per genome (rows) and fold (columns):")
    print(cell.round(2).assign(mean=cell.mean(axis=1).round(2)).to_string())
    # Random search: per fold, the genome with the best mean validation UA (the fold's own validation
    # utterances), its test UA on each seed against the mean of all genomes on that fold and seed.
    picked = runs.groupby(["fold", "genome"])["val_ua"].mean().groupby("fold").idxmax().map(lambda key: key[1])
    chosen = runs[runs["genome"] == runs["fold"].map(picked)].set_index(["fold", "seed"])["ua"].sort_index()
    average = runs.groupby(["fold", "seed"])["ua"].mean().sort_index()
    d = paired_difference(chosen, average)
    print(f"\nrandom search (per fold the genome with the best validation UA: {picked.to_dict()}): test UA "
          f"{100 * chosen.mean():.2f} against {100 * average.mean():.2f} for the genomes' mean, difference "
          f"{d['mean']:+.2f} (95 % CI {d['ci_low']:+.2f} to {d['ci_high']:+.2f}, Wilcoxon p {d['p']:.3f}, "
          f"{d['wins']} of {d['n']} fold x seed runs higher)")
    print("\nper fold, the genome best on the other folds' test UA (a diagnosis, not a method):")
    for fold in cell.columns:
        elsewhere = cell.drop(columns=fold).mean(axis=1)
        chosen = elsewhere.idxmax()
        print(f"  fold {fold}: genome {chosen} ({elsewhere[chosen]:.2f} elsewhere) scores {cell.loc[chosen, fold]:.2f} "
              f"here; the genomes' mean here {cell[fold].mean():.2f}, the best here {cell[fold].max():.2f} "
              f"(genome {cell[fold].idxmax()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="a results folder whose features/ holds the quick maps")
    parser.add_argument("--corpus", default="emodb")
    parser.add_argument("--folds", type=int, nargs="+", default=None, help="default: every fold of the corpus")
    parser.add_argument("--genomes", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--data", default=os.environ.get("EMOKIT_DATA", "../shared/datasets"))
    parser.add_argument("--out", default="results/genome_transfer")
    parser.add_argument("--report", action="store_true", help="only report on the finished runs")
    parser.add_argument("--figure", default=None, help="save the genome x fold figure here (.png)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    out = Path(args.out)
    if not args.report:
        retrain(args.corpus, args.folds, args.genomes, args.train_seeds, Path(args.results), args.data, out)
    runs = finished_runs(out, args.corpus)
    report(runs)
    if args.figure:
        from emokit.viz.results import genome_fold_figure

        genome_fold_figure(runs).savefig(args.figure, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    main()
