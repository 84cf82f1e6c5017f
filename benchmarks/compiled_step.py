"""Does ``torch.compile`` (inductor, CPU) pay for a training or search step?

Times a quick-preset step eager and compiled, alternating in one process
(one thread by default), and prints the compile time, both medians and the
median of their pairwise ratios. The network is a random genome's
(``--model genome``, batch 32) or the quick supernet's (``--model supernet``,
a first-order search step, batch 32), on emokit's fast path or the plain
cells (``--plain``).

    python benchmarks/compiled_step.py --model genome [--plain] [--rounds 6]
    python benchmarks/compiled_step.py --model supernet [--plain]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emokit.experiments import PRESETS  # noqa: E402
from emokit.models import build_model  # noqa: E402
from emokit.search.architect import Architect, search_step  # noqa: E402
from emokit.search.genotype import random_genome  # noqa: E402
from emokit.search.supernet import SearchSpace, Supernet  # noqa: E402

QUICK = PRESETS["quick"]


def genome_step(fast: bool, batch: int):
    """The model and a step function ``step(forward)`` of a genome network."""
    space = SearchSpace.from_dict(QUICK["space"])
    model = build_model("genome", random_genome(space, 0), n_classes=4, fast=fast, **QUICK["net"])
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 128, 64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, step


def supernet_step(fast: bool, batch: int):
    """The model and a first-order search step of the quick supernet."""
    space = SearchSpace.from_dict({**QUICK["space"], "input_shape": (128, 64)})
    model = Supernet(space, fast=fast).to(memory_format=torch.channels_last)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.0, momentum=0.9)
    architect = Architect(model, torch.optim.Adam(model.arch_parameters(), lr=0.0))
    x = torch.randn(batch, 1, 128, 64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (batch,))

    def step():
        search_step(model, w_opt, architect, x, y, x, y, 0.0, 5.0)
    return model, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["genome", "supernet"], default="genome")
    parser.add_argument("--plain", action="store_true", help="the plain cells instead of emokit's fast path")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    build = genome_step if args.model == "genome" else supernet_step
    model, step = build(not args.plain, args.batch_size)
    eager, compiled = model.forward, torch.compile(model.forward)

    start = time.perf_counter()
    model.forward = compiled
    step()
    step()  # the backward graph and recompilations come with the first steps
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.model} "
          f"({'plain cells' if args.plain else 'fast path'}), batch {args.batch_size}: "
          f"compiling and two steps took {time.perf_counter() - start:.1f} s")
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    model.forward = eager
    step()
    for _ in range(args.rounds):
        for name, forward in (("eager", eager), ("compiled", compiled)):
            model.forward = forward
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    ratio = statistics.median(c / e for e, c in zip(times["eager"], times["compiled"]))
    print(f"eager {1000 * statistics.median(times['eager']):.0f} ms, compiled "
          f"{1000 * statistics.median(times['compiled']):.0f} ms, compiled / eager {ratio:.3f}")


if __name__ == "__main__":
    main()
