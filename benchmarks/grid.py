"""How much faster is a grid on a local Dask cluster than run serially?

    python benchmarks/grid.py [--workers 2] [--search-epochs 2] [--train-epochs 3]

The same small grid (EmoDB, quick preset, folds 0 and 1, scopes emodarts and
lstm, the cnn baseline, a few epochs) runs twice, each in a fresh
``emokit run`` process and results folder that share one prepared feature
cache (so neither pays the extraction):

* serial, as a grid ran before Dask: one process, torch on all cores
  (``--threads`` = cores);
* ``--workers N``: a local Dask cluster of N processes, cores / N threads each.

Prints both wall times, the speed-up (target on a 2-core machine: >= 1.4x)
and whether both tables are identical; where they are not, by how much and
why. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emokit.experiments import make_grid  # noqa: E402
from emokit.pipeline import corpus_features  # noqa: E402
from emokit.runner import grid_results  # noqa: E402


def data_root() -> str:
    return os.environ.get("EMOKIT_DATA") or str(REPO.parent / "shared" / "datasets")


def timed_run(config: Path, results: Path, *options: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "emokit.cli", "run", "--config", str(config), "--data", data_root(),
                           "--results", str(results), "--no-compare", *options], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"emokit run {' '.join(options)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--train-epochs", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    settings = {"corpora": ["emodb"], "folds": [0, 1], "scopes": ["emodarts", "lstm"], "baselines": ["cnn"],
                "search": {"epochs": args.search_epochs}, "train": {"epochs": args.train_epochs}}
    with tempfile.TemporaryDirectory(prefix="emokit-grid-bench-") as tmp:
        tmp = Path(tmp)
        config = tmp / "grid.yaml"
        config.write_text(json.dumps(settings))  # JSON is YAML
        grids = {}
        for name in ("serial", "dask"):
            grids[name] = make_grid("quick", config, data_root=data_root(), results_dir=str(tmp / name))
        features = tmp / "features"
        corpus_features("emodb", data_root(), grids["serial"].features, features, progress=False)
        for name in grids:
            (tmp / name).mkdir()
            (tmp / name / "features").symlink_to(features)
        runs = 2 * 2 + 2
        print(f"grid: EmoDB folds 0-1, emodarts + lstm + cnn ({runs} runs), quick preset with "
              f"{args.search_epochs} search and {args.train_epochs} training epochs; {cores} cores")
        serial = timed_run(config, tmp / "serial", "--threads", str(cores))
        print(f"serial, 1 process x {cores} threads:            {serial:7.1f} s")
        threads = max(1, cores // args.workers)
        dask = timed_run(config, tmp / "dask", "--workers", str(args.workers))
        print(f"--workers {args.workers}, {args.workers} processes x {threads} thread(s): {dask:7.1f} s")
        print(f"speed-up: {serial / dask:.2f}x (target >= 1.4x on 2 cores)")

        compared = ["name", "fold", "seed", "status", "ua", "wa", "parameters", "genome"]
        tables = {n: grid_results(g)[compared].sort_values(["name", "fold"]).reset_index(drop=True)
                  for n, g in grids.items()}
        if tables["serial"].equals(tables["dask"]):
            print("tables: identical")
        else:
            ua = (tables["serial"]["ua"] - tables["dask"]["ua"]).abs() * 100
            genomes = (tables["serial"]["genome"].fillna("") != tables["dask"]["genome"].fillna("")).sum()
            print(f"tables: not identical: UA differs by up to {ua.max():.2f} points (mean {ua.mean():.2f}); "
                  f"{genomes} of {tables['serial']['genome'].notna().sum()} searched genomes differ.\n"
                  f"Why: the serial runs used {cores} threads, the workers {threads}; torch sums in another order "
                  "with another thread count, and the searches amplify the rounding. With equal threads the "
                  "engines give identical tables (tests/test_cluster.py).")


if __name__ == "__main__":
    main()
