"""One fold of a preset (the paper's by default), search and retraining,
timed against the cost estimate's projection.

Reads the fold from a feature cache (the ``.npy`` / ``.csv`` pair that
notebook 01 or :func:`emokit.features.extract` writes), so that it runs
where the corpus's audio is absent (a GPU machine, say). Prints the
projection of :func:`emokit.search.budget.estimate_cost` for the search,
then the measured seconds of every phase and their ratio to it.

    python benchmarks/paper_fold.py --maps CACHE.npy [--preset paper] [--fold 0]
        [--device auto] [--out paper-fold] [--search-epochs N] [--train-epochs N] [--no-progress]

``--maps``: a cache of the preset's maps (the paper's: ``FeatureConfig()``,
MFCC, 8 s, 128 x 128), as notebook 01 of a grid of that preset writes under
``results/features``. An interrupted run resumes from its
checkpoints when started again with the same ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from emokit.experiments import PRESETS  # noqa: E402
from emokit.features import FeatureConfig, read_cache  # noqa: E402
from emokit.fold_data import fold_data  # noqa: E402
from emokit.pipeline import retrain_fold, search_fold, search_space_for  # noqa: E402
from emokit.search.budget import estimate_cost  # noqa: E402
from emokit.search.loop import SearchConfig  # noqa: E402
from emokit.splits import make_folds  # noqa: E402
from emokit.train import TrainConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", required=True, help="feature cache .npy (its .csv manifest lies beside it)")
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="paper-fold")
    parser.add_argument("--search-epochs", type=int, default=None, help="default: the preset's (paper: 300)")
    parser.add_argument("--train-epochs", type=int, default=None, help="default: the preset's (paper: 300)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (a log file keeps the figures readable)")
    args = parser.parse_args()

    preset = PRESETS[args.preset]
    features = FeatureConfig.from_dict(preset["features"])
    maps, manifest = read_cache(args.maps, features)  # raises if the maps are not the preset's
    fold = make_folds(manifest)[args.fold]
    data = fold_data(maps, manifest, fold, normalization=preset["normalization"],
                     feature_config=features)

    search = SearchConfig.from_dict({**preset["search"], "device": args.device})
    if args.search_epochs is not None:
        search = search.replace(epochs=args.search_epochs)
    train = TrainConfig.from_dict({**preset["train"], "device": args.device})
    if args.train_epochs is not None:
        train = train.replace(epochs=args.train_epochs)
    space = search_space_for(data, preset["space"])

    out = Path(args.out)
    # A resumed run keeps its first projection: timing the step again costs
    # minutes of a GPU lease, and the projection is of the whole run.
    projection = out / "projection.json"
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "progress")}  # what the projection is of
    saved = json.loads(projection.read_text()) if projection.exists() else {}
    if saved.get("settings") == settings:
        cost = saved["cost"]
    else:
        cost = estimate_cost(space, search, n_search=len(data.x["search"]), repeats=3)
        out.mkdir(parents=True, exist_ok=True)
        projection.write_text(json.dumps({"settings": settings, "cost": cost}, default=str, indent=1))
    print(f"fold {args.fold}: {len(data.x['search'])} search maps, {len(data.x['test'])} test maps; "
          f"device {cost['device']}")
    print(f"projected search: {cost['epoch_seconds']:.2f} s per epoch, {cost['total_seconds']:.0f} s for "
          f"{search.epochs} epochs (step {cost['step_seconds']:.3f} s x {cost['steps_per_epoch']} steps; "
          f"CUDA graphs {cost['cuda_graphs']}, recorded in {cost.get('recording_seconds', 0.0):.1f} s; "
          f"edge recomputation {cost['recompute_edges']})")

    start = time.perf_counter()
    result = search_fold(data, out / "search", space, search, progress=args.progress)  # raises if the maps do not fit
    search_seconds = time.perf_counter() - start
    start = time.perf_counter()
    metrics = retrain_fold(data, out / "retrain", search_dir=out / "search", train=train, net=preset["net"],
                           progress=args.progress)
    train_seconds = time.perf_counter() - start

    # Per-epoch seconds of the log, past the weight-only warm-up epochs.
    measured_epoch = float(result.log["seconds"].iloc[search.warmup_epochs:].median())
    summary = {"device": cost["device"], "fold": args.fold, "search_epochs": search.epochs,
               "train_epochs": train.epochs, "projected_epoch_seconds": cost["epoch_seconds"],
               "measured_median_epoch_seconds": measured_epoch,
               # The first epoch records the CUDA graphs (where they run): the projection adds recording_seconds.
               "projected_recording_seconds": cost.get("recording_seconds", 0.0),
               "measured_first_epoch_seconds": float(result.log["seconds"].iloc[0]),
               "projected_search_seconds": cost["total_seconds"], "search_seconds": search_seconds,
               "cuda_graphs": cost["cuda_graphs"], "retrain_seconds": train_seconds,
               "ua": metrics["ua"], "wa": metrics["wa"],
               "genome": result.genome.to_dict()}
    for key, value in summary.items():
        print(f"{key}: {json.dumps(value)}")
    print(f"search {search_seconds:.0f} s (projected {cost['total_seconds']:.0f} s, measured / projected "
          f"{search_seconds / cost['total_seconds']:.2f}); retraining {train_seconds:.0f} s; "
          f"test UA {100 * metrics['ua']:.2f} %, WA {100 * metrics['wa']:.2f} %")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
