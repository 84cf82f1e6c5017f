"""Accuracy of the full protocol: every fold of EmoDB and EMOVO (4 classes)

Question: Does the search beat its controls and the hand-designed baselines on every fold and seed?
Docs row: docs/results.md, "EmoDB" and "EMOVO" (and the journal's "Three seeds at one commit").
with 3 seeds, emoDARTS (search + retraining), its controls (random genomes,
the classical model) and the hand-designed baselines, through the experiment
runner. Prints UA / WA as mean ± std over fold x seed runs, UA per fold, the
paired differences of emoDARTS against the controls and the best baseline
(bootstrap 95 % interval, Wilcoxon p), the plain answer whether the search
helped, and how much the seeds' genomes agree.

    python studies/accuracy.py [--preset quick|paper] [--results results]
        [--corpora emodb emovo] [--seeds 0 1 2] [--normalization train|speaker] [--baselines ...]

Finished runs in the results folder are reused (the demo's seed-0 EmoDB runs,
for example), so a second call only prints.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emokit.experiments import make_grid  # noqa: E402
from emokit.runner import run_grid  # noqa: E402
from emokit.results import per_fold_table, summary_table  # noqa: E402
from emokit.stats import agreement_across_seeds, paired_comparisons, search_helped  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--results", default=str(REPO / "results"))
    parser.add_argument("--corpora", nargs="+", default=["emodb", "emovo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--normalization", choices=["train", "speaker"], default=None,
                        help="override the preset's feature normalisation")
    parser.add_argument("--baselines", nargs="*", default=None,
                        help="default: the preset's (add random_search for the random-search control)")
    args = parser.parse_args()
    data = os.environ.get("EMOKIT_DATA", str(REPO.parent / "shared" / "datasets"))
    grid = make_grid(args.preset, corpora=args.corpora, seeds=args.seeds, data_root=data, results_dir=args.results,
                     normalization=args.normalization, baselines=args.baselines)
    print(f"preset {args.preset}: features {grid.features}, normalization {grid.normalization}\n"
          f"space {grid.space}\nsearch {grid.search}\nnet {grid.net}\ntrain {grid.train}\n")
    results = run_grid(grid)
    results = results[results["corpus"].isin(args.corpora) & results["seed"].isin(args.seeds)]
    names = grid.scopes + grid.baselines
    table = summary_table(results, names=names)
    print(table.drop(columns=["ua_mean", "ua_std"]).to_string(index=False))
    print("\nUA % per fold (mean over seeds):")
    print(per_fold_table(results).to_string())
    comparisons = paired_comparisons(results)
    print("\nPaired UA differences of emodarts (percentage points):")
    print(comparisons.drop(columns="verdict").round(3).to_string(index=False))
    for corpus in args.corpora:
        print(search_helped(comparisons, corpus))
    print("\nGenome agreement across seeds:")
    print(agreement_across_seeds(results).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
