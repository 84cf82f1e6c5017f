"""How much do emokit's depthwise convolution gradients save on the CPU?

    python benchmarks/depthwise_conv.py [--threads 1] [--repeats 10] [--paper]

oneDNN's backward kernels for depthwise convolutions (DARTS' ``sep_conv``
and ``dil_conv``) are slow on the CPU, dilated ones most of all.
:class:`emokit.search.speed.DepthwiseConv2d` computes the same gradients
faster (stride 1: the input gradient as a forward convolution; stride =
dilation: an undilated convolution of every d-th row and column). Prints,
alternating the two in one process:

* per layer shape (channels-last, batch 32): forward + backward of
  ``nn.Conv2d`` and of ``DepthwiseConv2d``, and their ratio;
* one training step of the quick preset's genome network (a fixed genome
  with every depthwise op of the space) at batch 32, and one first-order
  search step of the quick preset's supernet, with the faster layer on and off;
  with ``--paper`` also a first-order step of the paper's supernet at batch 16
  (about 20 s a step here).

Nothing is asserted; the tests check that both give the same outputs and
gradients.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emokit.experiments import PRESETS  # noqa: E402
from emokit.models import build_model  # noqa: E402
from emokit.search import speed  # noqa: E402
from emokit.search.budget import estimate_cost  # noqa: E402
from emokit.search.genotype import Genome  # noqa: E402
from emokit.search.loop import SearchConfig  # noqa: E402
from emokit.search.supernet import SearchSpace  # noqa: E402

# (channels, rows, columns, kernel, stride, dilation): the depthwise layers of
# the quick preset's networks (maps of 128 x 64 after a stride-2 stem).
SHAPES = [(8, 64, 32, 3, 1, 1), (8, 64, 32, 5, 1, 1), (8, 64, 32, 3, 1, 2), (16, 64, 32, 5, 1, 2),
          (16, 64, 32, 3, 2, 2), (16, 64, 32, 5, 2, 2), (32, 32, 16, 5, 2, 2)]
# Every depthwise op of the space, strided in the reduction cell.
GENOME = Genome(normal=[[("sep_conv_3x3", 0), ("dil_conv_3x3", 1)], [("sep_conv_5x5", 0), ("dil_conv_5x5", 2)]],
                reduce=[[("dil_conv_3x3", 0), ("dil_conv_5x5", 1)], [("sep_conv_5x5", 0), ("sep_conv_3x3", 2)]],
                seq=[[("lstm_1", 0), ("skip_connect", 1)], [("lstm_1", 0), ("skip_connect", 2)]])


def median_ms(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


class faster_depthwise:
    """Inside: ``speed.accelerate`` gives depthwise convolutions the faster
    layer (on) or leaves them plain ``nn.Conv2d`` (off)."""

    def __init__(self, on: bool):
        self.on, self.saved = on, speed._fast_depthwise

    def __enter__(self):
        if not self.on:
            speed._fast_depthwise = lambda conv: False

    def __exit__(self, *exc):
        speed._fast_depthwise = self.saved


def layer_ms(shape, on: bool, repeats: int) -> float:
    channels, rows, columns, kernel, stride, dilation = shape
    with faster_depthwise(on):
        conv = speed.accelerate(nn.Sequential(nn.Conv2d(channels, channels, kernel, stride, dilation * (kernel - 1) // 2,
                                                        dilation=dilation, groups=channels, bias=False)))
    conv = conv.to(memory_format=torch.channels_last)
    x = torch.randn(32, channels, rows, columns).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    grad = torch.randn_like(conv(x))  # as a next layer would hand back: dense, channels-last
    return median_ms(lambda: conv(x).backward(grad), repeats)


def genome_step_ms(on: bool, repeats: int) -> float:
    quick = PRESETS["quick"]
    torch.manual_seed(0)
    with faster_depthwise(on):
        model = build_model("genome", genome=GENOME, n_classes=4, **quick["net"]).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(32, 1, 128, 64).contiguous(memory_format=torch.channels_last)
    y = torch.arange(32) % 4

    def step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return median_ms(step, repeats)


def search_step_ms(on: bool, repeats: int, preset: str = "quick") -> float:
    if preset == "quick":
        quick = PRESETS["quick"]
        space, config = SearchSpace(**quick["space"]).replace(input_shape=(128, 64)), SearchConfig(**quick["search"])
    else:  # the paper's supernet at batch 16, as benchmarks/search_step.py times it
        space, config = SearchSpace(), SearchConfig(batch_size=16)
    with faster_depthwise(on):
        return 1000 * estimate_cost(space, config, repeats=repeats)["step_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--paper", action="store_true", help="also time the paper's supernet (slow)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}; ms per forward + backward")
    print(f"{'channels x rows x columns, kernel, stride, dilation':54s} {'nn.Conv2d':>10s} {'emokit':>8s} {'ratio':>6s}")
    for shape in SHAPES:
        plain, fast = layer_ms(shape, False, args.repeats), layer_ms(shape, True, args.repeats)
        label = f"{shape[0]} x {shape[1]} x {shape[2]}, {shape[3]}x{shape[3]}, {shape[4]}, {shape[5]}"
        print(f"{label:54s} {plain:10.1f} {fast:8.1f} {plain / fast:5.2f}x")
    rows = [("quick genome net, training step, batch 32", genome_step_ms, {}),
            ("quick supernet, first-order search step, batch 32", search_step_ms, {})]
    if args.paper:
        rows.append(("paper supernet, first-order search step, batch 16", search_step_ms, {"preset": "paper"}))
    for name, measure, options in rows:
        plain, fast = measure(False, args.repeats, **options), measure(True, args.repeats, **options)
        print(f"{name:54s} {plain:10.1f} {fast:8.1f} {plain / fast:5.2f}x")


if __name__ == "__main__":
    main()
