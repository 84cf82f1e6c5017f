"""Two search settings of one grid, compared on the same folds and seeds: validation UA first.

Question: Does one change to the search (a variant) give better genomes than the preset, on validation first?
Docs row: docs/journal/2026-12-05-results.md, "Reading the genome by perturbation" and "GDAS".

Two results folders of one grid that differ in one search setting:
``--base`` ran the preset (and holds the controls), ``--variant`` changed
one setting, e.g. ``selection="perturbation"`` (the same supernets, the
genome read another way) or ``gdas=True`` (another search). The variant's
genomes are named ``--label`` in the tables. Prints, in this order:

1. the **validation** UA of both (utterances of the training speakers, the
   epoch chosen by the training loop): what a choice between them may use;
2. how often both found the same genome, and how alike the genomes of
   different seeds are per fold;
3. the test UA of every model, and the paired differences of the variant's
   genomes against the others.

    python studies/search_variant.py --base A/results --variant P/results --label emodarts_pt --seeds 0 1 2
"""
from __future__ import annotations

import argparse

import pandas as pd

from emokit.results import collect, summary_table
from emokit.stats import agreement_across_seeds, paired_comparisons, paired_difference


def load(folder: str, corpora: list[str], seeds: list[int], rename: dict[str, str] | None = None) -> pd.DataFrame:
    results = collect(folder)
    results = results[results["corpus"].isin(corpora) & results["seed"].isin(seeds) & (results["status"] == "done")]
    return results.assign(name=results["name"].replace(rename or {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="results folder of the grid with the preset's search")
    parser.add_argument("--variant", required=True, help="results folder of the same grid with one search setting changed")
    parser.add_argument("--label", required=True, help="name of the variant's genomes in the tables, e.g. emodarts_pt")
    parser.add_argument("--corpora", nargs="+", default=["emodb"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()

    label = args.label
    base = load(args.base, args.corpora, args.seeds)
    variant = load(args.variant, args.corpora, args.seeds, rename={"emodarts": label})
    results = pd.concat([base, variant[variant["name"] == label]], ignore_index=True)
    pd.set_option("display.width", 200)
    for corpus in args.corpora:
        part = results[results["corpus"] == corpus]
        pairs = part.pivot_table(index=["fold", "seed"], columns="name", values=["best_val_ua", "ua", "genome"],
                                 aggfunc="first")
        pairs = pairs.dropna(subset=[("best_val_ua", "emodarts"), ("best_val_ua", label)])
        val = pairs["best_val_ua"][["emodarts", label]].astype(float)
        print(f"\n== {corpus}: validation UA %, {len(val)} (fold, seed) pairs ==")
        print(f"emodarts {100 * val['emodarts'].mean():.2f}  {label} {100 * val[label].mean():.2f}")
        difference = paired_difference(val[label], val["emodarts"])
        print(f"{label} - emodarts: " + "{mean:+.2f} points (95 % CI {ci_low:+.2f} to {ci_high:+.2f}, "
              "Wilcoxon p {p:.3f}, {wins} of {n} higher)".format(**difference))

        same = (pairs["genome"]["emodarts"] == pairs["genome"][label]).sum()
        print(f"\n== {corpus}: genomes ==\nthe same genome in both: {same} of {len(pairs)}")
        print(agreement_across_seeds(part).round(2).to_string(index=False))

        print(f"\n== {corpus}: test UA ==")
        print(summary_table(part).to_string(index=False))
        comparisons = pd.concat([paired_comparisons(part, label, ("emodarts", "random", "classical", "best baseline")),
                                 paired_comparisons(part, "emodarts", ("random", "classical", "best baseline"))])
        print(comparisons.drop(columns="verdict").round(3).to_string(index=False))


if __name__ == "__main__":
    main()
