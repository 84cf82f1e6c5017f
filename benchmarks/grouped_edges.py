"""Would grouping the edges that read one state into one convolution pay on the CPU?

    python benchmarks/grouped_edges.py [--threads 1] [--repeats 7] [--seq]

In a CNN cell of the supernet, every edge that reads a state runs the same
four convolution ops on it, each with its own weights. The speed issue
proposes running them as one: the state repeated once per edge, one
depthwise convolution over all the copies (``groups`` = channels x edges),
one grouped pointwise convolution (``groups`` = edges) and one BatchNorm
over all the channels. That is the same arithmetic in fewer, wider calls.

For each op and map shape below this prints, alternating the two in one
process, forward + backward (a fixed dense output gradient) of the edges
one by one (emokit's path: :func:`emokit.search.speed.accelerate`d layers
on a shared ReLU, the outputs summed with their softmax weights) and of the
grouped version, and the largest difference of their outputs and
gradients (relative to the largest value of each). Only stride-1 edges are
measured (every edge of a normal cell).

``--seq`` also prints the SeqNN cells' share of a forward + backward pass
of the paper's supernet at batch 16: the most that grouping the SeqNN edges
that read one state could save.

Nothing is asserted; nothing here is used by emokit.
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

from emokit.search import speed  # noqa: E402
from emokit.search.ops import DilConv, SepConv  # noqa: E402
from emokit.search.supernet import SearchSpace, Supernet  # noqa: E402

# (channels, map side, batch, edges reading the state): the paper's first
# cell (128 x 128 maps, a state read by 4 edges), its last cell, and the
# quick preset's first cell (stride-2 stem; 2 nodes, so 2 edges per state).
SHAPES = [(8, 128, 16, 4), (32, 32, 16, 4), (4, 64, 32, 2)]
OPS = {"sep_conv_3x3": lambda c: SepConv(c, c, 3, 1, 1, affine=False),
       "sep_conv_5x5": lambda c: SepConv(c, c, 5, 1, 2, affine=False),
       "dil_conv_3x3": lambda c: DilConv(c, c, 3, 1, 2, 2, affine=False),
       "dil_conv_5x5": lambda c: DilConv(c, c, 5, 1, 4, 2, affine=False)}


def stages(op: nn.Module) -> list[DilConv]:
    """The (ReLU, depthwise, pointwise, BatchNorm) stages of a sep or dil conv."""
    return [op] if isinstance(op, DilConv) else list(op)


def one_by_one(ops: nn.ModuleList, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    relu = torch.relu(x)
    total = None
    for op, w in zip(ops, weights):
        out = relu
        for k, stage in enumerate(stages(op)):
            out = stage[3](stage[2](stage[1](torch.relu(out) if k else out)))
        total = speed.accumulate(total, w, out)
    return total


def grouped(ops: nn.ModuleList, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    edges, channels = len(ops), x.shape[1]
    out = torch.relu(x).repeat(1, edges, 1, 1)  # channel e * C + c: edge e's copy of channel c
    for k in range(len(stages(ops[0]))):
        layers = [stages(op)[k] for op in ops]
        depthwise = layers[0][1]
        if k:
            out = torch.relu(out)
        # emokit's faster depthwise gradient, as the edges one by one get it (stride 1)
        out = speed._DepthwiseConvForwardBackward.apply(out, torch.cat([s[1].weight for s in layers]),
                                                        depthwise.padding, depthwise.dilation)
        out = nn.functional.conv2d(out, torch.cat([s[2].weight for s in layers]), groups=edges)
        out = speed.dense_gradient(nn.functional.batch_norm(out, None, None, training=True))
    total = None
    for w, part in zip(weights, out.split(channels, dim=1)):
        total = speed.accumulate(total, w, part)
    return total


def compare(name: str, channels: int, side: int, batch: int, edges: int, repeats: int) -> str:
    torch.manual_seed(0)
    ops = speed.accelerate(nn.ModuleList(OPS[name](channels) for _ in range(edges)))
    ops = ops.to(memory_format=torch.channels_last)
    x = torch.randn(batch, channels, side, side).contiguous(memory_format=torch.channels_last).requires_grad_()
    weights = torch.softmax(torch.randn(edges), 0)
    grad = torch.randn(batch, channels, side, side).contiguous(memory_format=torch.channels_last)
    params = [x, *ops.parameters()]
    results = [torch.autograd.grad(f(ops, x, weights), params, grad) + (f(ops, x, weights).detach(),)
               for f in (one_by_one, grouped)]
    diff = max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(*results))

    def timed(f):
        def step():
            start = time.perf_counter()
            f(ops, x, weights).backward(grad)
            return time.perf_counter() - start
        return step

    steps = {f: timed(f) for f in (one_by_one, grouped)}
    for step in steps.values():
        step()  # warm-up
    times = {f: [] for f in steps}
    for _ in range(repeats):  # alternating, so drift hits both alike
        for f, step in steps.items():
            times[f].append(step())
    alone, together = (statistics.median(times[f]) * 1e3 for f in (one_by_one, grouped))
    return (f"| {name} | {channels} x {side} x {side}, batch {batch} | {edges} | {alone:.1f} | {together:.1f} "
            f"| {alone / together:.2f}x | {diff:.1e} |")


def seq_share(repeats: int) -> str:
    """Seconds of a forward + backward pass of the paper supernet at batch 16, and of its SeqNN cells alone."""
    torch.manual_seed(0)
    model = Supernet(SearchSpace()).to(memory_format=torch.channels_last)
    x = torch.randn(16, 1, 128, 128).contiguous(memory_format=torch.channels_last)
    weights = {t: torch.softmax(a.detach(), -1) for t, a in model.alphas.items()}
    with torch.no_grad():
        s0 = s1 = model.stem(x)
        for cell in model.cnn_cells:
            s0, s1 = s1, model._cnn_cell(cell, s0, s1, weights["reduce" if cell.reduction else "normal"])
        sequence = model.bridge(s1)

    def whole():
        start = time.perf_counter()
        model(x).sum().backward()
        return time.perf_counter() - start

    def seq_cells():
        start = time.perf_counter()
        h0 = h1 = sequence.detach().requires_grad_()
        for cell in model.seq_cells:
            h0, h1 = h1, speed.seq_cell_forward(cell, h0, h1, weights["seq"])
        h1.sum().backward()
        return time.perf_counter() - start

    whole(), seq_cells()
    times = {whole: [], seq_cells: []}
    for _ in range(repeats):
        for f in times:
            times[f].append(f())
    all_s, seq_s = (statistics.median(times[f]) for f in (whole, seq_cells))
    return (f"paper supernet, batch 16, forward + backward: {all_s:.2f} s, of which the SeqNN cells "
            f"{seq_s:.2f} s ({100 * seq_s / all_s:.1f} %)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seq", action="store_true", help="also the SeqNN cells' share of a paper step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}, ms per forward + backward")
    print("| op | map | edges | one by one | grouped | grouped speed-up | largest relative difference |")
    print("|---|---|---|---|---|---|---|")
    for channels, side, batch, edges in SHAPES:
        for name in OPS:
            print(compare(name, channels, side, batch, edges, args.repeats), flush=True)
    if args.seq:
        print(seq_share(max(3, args.repeats // 2)))


if __name__ == "__main__":
    main()
