"""Cells: the repeated units of the supernet (mixed edges) and of the
retrained network (one op per kept edge).

A cell reads the two previous cells' outputs ``s0 = c_{k-2}``, ``s1 =
c_{k-1}``; node ``j`` sums its incoming edges from every earlier state. CNN
cells concatenate their nodes along channels; SeqNN cells average them (so
the width ``d`` stays fixed along the sequence component).
"""
from __future__ import annotations

import torch
from torch import nn

from emokit.search.genotype import CellGenes
from emokit.search.ops import CNN_OPS, SEQ_OPS, FactorizedReduce, ReLUConvBN


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """PC-DARTS' channel shuffle, (N, C, H, W) -> (N, C, H, W), in the memory
    format of ``x`` (a channels-last map stays channels-last: every later op
    of a search runs several times slower on the other layout)."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        pixels = x.permute(0, 2, 3, 1)  # (N, H, W, C), contiguous
        shuffled = pixels.view(n, h, w, groups, c // groups).transpose(3, 4).reshape(n, h, w, c)
        return shuffled.permute(0, 3, 1, 2)
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class MixedOp(nn.Module):
    """One supernet edge: ``sum_o softmax(alpha)_o * o(x)`` (DARTS eq. 1).

    ``partial > 1`` is PC-DARTS: only ``1/partial`` of the channels go
    through the ops, the rest bypass them, and the channels are shuffled.
    ``aux_skip`` (DARTS-, set by the search loop): ``aux_skip * x`` is added
    on stride-1 edges, an auxiliary skip connection outside the softmax that
    takes away the identity's unfair advantage while it decays to 0.
    """

    def __init__(self, ops: tuple[str, ...], build, partial: int = 1, stride: int = 1):
        super().__init__()
        self.op_names = tuple(ops)
        self.ops = nn.ModuleList(build(name) for name in ops)
        self.partial = partial
        self.stride = stride
        self.aux_skip = 0.0

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` -> (channels through the ops, bypassing channels or None).
        PC-DARTS: the first ``1/partial`` of the channels go through; the rest
        bypass the ops (max-pooled on strided edges)."""
        if self.partial == 1:
            return x, None
        c = x.shape[1] // self.partial
        # split, not two slices: the backward of a slice zero-fills a tensor of the input's size.
        through, bypass = torch.split(x, [c, x.shape[1] - c], dim=1)
        if x.is_contiguous(memory_format=torch.channels_last):  # a dense map, not a strided slice, for the ops
            through = through.contiguous(memory_format=torch.channels_last)
        if self.stride == 2:
            bypass = nn.functional.max_pool2d(bypass, 2, 2, ceil_mode=True)
        return through, bypass

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        through, bypass = self.split(x)
        out = sum(w * op(through) for w, op in zip(weights, self.ops))
        if self.aux_skip and self.stride == 1:
            out = out + self.aux_skip * through
        return out if bypass is None else channel_shuffle(torch.cat([out, bypass], dim=1), self.partial)


def edge_index(source: int, node: int) -> int:
    """Index in a cell's ``edges`` (and in the alpha rows) of the edge state ``source`` -> node ``node``."""
    return sum(2 + k for k in range(node)) + source


class CNNCellBase(nn.Module):
    """Preprocessing shared by search and fixed CNN cells: 1x1 convs bring both
    inputs to ``c`` channels (a factorised reduce when the previous cell
    halved the resolution)."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine)


class SearchCNNCell(CNNCellBase):
    """A supernet CNN cell: node ``j`` is the sum of the mixed edges from
    every earlier state (DARTS eq. 2); the output concatenates the nodes."""

    edge_index = staticmethod(edge_index)

    def __init__(self, ops, n_nodes, c_pp, c_p, c, reduction, reduction_prev, partial=1):
        super().__init__(c_pp, c_p, c, reduction_prev, affine=False)
        self.reduction = reduction
        self.n_nodes = n_nodes
        self.edges = nn.ModuleList()
        for j in range(n_nodes):
            for i in range(2 + j):
                stride = 2 if reduction and i < 2 else 1  # reduction cells halve the map on the input edges
                build = lambda name, s=stride: CNN_OPS.get(name)(c // partial, s, False)  # noqa: E731
                self.edges.append(MixedOp(ops, build, partial, stride))

    def forward(self, s0, s1, weights):
        states = [self.pre0(s0), self.pre1(s1)]
        for j in range(self.n_nodes):
            states.append(sum(self.edges[edge_index(i, j)](h, weights[edge_index(i, j)]) for i, h in enumerate(states)))
        return torch.cat(states[2:], dim=1)


class SearchSeqCell(nn.Module):
    """A supernet SeqNN cell: as a CNN cell, but the output averages the
    nodes (the width ``d`` stays fixed along the sequence component)."""

    edge_index = staticmethod(edge_index)

    def __init__(self, ops, n_nodes, d):
        super().__init__()
        self.n_nodes = n_nodes
        self.edges = nn.ModuleList(MixedOp(ops, lambda name: SEQ_OPS.get(name)(d))
                                   for j in range(n_nodes) for _ in range(2 + j))

    def forward(self, s0, s1, weights):
        states = [s0, s1]
        for j in range(self.n_nodes):
            states.append(sum(self.edges[edge_index(i, j)](h, weights[edge_index(i, j)]) for i, h in enumerate(states)))
        return torch.stack(states[2:]).mean(0)


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero whole samples of a path with probability ``prob`` (training only)."""
    if prob <= 0.0:
        return x
    keep = torch.bernoulli(torch.full((x.shape[0],) + (1,) * (x.dim() - 1), 1 - prob, device=x.device))
    return x / (1 - prob) * keep


class FixedCNNCell(CNNCellBase):
    """A CNN cell of a genome: each node sums its kept edges' ops."""

    def __init__(self, genes: CellGenes, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__(c_pp, c_p, c, reduction_prev, affine=True)
        self.genes = genes
        self.ops = nn.ModuleList(
            CNN_OPS.get(op)(c, 2 if reduction and src < 2 else 1, True) for node in genes for op, src in node
        )

    def forward(self, s0, s1, drop_prob: float = 0.0, apply=None):
        """``apply(op, x)``, if given, runs each op on its input (the fast path
        of a genome network shares ReLUs through it); by default ``op(x)``."""
        apply = apply or nn.Module.__call__
        states = [apply(self.pre0, s0), apply(self.pre1, s1)]
        k = 0
        for node in self.genes:
            total = 0
            for op_name, src in node:
                out = apply(self.ops[k], states[src])
                if self.training and op_name != "skip_connect":
                    out = drop_path(out, drop_prob)
                total = total + out
                k += 1
            states.append(total)
        return torch.cat(states[2:], dim=1)


class FixedSeqCell(nn.Module):
    """A SeqNN cell of a genome."""

    def __init__(self, genes: CellGenes, d: int):
        super().__init__()
        self.genes = genes
        self.ops = nn.ModuleList(SEQ_OPS.get(op)(d) for node in genes for op, _ in node)

    def forward(self, s0, s1):
        states = [s0, s1]
        k = 0
        for node in self.genes:
            total = 0
            for _, src in node:
                total = total + self.ops[k](states[src])
                k += 1
            states.append(total)
        return torch.stack(states[2:]).mean(0)
