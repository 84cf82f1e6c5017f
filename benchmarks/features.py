"""How fast is feature extraction? EmoDB, all 535 files, the default config.

    python benchmarks/features.py [--chunk-size 16] [--repeats 1]

Prints, for one process (``n_jobs=1``) and all cores (``n_jobs=-1``):

* cold: a fresh cache folder and a fresh worker pool. Every new process pays
  librosa's first-call warm-up (imports, numba, filterbank; about 2 s), so
  this is what a first run in a new Python session costs.
* steady state: same work, but the process (or joblib's worker pool, which
  loky keeps alive and reuses between calls) has already made a few maps.
  This is the throughput of the extraction itself.

and the time to load the result back from the cache (warm). Corpus root:
``$EMOKIT_DATA`` or ``../shared/datasets`` beside the repository. Nothing is
asserted; targets: all cores >= 1.7x one process, cache load < 1 s.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emokit.data import load_corpus  # noqa: E402
from emokit.features import FeatureConfig, extract  # noqa: E402


def data_root() -> Path:
    env = os.environ.get("EMOKIT_DATA")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def timed(manifest, config, n_jobs: int, chunk_size: int, cache_dir=None) -> float:
    start = time.perf_counter()
    features, kept = extract(manifest, config, cache_dir=cache_dir, n_jobs=n_jobs, chunk_size=chunk_size, progress=False)
    seconds = time.perf_counter() - start
    assert len(features) == len(kept) == len(manifest), "a file was skipped; the figures would be wrong"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk-size", type=int, default=None, help="files per joblib task (default: extract's)")
    parser.add_argument("--repeats", type=int, default=1, help="steady-state repeats; the best is reported")
    args = parser.parse_args()

    import inspect

    chunk_size = args.chunk_size or inspect.signature(extract).parameters["chunk_size"].default
    config = FeatureConfig()
    manifest = load_corpus("emodb", data_root() / "emodb", classes=None)
    n = len(manifest)
    cores = os.cpu_count()
    print(f"EmoDB: {n} files, all classes; config {config.kind} {config.shape[0]}x{config.shape[1]} "
          f"({config.duration:g} s at {config.sample_rate} Hz, hop {config.hop_length}); "
          f"{cores} cores; chunk_size {chunk_size}")
    # Other programs on the machine distort every figure below; say so.
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))

    with tempfile.TemporaryDirectory() as tmp:
        # Cold: new worker pool (all cores) first, so no warm process exists
        # for it; then one process, which is this interpreter's first extract.
        cold_all = timed(manifest, config, -1, chunk_size, cache_dir=Path(tmp) / "cold_all")
        cold_one = timed(manifest, config, 1, chunk_size, cache_dir=Path(tmp) / "cold_one")

        # Steady state: this process and the reused loky pool are warm now.
        warmup = manifest.iloc[: 4 * (cores or 1)]
        timed(warmup, config, 1, chunk_size)
        timed(warmup, config, -1, 2)
        steady_one = min(timed(manifest, config, 1, chunk_size) for _ in range(args.repeats))
        steady_all = min(timed(manifest, config, -1, chunk_size) for _ in range(args.repeats))

        # Warm: the cache written by the cold run.
        warm = min(timed(manifest, config, -1, chunk_size, cache_dir=Path(tmp) / "cold_all") for _ in range(3))
        cache_mb = sum(f.stat().st_size for f in (Path(tmp) / "cold_all").iterdir()) / 2**20

    def line(label: str, seconds: float) -> str:
        return f"  {label:<24}{seconds:7.2f} s  {n / seconds:7.1f} files/s"

    print("cold (fresh cache, fresh processes: includes librosa warm-up per process)")
    print(line("n_jobs=1", cold_one))
    print(line(f"n_jobs=-1 ({cores} cores)", cold_all))
    print(f"  speed-up                {cold_one / cold_all:7.2f}x")
    print("steady state (process / worker pool already warm, no cache)")
    print(line("n_jobs=1", steady_one))
    print(line(f"n_jobs=-1 ({cores} cores)", steady_all))
    print(f"  speed-up                {steady_one / steady_all:7.2f}x   (target >= 1.7x)")
    print("warm (load from cache)")
    print(f"  {'load':<24}{warm:7.3f} s  ({cache_mb:.1f} MiB; target < 1 s)")


if __name__ == "__main__":
    main()
