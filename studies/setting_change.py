"""One setting changed, compared on the same runs: two results folders of the

Question: What does one changed setting (validation speakers, alpha split, space) do on the same runs?
Docs row: docs/findings.md, "What was tried" (from docs/journal/2026-12-05-results.md, "Validation on held-out speakers" and after).
same grid (corpus, folds, seeds) that differ in one setting, for example
``val_speakers`` (how models are validated) or the search's ``alpha_split``.

Prints, per model that both folders ran:

- test UA in both (mean ± std over fold x seed runs) and the paired
  difference after - before (bootstrap 95 % interval, Wilcoxon p, and the
  t-test over the folds' means, :func:`emokit.stats.fold_level_difference`);
  the same for the best epoch's validation UA, the only figure a choice
  between the two settings may rest on. A model
  that gives the same result under every seed (classical) is paired per
  fold: its seeds are copies, not pairs;
- the gap of the validation UA to the test UA, of the best epoch's (what
  chose the epoch and, for ``random_search``, the genome; a maximum, so
  optimistic) and of the last epoch's (chosen by nothing);
- for searched models, the mean number of cells per search left undecided
  (:func:`emokit.search.genotype.undecided_report`);
- the paired differences of emodarts against the controls in each folder.
  Where the second folder did not run a control, it is taken from the first
  (and the line says so): right only when the changed setting does not
  touch that control (the search's settings do not touch any control;
  ``val_speakers`` touches them all).

    python studies/setting_change.py --before R0 --after R1 [--names utterances speakers] [--corpus emodb]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from emokit.results import collect, mean_std  # noqa: E402
from emokit.stats import paired_comparisons, paired_difference, paired_test  # noqa: E402

CONTROLS = ("random", "random_search", "classical")


def finished(results_dir: str, corpus: str) -> pd.DataFrame:
    table = collect(results_dir)
    table = table[(table["status"] == "done") & (table["corpus"] == corpus)].copy()
    # The best epoch's validation UA is the maximum of noisy values, optimistic
    # whatever the split; the last epoch's is not chosen.
    table["last_val_ua"] = [last_val_ua(Path(run_dir, "retrain", "log.csv")) for run_dir in table["run_dir"]]
    table["undecided"] = [undecided_cells(Path(run_dir, "search", "summary.json")) for run_dir in table["run_dir"]]
    return table


def last_val_ua(log: Path) -> float:
    """The last epoch's validation UA; NaN for a model without epochs (classical)."""
    return float(pd.read_csv(log)["val_ua"].iloc[-1]) if log.exists() else float("nan")


def undecided_cells(summary: Path) -> float:
    """How many cells the run's search left undecided; NaN without a search."""
    return float(len(json.loads(summary.read_text())["undecided"])) if summary.exists() else float("nan")


def compare_model(model: str, before: pd.DataFrame, after: pd.DataFrame, names: tuple[str, str]) -> dict:
    runs = dict(zip(names, (t[t["name"] == model].set_index(["fold", "seed"]) for t in (before, after))))
    both = runs[names[1]].index.intersection(runs[names[0]].index)
    row = {"model": model, "pairs": len(both)}
    for name, table in runs.items():
        part = table.loc[both]
        row[f"test UA, {name}"] = mean_std(part["ua"])
        row[f"best val - test, {name}"] = round(100 * (part["best_val_ua"] - part["ua"]).mean(), 2)
        row[f"last val - test, {name}"] = round(100 * (part["last_val_ua"] - part["ua"]).mean(), 2)
        if not np.isnan(part["undecided"]).all():
            row[f"undecided cells, {name}"] = round(part["undecided"].mean(), 2)
    b, a = (runs[name].loc[both, "ua"] for name in names)
    if (a.groupby(level="fold").nunique() == 1).all() and (b.groupby(level="fold").nunique() == 1).all():
        # The same result for every seed (classical): the seeds are copies, not pairs.
        a, b = a.groupby(level="fold").first(), b.groupby(level="fold").first()
        row["pairs"] = f"{len(a)} folds (seeds are copies)"
    difference = paired_test(a, b)
    row.update({f"{names[1]} - {names[0]}": round(difference["mean"], 2),
                "95 % CI": f"{difference['ci_low']:+.2f} to {difference['ci_high']:+.2f}",
                "p": round(difference["p"], 3), "won": f"{difference['wins']} of {difference['n']}",
                "p over folds": round(difference["p_folds"], 3)})
    # What a choice between the two settings may rest on: the validation UA
    # (never the test's). For a search setting, of the genome retrained.
    b_val, a_val = (runs[name].loc[both, "best_val_ua"] for name in names)
    val = paired_difference(a_val, b_val)
    row.update({f"best val UA, {names[1]} - {names[0]}": round(val["mean"], 2),
                "best val UA: 95 % CI, p": f"{val['ci_low']:+.2f} to {val['ci_high']:+.2f}, {val['p']:.3f}"})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="results folder with the setting as it was")
    parser.add_argument("--after", required=True, help="results folder with the setting changed")
    parser.add_argument("--names", nargs=2, default=("before", "after"), help="what to call the two settings")
    parser.add_argument("--corpus", default="emodb")
    args = parser.parse_args()
    names = tuple(args.names)

    before, after = finished(args.before, args.corpus), finished(args.after, args.corpus)
    models = [m for m in dict.fromkeys(after["name"]) if m in set(before["name"])]
    rows = [compare_model(model, before, after, names) for model in models]
    print(f"{args.corpus}: {args.before} ({names[0]}) against {args.after} ({names[1]}); "
          "UA in %, over the (fold, seed) runs both finished")
    print(pd.DataFrame(rows).T.to_string(header=False))
    borrowed = [c for c in CONTROLS if c in set(before["name"]) and c not in set(after["name"])]
    if borrowed:
        after = pd.concat([after, before[before["name"].isin(borrowed)]])
    for name, table in zip(names, (before, after)):
        comparisons = paired_comparisons(table, against=CONTROLS)
        if comparisons.empty:  # neither folder ran a control
            continue
        note = f" ({', '.join(borrowed)} from {args.before})" if borrowed and name == names[1] else ""
        print(f"\nemodarts against the controls, {name}{note}:")
        columns = ["against", "n", "mean", "ci_low", "ci_high", "p", "wins", "folds", "p_folds"]
        print(comparisons[columns].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
