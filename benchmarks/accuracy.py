"""Accuracy of the full protocol: every fold of EmoDB and EMOVO (4 classes),
emoDARTS (search + retraining) and the three baselines, through the
experiment runner. Prints UA / WA as mean ± std over folds.

    python benchmarks/accuracy.py [--preset quick|paper] [--results results]
        [--corpora emodb emovo] [--seeds 0] [--normalization train|speaker]

Finished runs in the results folder are reused (the demo's EmoDB runs, for
example), so a second call only prints. Target on EmoDB: emoDARTS UA >= 80 %
and above every baseline. The paper preset (300 + 300 epochs) takes days on a
2-core CPU; quick takes about 19 minutes for EmoDB there (5 folds) and 12 for
EMOVO (3 folds).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emokit.experiments import make_grid, run_grid  # noqa: E402
from emokit.results import per_fold_table, summary_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--results", default=str(REPO / "results"))
    parser.add_argument("--corpora", nargs="+", default=["emodb", "emovo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--normalization", choices=["train", "speaker"], default=None,
                        help="override the preset's feature normalisation")
    args = parser.parse_args()
    data = os.environ.get("EMOKIT_DATA", str(REPO.parent / "shared" / "datasets"))
    grid = make_grid(args.preset, corpora=args.corpora, seeds=args.seeds, data_root=data, results_dir=args.results,
                     normalization=args.normalization)
    print(f"preset {args.preset}: features {grid.features}, normalization {grid.normalization}\n"
          f"space {grid.space}\nsearch {grid.search}\nnet {grid.net}\ntrain {grid.train}\n")
    results = run_grid(grid)
    names = grid.scopes + grid.baselines
    table = summary_table(results[results["corpus"].isin(args.corpora)], names=names)
    print(table.drop(columns=["ua_mean", "ua_std"]).to_string(index=False))
    print("\nUA % per fold:")
    print(per_fold_table(results[results["corpus"].isin(args.corpora)]).to_string())
    for corpus in args.corpora:
        part = table[table["corpus"] == corpus].set_index("model")
        if "emodarts" in part.index:
            best_baseline = part.drop(index="emodarts")["ua_mean"].max()
            print(f"{corpus}: emoDARTS UA {part.loc['emodarts', 'ua_mean']:.2f} %, best baseline {best_baseline:.2f} %")


if __name__ == "__main__":
    main()
