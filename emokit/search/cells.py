"""Cells: the repeated units of the supernet (mixed edges) and of the
retrained network (one op per kept edge).

A cell reads the two previous cells' outputs ``s0 = c_{k-2}``, ``s1 =
c_{k-1}``; node ``j`` sums its incoming edges from every earlier state. CNN
cells concatenate their nodes along channels; SeqNN cells average them (so
the width ``d`` stays fixed along the sequence component).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from emokit.search.genotype import CellGenes
from emokit.search.grouped_rnn import groupable, grouped_recurrence
from emokit.search.ops import (CNN_OPS, SEQ_OPS, FactorizedReduce, PoolBN, Recurrent, ReLUConvBN, after_leading_relu,
                               recomputing)


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
    """One supernet edge: ``sum_o softmax(alpha)_o * o(x)``.

    ``none`` contributes exactly zero to the sum, so by default it is not run
    (``skip_none``): same output and the same alpha gradients (its weight
    still enters the softmax), less work. ``partial > 1`` is PC-DARTS: only
    ``1/partial`` of the channels go through the ops, the rest bypass them
    and the channels are shuffled. ``share_relu``: the ops that start with a
    ReLU (every conv op) share one ``relu(x)`` -- same output and gradients,
    one stored activation instead of five. ``group_rnns``: the tanh RNN ops
    (all of which read ``x``) run as one batched recurrence
    (:mod:`emokit.search.grouped_rnn`) -- same outputs and gradients.
    """

    def __init__(self, ops: tuple[str, ...], build, partial: int = 1, stride: int = 1, skip_none: bool = True,
                 share_relu: bool = False, group_rnns: bool = False):
        super().__init__()
        self.op_names = ops
        self.ops = nn.ModuleList(build(name) for name in ops)
        self.active = [i for i, name in enumerate(ops) if not (skip_none and name == "none")]
        self.partial = partial
        self.stride = stride
        # Plain lists, not modules: the layers stay registered once, under ops.
        tails = {i: after_leading_relu(self.ops[i]) for i in self.active} if share_relu else {}
        self.tails = {i: t for i, t in tails.items() if t is not None}
        # Only the RNNs: PyTorch runs each of them step by step on the CPU, while
        # its LSTM kernel (oneDNN) beat the grouped LSTM recurrence (measured).
        self.rnn_group = [i for i in self.active if group_rnns and isinstance(self.ops[i], Recurrent)
                          and isinstance(self.ops[i].rnn, nn.RNN) and groupable(self.ops[i].rnn)]

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

    def op_output(self, i: int, x: torch.Tensor, relu: torch.Tensor | None = None) -> torch.Tensor:
        """Op ``i`` applied to ``x``; ``relu`` = ``relu(x)`` for the ops that start with one."""
        if i in self.tails:
            out = relu if relu is not None else torch.relu(x)
            for layer in self.tails[i]:
                out = layer(out)
            return out
        return self.ops[i](x)

    def weighted_sum(self, x: torch.Tensor, weights: torch.Tensor, total: torch.Tensor | None = None) -> torch.Tensor:
        """``total + sum_o weights[o] * o(x)`` over the active ops."""
        relu = torch.relu(x) if self.tails else None
        grouped = dict(zip(self.rnn_group, grouped_recurrence(x, [self.ops[i].rnn for i in self.rnn_group])))
        for i in self.active:
            out = self.ops[i].attend(grouped[i]) if i in grouped else self.op_output(i, x, relu)
            total = accumulate(total, weights[i], out)
        return total

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        through, bypass = self.split(x)
        out = self.weighted_sum(through, weights)
        return out if bypass is None else channel_shuffle(torch.cat([out, bypass], dim=1), self.partial)


def accumulate(total: torch.Tensor | None, weight: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``total + weight * out`` (``weight * out`` when ``total`` is None), in
    place where the dtypes allow: one pass over the map instead of two."""
    if total is None:
        return out * weight
    if total.dtype == out.dtype:
        return total.addcmul_(weight, out)
    return torch.addcmul(total, weight, out)


class CNNCellBase(nn.Module):
    """Preprocessing shared by search and fixed CNN cells: 1x1 convs bring both
    inputs to ``c`` channels (a factorised reduce when the previous cell
    halved the resolution)."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction_prev: bool, affine: bool):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine)


class SearchCNNCell(CNNCellBase):
    def __init__(self, ops, n_nodes, c_pp, c_p, c, reduction, reduction_prev, partial=1, skip_none=True,
                 share_relu=True, state_by_state=True):
        super().__init__(c_pp, c_p, c, reduction_prev, affine=False)
        self.state_by_state = state_by_state  # False: edge by edge, as plain DARTS
        self.reduction = reduction
        self.n_nodes = n_nodes
        self.edges = nn.ModuleList()
        for j in range(n_nodes):
            for i in range(2 + j):
                stride = 2 if reduction and i < 2 else 1
                self.edges.append(MixedOp(ops, lambda name, s=stride: CNN_OPS.get(name)(c // partial, s, False),
                                          partial, stride, skip_none, share_relu))
        # Parameter-free ops (pooling with affine-free BatchNorm, identity) give
        # the same map on every edge that reads the same state.
        self.shared_ops = [i for i, op in enumerate(self.edges[0].ops)
                           if isinstance(op, (PoolBN, nn.Identity)) and not list(op.parameters())]

    def edge_index(self, source: int, node: int) -> int:
        """Index in ``edges`` (and in the alpha rows) of the edge state ``source`` -> node ``node``."""
        return sum(2 + k for k in range(node)) + source

    def forward(self, s0, s1, weights, recompute: bool = False):
        """``recompute``: keep only each edge's input and output for the
        backward pass and recompute its inside (gradient checkpointing)."""
        states = [self.pre0(s0), self.pre1(s1)]
        recompute = recompute and torch.is_grad_enabled()
        if recompute or not self.state_by_state:
            return self._forward_by_edge(states, weights, recompute)
        return self._forward_by_source(states, weights)

    def _forward_by_edge(self, states, weights, recompute=False):
        offset = 0
        for _ in range(self.n_nodes):
            outs = [checkpoint(self.edges[offset + i], h, weights[offset + i], use_reentrant=False,
                               context_fn=lambda: (contextlib.nullcontext(), recomputing())) if recompute
                    else self.edges[offset + i](h, weights[offset + i])
                    for i, h in enumerate(states)]
            states.append(sum(outs))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)

    def _forward_by_source(self, states, weights):
        """Same sums as edge by edge, state by state: the edges reading one
        state share its split, its ReLU and their parameter-free ops, and
        PC-DARTS' concatenation and channel shuffle run once per node (they
        are linear) instead of once per edge."""
        mixed = [None] * self.n_nodes  # per node: sum of its edges' weighted op outputs
        bypass = [None] * self.n_nodes  # per node, PC-DARTS: sum of its edges' bypassing channels
        for source in range(self.n_nodes + 1):  # the last node feeds no other
            nodes = range(max(0, source - 1), self.n_nodes)
            edges = [(self.edges[k], weights[k]) for k in (self.edge_index(source, j) for j in nodes)]
            first = edges[0][0]
            through, passing = first.split(states[source])
            relu = torch.relu(through) if first.tails else None
            shared = {}
            for j, (edge, w) in zip(nodes, edges):
                for i in edge.active:
                    if i in self.shared_ops:
                        if i not in shared:
                            shared[i] = first.op_output(i, through, relu)
                        elif self.training:  # keep every edge's BatchNorm statistics as if it had run
                            with torch.no_grad():
                                for own, ran in zip(edge.ops[i].buffers(), first.ops[i].buffers()):
                                    own.copy_(ran)
                        out = shared[i]
                    else:
                        out = edge.op_output(i, through, relu)
                    mixed[j] = accumulate(mixed[j], w[i], out)
                if passing is not None:
                    bypass[j] = passing if bypass[j] is None else bypass[j] + passing
            if source >= 1:  # node source-1 has all its edges now
                node = source - 1
                states.append(mixed[node] if bypass[node] is None
                              else channel_shuffle(torch.cat([mixed[node], bypass[node]], dim=1), first.partial))
        return torch.cat(states[2:], dim=1)


class SearchSeqCell(nn.Module):
    def __init__(self, ops, n_nodes, d, skip_none=True, group_rnns=True):
        super().__init__()
        self.n_nodes = n_nodes
        self.edges = nn.ModuleList(
            MixedOp(ops, lambda name: SEQ_OPS.get(name)(d), skip_none=skip_none, group_rnns=group_rnns)
            for j in range(n_nodes) for _ in range(2 + j)
        )

    def forward(self, s0, s1, weights):
        states = [s0, s1]
        offset = 0
        for _ in range(self.n_nodes):
            states.append(sum(self.edges[offset + i](h, weights[offset + i]) for i, h in enumerate(states)))
            offset += len(states) - 1
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

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.pre0(s0), self.pre1(s1)]
        k = 0
        for node in self.genes:
            total = 0
            for op_name, src in node:
                out = self.ops[k](states[src])
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
