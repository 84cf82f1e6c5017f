"""Grouped recurrences: the same outputs and gradients as running each module."""
import pytest
import torch
from torch import nn

from emokit.search import speed
from emokit.search.cells import MixedOp
from emokit.search.grouped_rnn import groupable, grouped_recurrence
from emokit.search.ops import SEQ_OPS, SEQ_SCOPES


def _modules(kind, layers=(1, 2, 3, 4, 1, 2), d=8):
    rnn = nn.LSTM if kind == "lstm" else nn.RNN
    return [rnn(d, d // 2, num_layers=n, batch_first=True, bidirectional=True) for n in layers]


def test_grouped_recurrence_matches_each_module():
    torch.manual_seed(0)
    modules = _modules("rnn")
    x = torch.randn(3, 7, 8, requires_grad=True)
    expected = [m(x)[0] for m in modules]
    got = grouped_recurrence(x, modules)
    for e, g in zip(expected, got):
        assert g.shape == (3, 7, 8)
        torch.testing.assert_close(g, e)
    upstream = [torch.randn_like(e) for e in expected]
    params = [x] + [p for m in modules for p in m.parameters()]
    for e, g in zip(torch.autograd.grad(expected, params, upstream), torch.autograd.grad(got, params, upstream)):
        torch.testing.assert_close(g, e)


def test_grouped_recurrence_without_weight_gradients_and_under_bf16():
    torch.manual_seed(0)
    modules = _modules("rnn", layers=(2, 1))
    for p in (p for m in modules for p in m.parameters()):
        p.requires_grad_(False)  # the alpha step: weights frozen
    x = torch.randn(2, 5, 8, requires_grad=True)
    expected = sum(m(x)[0].sum() for m in modules)
    got = sum(o.sum() for o in grouped_recurrence(x, modules))
    torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(expected, x)[0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = grouped_recurrence(x, modules)
    assert all(torch.isfinite(o).all() for o in outs)
    outs[0].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_grouping_refuses_mixed_or_unsupported_modules():
    lstm, rnn = _modules("lstm", (1,))[0], _modules("rnn", (1,))[0]
    with pytest.raises(ValueError, match="cannot group"):
        grouped_recurrence(torch.randn(1, 3, 8), [lstm, rnn])
    narrow = nn.RNN(8, 2, batch_first=True, bidirectional=True)
    with pytest.raises(ValueError, match="hidden size"):
        grouped_recurrence(torch.randn(1, 3, 8), [rnn, narrow])
    assert not groupable(nn.RNN(8, 4, batch_first=True))  # one direction
    assert not groupable(nn.RNN(8, 4, batch_first=True, bidirectional=True, nonlinearity="relu"))
    assert grouped_recurrence(torch.randn(1, 3, 8), []) == []


def test_seq_edge_with_grouped_rnns_matches_the_plain_edge():
    torch.manual_seed(0)
    ops = SEQ_SCOPES["emodarts"]
    edge = MixedOp(ops, lambda name: SEQ_OPS.get(name)(8))
    assert [ops[i] for i in speed.plan(edge).rnn_group] == ["rnn_1", "rnn_2", "rnn_3", "rnn_4", "rnn_att_1", "rnn_att_2"]
    results = []
    for run in (lambda x, w: speed.edge_forward(edge, x, w), edge):
        edge.zero_grad()
        x = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        alpha = torch.linspace(-1, 1, len(ops)).requires_grad_(True)
        out = run(x, torch.softmax(alpha, 0))
        out.square().sum().backward()
        results.append([out.detach(), alpha.grad, x.grad] + [p.grad.clone() for p in edge.parameters()])
    for g, p in zip(*results):
        torch.testing.assert_close(g, p)


def test_reusing_freed_memory_is_taken_by_glibc():
    import platform

    from emokit.utils import reuse_freed_memory

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is glibc
    assert reuse_freed_memory() is glibc  # idempotent
