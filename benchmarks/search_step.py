"""Speed and memory of one DARTS search step for the paper's configuration.

Input 1 x 128 x 128, 4 classes, initial channels 8, 4 CNN cells of 4 nodes,
2 SeqNN cells of 3 nodes, scope emodarts. Each configuration runs in a fresh
process so that its peak memory is its own. Prints, per configuration: median
seconds per first-order step (alpha update + weight update), samples/s,
forward-only time, peak memory, parameters; then the speed-up over a plain
DARTS mixed op (every op weighted, `none` included) and over the authors'
implementation as measured on this 2-core machine (29 s per step at batch 16,
11 GiB), and the projected time per search epoch on EmoDB fold 0.

    python benchmarks/search_step.py [--repeats 2] [--second-order]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

AUTHORS_STEP_SECONDS = 29.0  # their code, batch 16, first order, this machine (issue 4)

CONFIGS = {
    "plain DARTS mixed op (reference), batch 16": dict(batch_size=16, fast=False),
    "emokit, batch 16": dict(batch_size=16),
    "emokit + edge recomputation, batch 16": dict(batch_size=16, recompute_edges=True),
    "emokit bf16, batch 16": dict(batch_size=16, precision="bf16"),
    # Plain fp32 batch 64 needs about 4 x the batch-16 memory: more than this 24 GiB machine has.
    "emokit bf16, batch 64": dict(batch_size=64, precision="bf16"),
    "emokit PC-DARTS (K=4), batch 16": dict(batch_size=16, partial_channels=4),
    "emokit PC-DARTS (K=4) bf16, batch 16": dict(batch_size=16, partial_channels=4, precision="bf16"),
}


def measure(options: dict, repeats: int) -> dict:
    """Child process: one configuration."""
    from emokit.search.budget import estimate_cost
    from emokit.search.loop import SearchConfig
    from emokit.search.supernet import SearchSpace

    options = dict(options)
    space = SearchSpace(partial_channels=options.pop("partial_channels", 1))
    fast = options.pop("fast", True)
    return estimate_cost(space, SearchConfig(device="cpu", **options), repeats=repeats, fast=fast)


def emodb_search_rows() -> int:
    from emokit.data import load_corpus
    from emokit.splits import make_folds

    root = Path(os.environ.get("EMOKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
    manifest = load_corpus("emodb", root / "emodb", check_audio=False)
    return len(make_folds(manifest)[0].indices("search"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per configuration (median)")
    parser.add_argument("--second-order", action="store_true", help="also time a second-order step at batch 16")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child), args.repeats)))
        return

    configs = dict(CONFIGS)
    if args.second_order:
        configs["emokit second order, batch 16"] = dict(batch_size=16, order="second")
    n_search = emodb_search_rows()
    print(f"torch threads: {os.cpu_count()} cores; EmoDB fold 0 search set: {n_search} maps "
          f"(weight half {n_search // 2})\n")
    header = f"{'configuration':48s} {'s/step':>7s} {'samples/s':>9s} {'fwd s':>6s} {'peak GiB':>8s} {'weights M':>9s} {'epoch s':>8s}"
    print(header)
    print("-" * len(header))
    results = {}
    for name, options in configs.items():
        options = dict(options)
        env = {**os.environ, **options.pop("env", {})}
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(options), "--repeats", str(args.repeats)],
                             capture_output=True, text=True, env=env)
        if out.returncode != 0:
            print(f"{name:48s} FAILED: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
            continue
        cost = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = cost
        peak = cost["peak_memory_bytes"] / 2**30 if cost["peak_memory_bytes"] else float("nan")
        steps = -(-(n_search // 2) // options["batch_size"])
        print(f"{name:48s} {cost['step_seconds']:7.2f} {cost['samples_per_second']:9.2f} "
              f"{cost['forward_seconds']:6.2f} {peak:8.2f} {cost['parameters'] / 1e6:9.2f} {steps * cost['step_seconds']:8.0f}")
    reference = results.get("plain DARTS mixed op (reference), batch 16")
    print()
    for name, cost in results.items():
        if cost["batch_size"] != 16 or cost["order"] != "first":
            continue
        line = f"{name:48s} {AUTHORS_STEP_SECONDS / cost['step_seconds']:5.2f}x faster than the authors' code"
        if reference:
            line += f", {reference['step_seconds'] / cost['step_seconds']:5.2f}x the plain mixed op"
        print(line)


if __name__ == "__main__":
    main()
