"""Do searches decide, and what do their genomes give on validation speakers?

Question: Do searches decide (one op per edge), and what do their genomes give on validation speakers?
Docs row: docs/journal/2026-12-05-results.md, "Decided searches: how the quick preset's search was chosen".

For each named search recipe and every fold of the given corpora: search on
the fold's ``search`` role, print the undecided and collapse reports, retrain
the genome with the quick preset's training and print its **validation** UA
(utterances of the training speakers). Test speakers are scored by the
training loop as always, but this script never prints or returns their
scores: it is what the quick preset's search settings were chosen with.

    python studies/search_decision.py --recipes quick lr1e-2 --corpora emodb emovo
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from emokit.experiments import PRESETS, n_folds
from emokit.pipeline import prepare_fold, retrain_fold, search_fold

QUICK = PRESETS["quick"]
RECIPES = {  # name -> (feature overrides, search overrides) on top of the quick preset
    "quick": ({}, {}),
    "before": ({"duration": 8.0}, {"epochs": 10, "alpha_lr": 3e-4, "warmup_epochs": 0, "aux_skip": 0.0,
                                   "max_skip": None}),  # the quick preset until the undecided searches were found
    "4s": ({"duration": 4.0}, {"epochs": 10, "alpha_lr": 3e-4, "warmup_epochs": 0, "aux_skip": 0.0, "max_skip": None}),
    "lr1e-2": ({"duration": 4.0}, {"epochs": 15, "alpha_lr": 1e-2, "warmup_epochs": 3, "aux_skip": 1.0,
                                   "max_skip": 1}),
    "lr3e-2": ({"duration": 4.0}, {"epochs": 15, "alpha_lr": 3e-2, "warmup_epochs": 3, "aux_skip": 1.0,
                                   "max_skip": 1}),  # chosen: now the quick preset
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--corpora", nargs="+", default=["emodb", "emovo"])
    parser.add_argument("--data", default=os.environ.get("EMOKIT_DATA", "../shared/datasets"))
    parser.add_argument("--cache", default="results/features")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for name in args.recipes:
        feature_overrides, search_overrides = RECIPES[name]
        features = {**QUICK["features"], **feature_overrides}
        val_uas, undecided_cells, cells, collapsed = [], 0, 0, 0
        for corpus in args.corpora:
            for fold in range(n_folds(corpus, args.data)):
                started = time.perf_counter()
                data = prepare_fold(corpus, fold, args.data, features, args.cache, normalization=QUICK["normalization"],
                                    progress=False)
                with tempfile.TemporaryDirectory() as tmp:
                    search = search_fold(data, Path(tmp) / "search", QUICK["space"],
                                         {**QUICK["search"], **search_overrides}, progress=False)
                    metrics = retrain_fold(data, Path(tmp) / "retrain", "genome", search_dir=Path(tmp) / "search",
                                           train=QUICK["train"], net=QUICK["net"], progress=False)
                undecided_cells += len(search.undecided)
                cells += len(search.alpha_history)
                collapsed += len(search.warnings)
                val_uas.append(metrics["best_val_ua"])
                strongest = {t: round(float(h[-1].max() * h[-1].shape[1]), 3) for t, h in search.alpha_history.items()}
                print(json.dumps({"recipe": name, "corpus": corpus, "fold": fold, "val_ua": round(metrics["best_val_ua"], 4),
                                  "strongest_x_uniform": strongest, "undecided": len(search.undecided),
                                  "collapse": search.warnings, "genome": search.genome.to_dict(),
                                  "seconds": round(time.perf_counter() - started, 1)}), flush=True)
        print(f"== {name}: mean validation UA {100 * np.mean(val_uas):.2f} over {len(val_uas)} folds; "
              f"undecided cells {undecided_cells} of {cells}; collapse warnings {collapsed}", flush=True)


if __name__ == "__main__":
    main()
