"""Candidate operations, as data: op name -> constructor.

CNN ops (Table 2 of the paper) map ``(N, C, H, W) -> (N, C, H/s, W/s)`` and
are built as ``CNN_OPS.get(name)(C, stride, affine)``. SeqNN ops map
``(N, T, d) -> (N, T, d)`` along the time axis of one utterance and are built
as ``SEQ_OPS.get(name)(d)``. Recurrent ops are bidirectional with ``d/2``
units per direction so that every op keeps the width ``d``.
"""
from __future__ import annotations

import torch
from torch import nn

from emokit.registry import Registry

CNN_OPS: Registry = Registry("CNN op")
SEQ_OPS: Registry = Registry("SeqNN op")


# --- CNN building blocks (as in DARTS) ------------------------------------
# Plain PyTorch layers. emokit.search.speed swaps some of them for subclasses
# with the same parameters and faster CPU paths (Supernet(fast=True)).
BatchNorm = nn.BatchNorm2d


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
            BatchNorm(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise (dilated) conv -> pointwise conv -> BN."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            BatchNorm(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs (the first one strided)."""

    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class FactorizedReduce(nn.Module):
    """Halve H and W with two 1x1 convs, one on the even and one on the odd
    rows/columns (no information dropped), as DARTS does.

    Both run as one 2x2 stride-2 conv whose kernel holds ``conv1`` at its
    top-left and ``conv2`` at its bottom-right tap: one kernel call and no
    strided slices (whose backward zero-fills the whole input twice), and no
    stride-2 1x1 conv, whose oneDNN backward on channels-last tensors
    corrupts memory (torch 2.13, CPU).
    """

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, bias=False)
        self.bn = BatchNorm(c_out, affine=affine)

    def forward(self, x):
        return self.after_relu(self.relu(x))

    def after_relu(self, x):
        pad = nn.functional.pad
        height, width = x.shape[2:]
        if height % 2 or width % 2:  # the odd grid is one shorter: it reads zeros past the end
            x = pad(x, (0, width % 2, 0, height % 2))
        kernel = torch.cat([pad(self.conv1.weight, (0, 1, 0, 1)), pad(self.conv2.weight, (1, 0, 1, 0))])
        return self.bn(nn.functional.conv2d(x, kernel, stride=2))


class Zero(nn.Module):
    """The ``none`` op: zeros of the output's shape."""

    def __init__(self, stride=1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class PoolBN(nn.Sequential):
    def __init__(self, kind, c, stride, affine):
        pool = nn.MaxPool2d(3, stride, 1) if kind == "max" else nn.AvgPool2d(3, stride, 1, count_include_pad=False)
        super().__init__(pool, BatchNorm(c, affine=affine))


class Conv7x1_1x7(nn.Sequential):
    """Factorised 7x7 conv: 1x7 then 7x1."""

    def __init__(self, c, stride, affine):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), (1, stride), (0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), (stride, 1), (3, 0), bias=False),
            BatchNorm(c, affine=affine),
        )


CNN_OPS.add("none", lambda c, stride, affine: Zero(stride))
CNN_OPS.add("max_pool_3x3", lambda c, stride, affine: PoolBN("max", c, stride, affine))
CNN_OPS.add("avg_pool_3x3", lambda c, stride, affine: PoolBN("avg", c, stride, affine))
CNN_OPS.add("skip_connect", lambda c, stride, affine: nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine))
CNN_OPS.add("sep_conv_3x3", lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine))
CNN_OPS.add("sep_conv_5x5", lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine))
CNN_OPS.add("dil_conv_3x3", lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine))
CNN_OPS.add("dil_conv_5x5", lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine))
CNN_OPS.add("conv_7x1_1x7", lambda c, stride, affine: Conv7x1_1x7(c, stride, affine))


# --- SeqNN ops --------------------------------------------------------------
class Recurrent(nn.Module):
    """A bidirectional LSTM or RNN of ``layers`` layers, ``d/2`` units per
    direction, optionally followed by self-attention over the time steps."""

    def __init__(self, kind: str, d: int, layers: int, attention: bool = False, heads: int = 4):
        super().__init__()
        if d % 2:
            raise ValueError(f"SeqNN width d={d} must be even (two directions of d/2 units)")
        rnn = nn.LSTM if kind == "lstm" else nn.RNN
        self.rnn = rnn(d, d // 2, num_layers=layers, batch_first=True, bidirectional=True)
        self.attention = None
        if attention:
            heads = heads if d % heads == 0 else 1
            self.attention = nn.MultiheadAttention(d, heads, batch_first=True)
            self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return self.attend(self.rnn(x)[0])

    def attend(self, h):
        """The part after the recurrence: (N, T, d) -> (N, T, d)."""
        if self.attention is not None:
            # Each utterance attends over its own time steps only.
            attended, _ = self.attention(h, h, h, need_weights=False)
            h = self.norm(h + attended)
        return h


class SeqZero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


SEQ_OPS.add("none", lambda d: SeqZero())
SEQ_OPS.add("skip_connect", lambda d: nn.Identity())
for _layers in (1, 2, 3, 4):
    SEQ_OPS.add(f"lstm_{_layers}", lambda d, n=_layers: Recurrent("lstm", d, n))
    SEQ_OPS.add(f"rnn_{_layers}", lambda d, n=_layers: Recurrent("rnn", d, n))
for _layers in (1, 2):
    SEQ_OPS.add(f"lstm_att_{_layers}", lambda d, n=_layers: Recurrent("lstm", d, n, attention=True))
    SEQ_OPS.add(f"rnn_att_{_layers}", lambda d, n=_layers: Recurrent("rnn", d, n, attention=True))


# --- search scopes (Table 6) -----------------------------------------------
CNN_SCOPE = ("max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
             "conv_7x1_1x7", "skip_connect", "none")
SEQ_SCOPES: dict[str, tuple[str, ...]] = {
    "emodarts": ("lstm_1", "lstm_2", "lstm_3", "lstm_4", "lstm_att_1", "lstm_att_2",
                 "rnn_1", "rnn_2", "rnn_3", "rnn_4", "rnn_att_1", "rnn_att_2"),
    "lstm": ("lstm_1", "lstm_2", "lstm_3", "lstm_4"),
    "lstm_att": ("lstm_att_1", "lstm_att_2"),
    "rnn": ("rnn_1", "rnn_2", "rnn_3", "rnn_4"),
    "rnn_att": ("rnn_att_1", "rnn_att_2"),
}
SEQ_SCOPES = {name: ops + ("skip_connect", "none") for name, ops in SEQ_SCOPES.items()}


def seq_scope(scope: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """SeqNN op list of a named scope, or a custom list checked against the registry."""
    if isinstance(scope, str):
        if scope not in SEQ_SCOPES:
            raise KeyError(f"unknown search scope {scope!r}; known scopes: {', '.join(SEQ_SCOPES)} (or pass a list of ops)")
        return SEQ_SCOPES[scope]
    return check_ops(scope, SEQ_OPS)


def check_ops(ops, registry: Registry) -> tuple[str, ...]:
    """Validate a custom op list: every name known, at least one real op."""
    ops = tuple(ops)
    for name in ops:
        registry.get(name)  # raises with the list of known names
    if not [o for o in ops if o != "none"]:
        raise ValueError("an op list needs at least one op other than 'none'")
    return ops
