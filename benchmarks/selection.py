"""Genomes read by the alphas against genomes read by perturbation, from the same searches.

Two results folders of one grid (same corpora, folds, seeds and search
settings): ``--alphas`` ran with ``selection="alphas"`` (and holds the
controls), ``--perturbation`` with ``selection="perturbation"``. The
searches train the same supernets, so each (fold, seed) pair differs only
in how the genome was read. Prints, in this order:

1. the **validation** UA of both (utterances of the training speakers, the
   epoch chosen by the training loop): what a choice between them may use;
2. how often both read the same genome, and how alike the genomes of
   different seeds are per fold;
3. the test UA of every model, and the paired differences of the
   perturbation genomes against the others.

    python benchmarks/selection.py --alphas A/results --perturbation P/results --corpora emodb --seeds 0 1 2
"""
from __future__ import annotations

import argparse

import pandas as pd

from emokit.results import collect, summary_table
from emokit.stats import agreement_across_seeds, paired_comparisons, paired_difference

PERTURBATION = "emodarts_pt"  # the perturbation genomes' name in the tables


def load(folder: str, corpora: list[str], seeds: list[int], rename: dict[str, str] | None = None) -> pd.DataFrame:
    results = collect(folder)
    results = results[results["corpus"].isin(corpora) & results["seed"].isin(seeds) & (results["status"] == "done")]
    return results.assign(name=results["name"].replace(rename or {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", required=True, help="results folder of the grid read by the alphas")
    parser.add_argument("--perturbation", required=True,
                        help="results folder of the same searches read by perturbation")
    parser.add_argument("--corpora", nargs="+", default=["emodb"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()

    alphas = load(args.alphas, args.corpora, args.seeds)
    perturbed = load(args.perturbation, args.corpora, args.seeds, rename={"emodarts": PERTURBATION})
    results = pd.concat([alphas, perturbed[perturbed["name"] == PERTURBATION]], ignore_index=True)
    pd.set_option("display.width", 200)
    for corpus in args.corpora:
        part = results[results["corpus"] == corpus]
        pairs = part.pivot_table(index=["fold", "seed"], columns="name", values=["best_val_ua", "ua", "genome"],
                                 aggfunc="first")
        pairs = pairs.dropna(subset=[("best_val_ua", "emodarts"), ("best_val_ua", PERTURBATION)])
        val = pairs["best_val_ua"][["emodarts", PERTURBATION]].astype(float)
        print(f"\n== {corpus}: validation UA %, {len(val)} (fold, seed) pairs ==")
        print(f"alphas {100 * val['emodarts'].mean():.2f}  perturbation {100 * val[PERTURBATION].mean():.2f}")
        difference = paired_difference(val[PERTURBATION], val["emodarts"])
        print("perturbation - alphas: {mean:+.2f} points (95 % CI {ci_low:+.2f} to {ci_high:+.2f}, "
              "Wilcoxon p {p:.3f}, {wins} of {n} higher)".format(**difference))

        same = (pairs["genome"]["emodarts"] == pairs["genome"][PERTURBATION]).sum()
        print(f"\n== {corpus}: genomes ==\nthe same genome read both ways: {same} of {len(pairs)}")
        print(agreement_across_seeds(part).round(2).to_string(index=False))

        print(f"\n== {corpus}: test UA ==")
        print(summary_table(part).to_string(index=False))
        comparisons = pd.concat([paired_comparisons(part, PERTURBATION, ("emodarts", "random", "classical",
                                                                          "best baseline")),
                                 paired_comparisons(part, "emodarts", ("random", "classical", "best baseline"))])
        print(comparisons.drop(columns="verdict").round(3).to_string(index=False))


if __name__ == "__main__":
    main()
