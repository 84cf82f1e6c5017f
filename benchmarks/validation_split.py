"""Two ways to validate, compared on the same runs: ``val`` as a share of
every training speaker's utterances (``val_speakers`` 0) against ``val`` as
every utterance of held-out training speakers (``--val-speakers N``).

Reads two results folders of the same grid (same corpus, models, folds and
seeds; only the validation split differs) and prints, per model:

- test UA in both (mean ± std over fold x seed runs) and the paired
  difference held-out speakers - utterances (bootstrap 95 % interval,
  Wilcoxon p);
  A model that gives the same result under every seed (classical) is
  paired per fold: its seeds are copies, not pairs;
- the gap of the validation UA to the test UA, of the best epoch's (what
  chose the epoch and, for ``random_search``, the genome; a maximum, so
  optimistic) and of the last epoch's (chosen by nothing): a validation set
  that meets voices it never trained on should promise about what the test
  gives;
- the paired differences of emodarts against the controls under each split.

    python benchmarks/validation_split.py --utterances R0 --speakers R1 [--corpus emodb]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from emokit.results import collect, mean_std  # noqa: E402
from emokit.stats import paired_comparisons, paired_difference  # noqa: E402


def finished(results_dir: str, corpus: str) -> pd.DataFrame:
    table = collect(results_dir)
    table = table[(table["status"] == "done") & (table["corpus"] == corpus)].copy()
    # The best epoch's validation UA is the maximum of noisy values, optimistic
    # whatever the split; the last epoch's is not chosen.
    table["last_val_ua"] = [last_val_ua(Path(run_dir, "retrain", "log.csv")) for run_dir in table["run_dir"]]
    return table


def last_val_ua(log: Path) -> float:
    """The last epoch's validation UA; NaN for a model without epochs (classical)."""
    return float(pd.read_csv(log)["val_ua"].iloc[-1]) if log.exists() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", required=True, help="results folder, val a share of utterances")
    parser.add_argument("--speakers", required=True, help="results folder, val held-out speakers")
    parser.add_argument("--corpus", default="emodb")
    args = parser.parse_args()

    splits = {"utterances": finished(args.utterances, args.corpus), "speakers": finished(args.speakers, args.corpus)}
    models = [m for m in dict.fromkeys(splits["speakers"]["name"]) if m in set(splits["utterances"]["name"])]
    rows = []
    for model in models:
        runs = {k: t[t["name"] == model].set_index(["fold", "seed"]) for k, t in splits.items()}
        both = runs["speakers"].index.intersection(runs["utterances"].index)
        row = {"model": model, "pairs": len(both)}
        for split, table in runs.items():
            part = table.loc[both]
            row[f"test UA, {split}"] = mean_std(part["ua"])
            row[f"best val - test, {split}"] = round(100 * (part["best_val_ua"] - part["ua"]).mean(), 2)
            row[f"last val - test, {split}"] = round(100 * (part["last_val_ua"] - part["ua"]).mean(), 2)
        a, b = runs["speakers"].loc[both, "ua"], runs["utterances"].loc[both, "ua"]
        if (a.groupby(level="fold").nunique() == 1).all() and (b.groupby(level="fold").nunique() == 1).all():
            # The same result for every seed (classical): the seeds are copies, not pairs.
            a, b = a.groupby(level="fold").first(), b.groupby(level="fold").first()
            row["pairs"] = f"{len(a)} folds (seeds are copies)"
        difference = paired_difference(a, b)
        row.update({"speakers - utterances": round(difference["mean"], 2),
                    "95 % CI": f"{difference['ci_low']:+.2f} to {difference['ci_high']:+.2f}",
                    "p": round(difference["p"], 3), "won": f"{difference['wins']} of {difference['n']}"})
        rows.append(row)
    print(f"{args.corpus}: {args.utterances} (val: utterances) against {args.speakers} (val: held-out speakers); "
          "UA in %, over the (fold, seed) runs both finished")
    print(pd.DataFrame(rows).to_string(index=False))
    for split, table in splits.items():
        comparisons = paired_comparisons(table, against=("random", "random_search", "classical"))
        print(f"\nemodarts against the controls, val {split}:")
        print(comparisons[["against", "n", "mean", "ci_low", "ci_high", "p", "wins"]].round(3).to_string(index=False))


if __name__ == "__main__":
    main()
