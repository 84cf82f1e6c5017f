"""Measured speed paths of the supernet, kept apart from the reference code.

:mod:`emokit.search.cells` holds plain DARTS: every op of every edge run and
weighted, edge by edge. This module computes the same sums faster on the CPU
(each path is tested equal to the reference, outputs and gradients):

- :func:`accelerate` swaps layers for subclasses with the same parameters:
  BatchNorm and pooling of few-channel maps take a detour through NCHW,
  BatchNorm's gradient arrives dense (:func:`dense_gradient`), max pooling
  keeps its input instead of int64 argmax indices, and depthwise
  convolutions get faster gradients (:class:`DepthwiseConv2d`).
- :func:`edge_forward`: one mixed edge that skips ``none`` (it adds exactly
  zero), computes ``relu(x)`` once for all conv ops and runs the edge's tanh
  RNNs as one batched recurrence (:mod:`emokit.search.grouped_rnn`).
- :func:`cnn_cell_by_state`: a CNN cell evaluated state by state: the edges
  that read one state share its PC-DARTS split, its ReLU and their
  parameter-free ops, and PC-DARTS' channel shuffle runs once per node.
- :func:`cnn_cell_recomputed`: edges recomputed in the backward pass
  (gradient checkpointing), a fraction of the memory for one more forward.
- :class:`SharedReLU`: in a retrained genome network, the ops that read one
  state (in a cell, and the pre-processing of the next cells) share its ReLU.

``Supernet(space, fast=True)`` and ``GenomeNet(genome, fast=True)`` (the
defaults) use them; ``fast=False`` runs the reference, as the benchmark's
baseline does.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from emokit.search.cells import SearchCNNCell, channel_shuffle
from emokit.search.grouped_rnn import groupable, grouped_recurrence
from emokit.search.ops import FactorizedReduce, PoolBN, Recurrent

# --- layers with faster CPU paths ------------------------------------------
# At most this many channels, BatchNorm / pooling run in NCHW.
FEW_CHANNELS_BATCHNORM = 4
FEW_CHANNELS_POOLING = 2


def _few_channels_last(x: torch.Tensor, limit: int) -> bool:
    """PyTorch's channels-last CPU kernels for BatchNorm and pooling vectorise
    over channels. With few channels (PC-DARTS' cells) they are slower than
    on NCHW even counting the two layout copies (measured, torch 2.13, batch
    16, 32-128 pixels square: BatchNorm forward + backward 3-7x slower at 2-4
    channels; pooling 3x slower at 2 channels, faster from 8), while
    convolutions are faster in channels-last at every width. Such maps take a
    detour through NCHW. At 8 channels the detour stopped paying once
    BatchNorm's gradients arrive dense (:func:`dense_gradient`): a
    quick-preset genome step without it took 0.81-0.94x the time of one with
    it (5 genomes, batch 32, one thread)."""
    return (x.device.type == "cpu" and x.dim() == 4 and x.shape[1] <= limit
            and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last))


_RECOMPUTING = contextvars.ContextVar("emokit_recomputing", default=False)


@contextlib.contextmanager
def recomputing():
    """Inside: a forward pass run a second time (gradient checkpointing), so
    BatchNorm must not update its running statistics again."""
    token = _RECOMPUTING.set(True)
    try:
        yield
    finally:
        _RECOMPUTING.reset(token)


class DetourBatchNorm(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters and state) that runs maps of few
    channels in NCHW on the CPU and leaves its running statistics alone
    while :func:`recomputing`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _few_channels_last(x, FEW_CHANNELS_BATCHNORM):
            return self._normalise(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return self._normalise(x)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and _RECOMPUTING.get():  # batch statistics as in the first pass; momentum 0: no update
            out = nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, 0.0,
                                           self.eps)
        else:
            out = super().forward(x)
        return dense_gradient(out)


class _MaxPoolKeepingInput(torch.autograd.Function):
    """Max pooling that stores its input for the backward pass instead of
    int64 argmax indices: the input is a cell state other ops keep anyway,
    while the indices would cost 8 bytes per output value (about 450 MiB in
    the paper's supernet at batch 16). The backward recomputes the pooling."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        ctx.save_for_backward(x)
        ctx.pool = (kernel, stride, padding)
        return nn.functional.max_pool2d(x, kernel, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            out = nn.functional.max_pool2d(x, *ctx.pool)
        return torch.autograd.grad(out, x, grad)[0], None, None, None


class InputKeepingMaxPool(nn.MaxPool2d):
    """``nn.MaxPool2d`` whose backward needs no argmax indices."""

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            return _MaxPoolKeepingInput.apply(x, self.kernel_size, self.stride, self.padding)
        return super().forward(x)


class DetourPoolBN(PoolBN):
    """Pooling + BatchNorm of few-channel maps in NCHW, one detour for both."""

    def forward(self, x):
        if _few_channels_last(x, FEW_CHANNELS_POOLING):
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def _layout(x: torch.Tensor) -> torch.memory_format:
    """The memory format ``x`` is dense in: channels-last or NCHW."""
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def dense_gradient(x: torch.Tensor) -> torch.Tensor:
    """``x``, whose gradient is made dense in ``x``'s layout before it flows on.

    A node's gradient is a channel slice of its cell's concatenated output
    gradient (strided in channels-last); BatchNorm's CPU backward on such a
    gradient ran 3-5x slower than on a dense one (2.4 ms against 0.5 ms at 16
    channels, 32 x 16 pixels, batch 32, one thread, torch 2.13)."""
    if x.device.type == "cpu" and x.requires_grad and torch.is_grad_enabled():
        layout = _layout(x)
        x.register_hook(lambda grad: grad.contiguous(memory_format=layout))
    return x


class _DilatedGrid(torch.autograd.Function):
    """``pad(x)[:, :, ::dh, ::dw]`` as a dense map in ``x``'s layout. Autograd's
    own backward of the slice fills an NCHW gradient, and every backward op
    after it (the ReLU's, the convolutions') then mixes layouts and runs
    several times slower; this one writes the gradient in ``x``'s layout."""

    @staticmethod
    def forward(ctx, x, padding, dilation):
        ctx.shape, ctx.layout, ctx.grid = x.shape, _layout(x), _grid_rows_and_columns(x.shape, padding, dilation)
        (i0, rows, r0, dh, height), (j0, cols, c0, dw, width) = ctx.grid
        # Padding the sampled rows and columns, not the whole map: a quarter of the memory traffic.
        return nn.functional.pad(x[:, :, r0::dh, c0::dw], (j0, width - j0 - cols, i0, height - i0 - rows)
                                 ).contiguous(memory_format=ctx.layout)

    @staticmethod
    def backward(ctx, grad):
        (i0, rows, r0, dh, _), (j0, cols, c0, dw, _) = ctx.grid
        grad_x = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=ctx.layout).zero_()
        grad_x[:, :, r0::dh, c0::dw] = grad[:, :, i0 : i0 + rows, j0 : j0 + cols]
        return grad_x, None, None


def _grid_rows_and_columns(shape, padding, dilation) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For rows, then columns, of ``pad(x)[:, :, ::d, ::d]``: (first grid
    index inside x, how many inside, the x index it reads, d, grid size).
    Grid index i reads index i * d - p of x."""
    out = []
    for size, p, d in zip(shape[2:], padding, dilation):
        first = -(-p // d)
        start = first * d - p
        out.append((first, len(range(start, size, d)), start, d, (size + 2 * p - 1) // d + 1))
    return tuple(out)


class _DepthwiseConvForwardBackward(torch.autograd.Function):
    """A depthwise convolution of stride 1 whose input gradient is computed
    as a forward convolution of the output gradient with the flipped kernel
    (the transposed convolution of stride 1 is that correlation). The weight
    gradient is PyTorch's own. Both are differentiable, so double backward
    still works."""

    @staticmethod
    def forward(ctx, x, weight, padding, dilation):
        ctx.save_for_backward(x, weight)
        ctx.conv = (padding, dilation)
        return nn.functional.conv2d(x, weight, None, 1, padding, dilation, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        padding, dilation = ctx.conv
        groups = weight.shape[0]
        # An expanded or oddly strided gradient (e.g. of a sum) would send the
        # convolutions below down a slow path.
        grad = grad.contiguous(memory_format=_layout(x))
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            full = [d * (k - 1) - p for d, k, p in zip(dilation, weight.shape[2:], padding)]
            grad_x = nn.functional.conv2d(grad, weight.flip(2, 3), None, 1, full, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], list(padding), list(dilation), False, [0, 0], groups,
                [False, True, False])[1]
        return grad_x, grad_weight, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` (depthwise, zero padding, no bias; stride 1, or stride
    equal to the dilation) with faster CPU gradients. oneDNN's backward
    kernels for depthwise convolutions are slow, dilated ones most of all
    (channels-last, batch 32, 16 channels, 64 x 32 pixels, 5 x 5 at
    dilation 2: forward 0.7 ms, backward 25 ms at stride 1 and 54 ms at
    stride 2; torch 2.13, one thread). So:

    - stride 1: the input gradient is a forward convolution
      (:class:`_DepthwiseConvForwardBackward`);
    - stride = dilation (DARTS' ``dil_conv`` in a reduction cell): the
      convolution reads only every d-th row and column of the padded map,
      so it runs undilated on that grid, where oneDNN is fast both ways.
    """

    def forward(self, x):
        if x.device.type != "cpu" or not (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        if self.stride == (1, 1):
            return _DepthwiseConvForwardBackward.apply(x, self.weight, self.padding, self.dilation)
        grid = _DilatedGrid.apply(x, self.padding, self.dilation)
        return nn.functional.conv2d(grid, self.weight, None, 1, 0, 1, self.groups)


def _fast_depthwise(conv: nn.Conv2d) -> bool:
    if not (conv.groups == conv.in_channels == conv.out_channels and conv.bias is None
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)):
        return False
    if conv.stride == (1, 1):
        return all(d * (k - 1) >= p for d, k, p in zip(conv.dilation, conv.kernel_size, conv.padding))
    return conv.stride == conv.dilation  # and > 1: undilated strided convs are fast already


_FASTER = {nn.BatchNorm2d: DetourBatchNorm, nn.MaxPool2d: InputKeepingMaxPool, PoolBN: DetourPoolBN}


def accelerate(model: nn.Module) -> nn.Module:
    """Give every BatchNorm, max pooling, pooling op and depthwise
    convolution of ``model`` its faster subclass (where it has one), in place. Parameters,
    buffers and ``state_dict`` keys stay as they are; only ``forward`` changes."""
    for module in model.modules():
        faster = _FASTER.get(type(module))
        if type(module) is nn.Conv2d and _fast_depthwise(module):
            faster = DepthwiseConv2d
        if faster is not None:
            module.__class__ = faster
    return model


# --- one mixed edge --------------------------------------------------------
def after_leading_relu(op: nn.Module):
    """``op`` without its leading ReLU, as a list of callables to apply in
    turn, or None if ``op`` does not start with a ReLU."""
    if isinstance(op, FactorizedReduce):
        return [op.after_relu]
    if isinstance(op, nn.Sequential) and len(op):
        first, rest = op[0], list(op)[1:]
        if isinstance(first, nn.ReLU):
            return rest
        inner = after_leading_relu(first)
        if inner is not None:
            return inner + rest
    return None


class EdgePlan:
    """What :func:`edge_forward` needs to know about an edge, worked out once."""

    def __init__(self, edge: nn.Module):
        self.active = [i for i, name in enumerate(edge.op_names) if name != "none"]
        tails = {i: after_leading_relu(edge.ops[i]) for i in self.active}
        self.tails = {i: t for i, t in tails.items() if t is not None}
        # Only tanh RNNs: PyTorch runs them step by step on the CPU, while its
        # LSTM kernel (oneDNN) is fast already.
        self.rnn_group = [i for i in self.active if isinstance(edge.ops[i], Recurrent)
                          and isinstance(edge.ops[i].rnn, nn.RNN) and groupable(edge.ops[i].rnn)]


def plan(edge: nn.Module) -> EdgePlan:
    if "_speed_plan" not in edge.__dict__:
        edge.__dict__["_speed_plan"] = EdgePlan(edge)  # a plain attribute, not a submodule
    return edge.__dict__["_speed_plan"]


def accumulate(total: torch.Tensor | None, weight: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``total + weight * out`` (``weight * out`` when ``total`` is None), in
    place where the dtypes allow: one pass over the map instead of two."""
    if total is None:
        return out * weight
    if total.dtype == out.dtype:
        return total.addcmul_(weight, out)
    # Mixed dtypes (autocast): CUDA's autocast rejects addcmul of these; plain
    # arithmetic promotes.
    return total + weight * out


def op_output(edge: nn.Module, i: int, x: torch.Tensor, relu: torch.Tensor | None) -> torch.Tensor:
    """Op ``i`` of ``edge`` on ``x``; ``relu`` = ``relu(x)`` for the ops that start with one."""
    tails = plan(edge).tails
    if i in tails:
        out = relu if relu is not None else torch.relu(x)
        for layer in tails[i]:
            out = layer(out)
        return out
    return edge.ops[i](x)


def edge_forward(edge: nn.Module, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``edge(x, weights)`` of a :class:`~emokit.search.cells.MixedOp`, faster."""
    p = plan(edge)
    through, bypass = edge.split(x)
    relu = torch.relu(through) if p.tails else None
    # On a GPU cuDNN runs each RNN as one kernel; the grouped recurrence's
    # Python time loop would launch hundreds.
    group = p.rnn_group if through.device.type == "cpu" else []
    grouped = dict(zip(group, grouped_recurrence(through, [edge.ops[i].rnn for i in group])))
    total = None
    for i in p.active:
        out = edge.ops[i].attend(grouped[i]) if i in grouped else op_output(edge, i, through, relu)
        total = accumulate(total, weights[i], out)
    if edge.aux_skip and edge.stride == 1:
        total = total + edge.aux_skip * through
    return total if bypass is None else channel_shuffle(torch.cat([total, bypass], dim=1), edge.partial)


# --- whole cells -----------------------------------------------------------
def seq_cell_forward(cell: nn.Module, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``cell(s0, s1, weights)`` of a SearchSeqCell with :func:`edge_forward` edges."""
    states = [s0, s1]
    for j in range(cell.n_nodes):
        states.append(sum(edge_forward(cell.edges[k], h, weights[k])
                          for k, h in ((cell.edge_index(i, j), h) for i, h in enumerate(states))))
    return torch.stack(states[2:]).mean(0)


def cnn_cell_recomputed(cell: SearchCNNCell, s0, s1, weights) -> torch.Tensor:
    """``cell(s0, s1, weights)``, keeping only each edge's input and output
    for the backward pass and recomputing its inside (gradient checkpointing)."""
    states = [cell.pre0(s0), cell.pre1(s1)]
    for j in range(cell.n_nodes):
        outs = [checkpoint(edge_forward, cell.edges[k], h, weights[k], use_reentrant=False,
                           context_fn=lambda: (contextlib.nullcontext(), recomputing()))
                for k, h in ((cell.edge_index(i, j), h) for i, h in enumerate(states))]
        states.append(sum(outs))
    return torch.cat(states[2:], dim=1)


def shared_ops(cell: SearchCNNCell) -> list[int]:
    """Ops that give the same map on every edge reading one state:
    parameter-free pooling (affine-free BatchNorm) and identity."""
    return [i for i, op in enumerate(cell.edges[0].ops)
            if isinstance(op, (PoolBN, nn.Identity)) and not list(op.parameters())]


def cnn_cell_by_state(cell: SearchCNNCell, s0, s1, weights) -> torch.Tensor:
    """``cell(s0, s1, weights)`` state by state: the edges reading one state
    share its split, its ReLU and their parameter-free ops, and PC-DARTS'
    concatenation and channel shuffle run once per node (they are linear)
    instead of once per edge. Every edge's BatchNorm statistics are kept as
    if it had run."""
    states = [cell.pre0(s0), cell.pre1(s1)]
    shared_indices = shared_ops(cell)
    mixed = [None] * cell.n_nodes  # per node: sum of its edges' weighted op outputs
    bypass = [None] * cell.n_nodes  # per node, PC-DARTS: sum of its edges' bypassing channels
    for source in range(cell.n_nodes + 1):  # the last node feeds no other
        nodes = range(max(0, source - 1), cell.n_nodes)
        edges = [(cell.edges[k], weights[k]) for k in (cell.edge_index(source, j) for j in nodes)]
        first = edges[0][0]
        through, passing = first.split(states[source])
        relu = torch.relu(through) if plan(first).tails else None
        shared = {}
        for j, (edge, w) in zip(nodes, edges):
            for i in plan(edge).active:
                if i in shared_indices:
                    if i not in shared:
                        shared[i] = op_output(first, i, through, relu)
                    elif cell.training:
                        with torch.no_grad():
                            for own, ran in zip(edge.ops[i].buffers(), first.ops[i].buffers()):
                                own.copy_(ran)
                    out = shared[i]
                else:
                    out = op_output(edge, i, through, relu)
                mixed[j] = accumulate(mixed[j], w[i], out)
            if edge.aux_skip and edge.stride == 1:
                mixed[j] = mixed[j] + edge.aux_skip * through
            if passing is not None:
                bypass[j] = passing if bypass[j] is None else bypass[j] + passing
        if source >= 1:  # node source-1 has all its edges now
            node = source - 1
            states.append(mixed[node] if bypass[node] is None
                          else channel_shuffle(torch.cat([mixed[node], bypass[node]], dim=1), first.partial))
    return torch.cat(states[2:], dim=1)


# --- the retrained network of a genome ---------------------------------------
class SharedReLU:
    """Runs ops whose first layer is a ReLU on ``relu(x)`` computed once per
    input tensor, for one forward pass of a genome network. Several ops read
    each state: those of a cell, and the pre-processing of the next two cells
    (the stem's output feeds three). Each ReLU computed again costs a pass
    over the map forward and one backward: sharing them saved 0-12 % of a
    quick-preset retraining step (``benchmarks/genome_step.py``)."""

    def __init__(self):
        self._done: list[tuple[torch.Tensor, torch.Tensor]] = []  # (input, its relu): few, compared by identity

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        for seen, out in self._done:
            if seen is x:
                return out
        out = torch.relu(x)
        self._done.append((x, out))
        return out

    def apply(self, op: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``op(x)``, its leading ReLU shared."""
        tail = after_leading_relu(op)  # a few microseconds; kept nowhere, so copies of a model stay right
        if tail is None:
            return op(x)
        out = self.relu(x)
        for layer in tail:
            out = layer(out)
        return out
