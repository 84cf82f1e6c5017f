"""Seconds per retraining step of genome networks: the plain cells against
the fast path (``GenomeNet(fast=True)``: each state's ReLU shared by the ops
that read it).

Genomes are drawn at random from the quick preset's search space (or read
from ``--genomes``, folders or ``genome.json`` files of searches); each is
built at the quick preset's network size, channels-last, and trained with
SGD on one random batch (input 1 x 128 x 64, the quick preset's 4 s log-mel
maps; batch 32, one thread by default). The two networks share their
weights and take turns, a few steps each, so that a drift of the machine
hits both; the figure to quote is the median of the pairwise ratios.

    python benchmarks/genome_step.py [--genomes 10] [--rounds 12] [--threads 1]
    python benchmarks/genome_step.py --genomes results/runs/emodb/emodarts/fold*-seed0/search
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emokit.experiments import PRESETS  # noqa: E402
from emokit.models import build_model  # noqa: E402
from emokit.search.genotype import Genome, random_genome  # noqa: E402
from emokit.search.supernet import SearchSpace  # noqa: E402

QUICK = PRESETS["quick"]
INPUT = (1, 128, 64)  # the quick preset's maps: 128 log-mel bands x 64 frames (4 s)


def genomes(spec: list[str]) -> list[tuple[str, Genome]]:
    if len(spec) == 1 and spec[0].isdigit():
        space = SearchSpace.from_dict(QUICK["space"])
        return [(f"random genome, seed {seed}", random_genome(space, seed)) for seed in range(int(spec[0]))]
    return [(path, Genome.load(path)) for path in spec]


def pairwise(genome: Genome, rounds: int, steps: int, batch: int) -> tuple[float, float, float]:
    """Median seconds per step of the plain and the fast network, and the
    median of their ratio (fast / plain) over ``rounds`` alternations."""
    torch.manual_seed(0)
    nets, optimizers = [], []
    for fast in (False, True):
        net = build_model("genome", genome, n_classes=4, fast=fast, **QUICK["net"])
        if nets:
            net.load_state_dict(nets[0].state_dict())
        nets.append(net.to(memory_format=torch.channels_last).train())
        optimizers.append(torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9))
    x = torch.randn(batch, *INPUT).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,))

    def step(k: int) -> None:
        optimizers[k].zero_grad(set_to_none=True)
        nn.functional.cross_entropy(nets[k](x), y).backward()
        optimizers[k].step()

    times: list[list[float]] = [[], []]
    for _ in range(rounds):
        for k in (0, 1):
            step(k)  # the other network's turn left the caches cold
            start = time.perf_counter()
            for _ in range(steps):
                step(k)
            times[k].append((time.perf_counter() - start) / steps)
    plain, fast = np.array(times[0]), np.array(times[1])
    return float(np.median(plain)), float(np.median(fast)), float(np.median(fast / plain))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", nargs="+", default=["10"],
                        help="a number of random genomes (default 10), or genome folders / files")
    parser.add_argument("--rounds", type=int, default=12, help="alternations of the two networks")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per turn")
    parser.add_argument("--batch-size", type=int, default=QUICK["train"]["batch_size"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, input {INPUT}, "
          f"network {QUICK['net']}")
    ratios = []
    for name, genome in genomes(args.genomes):
        plain, fast, ratio = pairwise(genome, args.rounds, args.steps, args.batch_size)
        ratios.append(ratio)
        print(f"{name:40s} plain {1000 * plain:6.1f} ms   fast {1000 * fast:6.1f} ms   fast / plain {ratio:.3f}",
              flush=True)
    print(f"fast / plain over {len(ratios)} genomes: median {np.median(ratios):.3f}, "
          f"range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
