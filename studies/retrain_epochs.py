"""How many retraining epochs does the quick preset need? Validation UA only.

Question: How many retraining epochs does the quick preset need (validation UA only)?
Docs row: docs/journal/2026-12-05-results.md, "Retraining epochs: why 60".

For every fold of a corpus: one quick search (the preset's settings and seed),
then its genome, a random genome of the same space and the hand-designed
baselines, each retrained with the quick preset's training at each of the
given epoch counts (the cosine schedule spans the run, so a 30-epoch run is
not the first half of a 60-epoch one). Prints each run's best **validation**
UA (utterances of the training speakers) and the mean per epoch count. Test
speakers are scored by the training loop as always, but this script never
prints or returns their scores: it is what the quick preset's epoch count is
chosen with (docs/results.md).

    python studies/retrain_epochs.py --epochs 30 60 --folds 0 1
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
MODELS = ("genome", "random", "cnn", "cnn_lstm", "cnn_lstm_att")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", nargs="+", type=int, default=[30, 60])
    parser.add_argument("--corpus", default="emodb")
    parser.add_argument("--folds", nargs="+", type=int, default=None, help="default: all")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=os.environ.get("EMOKIT_DATA", "../shared/datasets"))
    parser.add_argument("--cache", default="results/features")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    val_uas: dict[int, list[float]] = {e: [] for e in args.epochs}
    for fold in args.folds if args.folds is not None else range(n_folds(args.corpus, args.data)):
        data = prepare_fold(args.corpus, fold, args.data, QUICK["features"], args.cache,
                            normalization=QUICK["normalization"], progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            search_dir = Path(tmp) / "search"
            if "genome" in args.models:
                search_fold(data, search_dir, QUICK["space"], {**QUICK["search"], "seed": args.seed}, progress=False)
            for model in args.models:
                for epochs in args.epochs:
                    started = time.perf_counter()
                    train = {**QUICK["train"], "epochs": epochs, "seed": args.seed}
                    metrics = retrain_fold(data, Path(tmp) / f"{model}-{epochs}", model, search_dir=search_dir,
                                           train=train, net=QUICK["net"], space=QUICK["space"], progress=False)
                    val_uas[epochs].append(metrics["best_val_ua"])
                    print(json.dumps({"corpus": args.corpus, "fold": fold, "seed": args.seed, "model": model,
                                      "epochs": epochs, "val_ua": round(metrics["best_val_ua"], 4),
                                      "best_epoch": metrics["best_epoch"],
                                      "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    for epochs, uas in val_uas.items():
        print(f"== {epochs} epochs: mean validation UA {100 * np.mean(uas):.2f} over {len(uas)} runs", flush=True)


if __name__ == "__main__":
    main()
