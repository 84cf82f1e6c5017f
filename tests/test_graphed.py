"""The CUDA-graph search step (emokit.search.graphed) where no GPU is needed:
what refuses a graph, the setting's checks, and the step's logic run without
recording (the same computations eagerly) against the eager search step.
Recording and replaying on a GPU: tests/test_cuda.py."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from emokit.search.architect import Architect, search_step
from emokit.search.graphed import (GraphedStep, graph_blockers, kept_buffers, make_search_step,
                                   replay_mismatches)
from emokit.search.loop import SearchConfig, SearchInterrupted, run_search
from emokit.search.supernet import Supernet

from test_search import TINY, tiny_data

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def optimisers(model):
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-2, betas=(0.5, 0.999), weight_decay=1e-3)
    return w_opt, Architect(model, a_opt)


def twins(channels_last: bool = False):
    """Two identical tiny supernets, each with its optimisers: (model, weight
    optimiser, architect) for the eager step and for the graphed one."""
    torch.manual_seed(0)
    model = Supernet(TINY)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    other = copy.deepcopy(model)
    return (model, *optimisers(model)), (other, *optimisers(other))


def assert_same_state(model, other):
    for (name, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), name


def test_the_step_computes_what_the_eager_search_step_computes():
    """Same losses, logits, weights, alphas, BatchNorm statistics and
    optimiser states, bit for bit, over steps of two batch sizes and a
    weights-only step (grad clipping active: max norm 0.1)."""
    (eager_model, eager_w, eager_arch), (graphed_model, graphed_w, graphed_arch) = twins(channels_last=True)
    step = GraphedStep(graphed_model, graphed_w, graphed_arch, grad_clip=0.1, record=False)
    x = torch.randn(12, 1, 16, 16).contiguous(memory_format=torch.channels_last)
    y = torch.arange(12) % 4
    for rows, alphas_move in ((8, True), (4, True), (8, False)):
        xw, yw, xa, ya = x[:rows], y[:rows], x[-rows:], y[-rows:]
        expected = search_step(eager_model, eager_w, eager_arch if alphas_move else None, xw, yw, xa, ya,
                               0.05, 0.1)
        got = step(xw, yw, xa, ya, 0.05, alphas_move)
        for e, g in zip(expected, got):
            assert (e is None and g is None) or torch.equal(e, g)
    assert_same_state(eager_model, graphed_model)
    for e_opt, g_opt in ((eager_w, graphed_w), (eager_arch.optimizer, graphed_arch.optimizer)):
        for e_state, g_state in zip(e_opt.state.values(), g_opt.state.values()):
            for key in e_state:
                assert torch.equal(torch.as_tensor(e_state[key]), torch.as_tensor(g_state[key])), key


def test_what_keeps_a_search_from_graphs_is_named():
    config = SearchConfig()
    assert graph_blockers(config, CUDA, recompute=False) == []
    assert graph_blockers(config, CPU, recompute=False) == ["the device is cpu, not cuda"]
    blocked = graph_blockers(SearchConfig(order="second", aux_skip=1.0, beta_decay=0.5, precision="bf16"), CUDA,
                             recompute=True)
    assert [b.split()[0] for b in blocked] == ["second", "aux_skip", "beta_decay", "precision", "edge"]
    assert [b.split()[0] for b in graph_blockers(SearchConfig(gdas=True), CUDA, recompute=False)] == ["gdas"]


def test_auto_runs_eagerly_on_the_cpu_and_true_refuses_with_the_reason():
    model = Supernet(TINY)
    w_opt, architect = optimisers(model)
    take_step = make_search_step(model, w_opt, architect, SearchConfig(), CPU, recompute=False)
    assert not isinstance(take_step, GraphedStep)
    with pytest.raises(ValueError, match="the device is cpu.*cuda_graphs='auto'"):
        make_search_step(model, w_opt, architect, SearchConfig(cuda_graphs=True), CPU, recompute=False)
    assert isinstance(make_search_step(model, w_opt, architect, SearchConfig(), CUDA, recompute=False), GraphedStep)
    with pytest.raises(ValueError, match="first-order steps only"):
        GraphedStep(model, w_opt, Architect(model, architect.optimizer, order="second"), 5.0)


def test_cuda_graphs_is_true_false_or_auto():
    for value in (True, False, "auto"):
        assert SearchConfig(cuda_graphs=value).cuda_graphs == value
    with pytest.raises(ValueError, match="cuda_graphs must be True, False or 'auto'"):
        SearchConfig(cuda_graphs="yes")


def test_a_cpu_search_records_that_it_ran_without_graphs_and_resumes_whatever_the_setting(tmp_path):
    """cuda_graphs is how a step runs, not what it computes: it is no part of
    what a resume must match."""
    x, y = tiny_data()

    def stop_after_first(record):
        raise SearchInterrupted("simulated crash")

    with pytest.raises(SearchInterrupted):
        run_search(x, y, tmp_path, TINY, SearchConfig(epochs=2, batch_size=8, cuda_graphs=False, device="cpu"),
                   callback=stop_after_first, progress=False)
    # cuda_graphs "auto"; the device is pinned, or a GPU machine would record graphs
    resumed = run_search(x, y, tmp_path, TINY, SearchConfig(epochs=2, batch_size=8, device="cpu"), progress=False)
    assert len(resumed.log) == 2
    assert json.loads((tmp_path / "summary.json").read_text())["cuda_graphs"] is False
    assert np.isfinite(np.load(tmp_path / "alpha_history.npz")["normal"]).all()


def test_a_replay_is_checked_to_float_rounding():
    torch.manual_seed(0)
    eager = (torch.tensor(1.3), torch.randn(4, 4), (torch.randn(3, 3), None, torch.randn(5)))
    rounded = (eager[0] * (1 + 1e-6), eager[1] + 1e-7, (eager[2][0] * (1 - 1e-6), None, eager[2][2].clone()))
    assert replay_mismatches(eager, rounded) == []
    wrong = (eager[0], eager[1], (eager[2][0], torch.zeros(2), eager[2][2] * 1.01))
    assert replay_mismatches(eager, wrong) == ["gradient 1", "gradient 2"]
    stale = (eager[0] + 0.1, eager[1].flip(0), eager[2])
    assert replay_mismatches(eager, stale) == ["loss", "logits"]
    assert replay_mismatches(eager, (torch.tensor(float("nan")), eager[1], eager[2])) == ["loss"]


def test_buffers_changed_inside_kept_buffers_come_back():
    model = Supernet(TINY).train()
    before = [b.clone() for b in model.buffers()]
    with kept_buffers(model):
        model(torch.randn(4, 1, 16, 16))
        assert any(not torch.equal(a, b) for a, b in zip(before, model.buffers()))
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))


class _GraphReplayingEagerly:
    """Stands in for a CUDA graph on the CPU: replay() runs the recorded
    computation on the static inputs and writes into the static outputs."""

    def __init__(self, compute, x, y, outputs):
        self.compute, self.x, self.y, self.outputs, self.replays = compute, x, y, outputs, 0

    def replay(self):
        self.replays += 1
        loss, logits, grads = self.compute(self.x, self.y)
        self.outputs[0].copy_(loss)
        self.outputs[1].copy_(logits)
        for static, grad in zip(self.outputs[2], grads):
            if static is not None:
                static.copy_(grad)


def test_graphs_are_recorded_per_batch_size_and_replayed_with_each_new_batch(monkeypatch):
    """The step's bookkeeping around the graphs, with graphs that replay
    eagerly: one pair per batch size, a trial replay when recorded, each
    later batch copied in and the results read out; bit for bit the eager
    search step."""
    (eager_model, eager_w, eager_arch), (graphed_model, graphed_w, graphed_arch) = twins()

    def capture(self, compute, x, y):
        static_x, static_y = x.clone(), y.clone()
        with kept_buffers(self.model):  # recording runs nothing
            outputs = compute(static_x, static_y)
        return _GraphReplayingEagerly(compute, static_x, static_y, outputs), static_x, static_y, outputs

    monkeypatch.setattr(GraphedStep, "_capture", capture)
    step = GraphedStep(graphed_model, graphed_w, graphed_arch, grad_clip=0.1)
    x, y = torch.randn(12, 1, 16, 16), torch.arange(12) % 4
    for rows, alphas_move in ((8, True), (4, True), (8, True), (8, False), (4, True)):
        xw, yw, xa, ya = x[:rows], y[:rows], x[-rows:], y[-rows:]
        expected = search_step(eager_model, eager_w, eager_arch if alphas_move else None, xw, yw, xa, ya, 0.05, 0.1)
        got = step(xw, yw, xa, ya, 0.05, alphas_move)
        assert all((e is None and g is None) or torch.equal(e, g) for e, g in zip(expected, got))
    assert step.record and sorted(step.graphs) == [("alpha", (4, 1, 16, 16)), ("alpha", (8, 1, 16, 16)),
                                                   ("weight", (4, 1, 16, 16)), ("weight", (8, 1, 16, 16))]
    # A trial replay when recorded, then one per later use.
    assert step.graphs[("weight", (8, 1, 16, 16))][0].replays == 3
    assert step.graphs[("alpha", (4, 1, 16, 16))][0].replays == 2
    assert_same_state(eager_model, graphed_model)


class _GraphThatComputesNothing:
    def replay(self):
        pass


@pytest.mark.parametrize("failure", ["recording", "replay"])
def test_a_graph_that_fails_leaves_the_search_to_eager_steps(failure, monkeypatch):
    """Recording raises, or the first replay gives stale outputs: a warning,
    the step's result is the eager one, and no graph is tried again;
    strict=True raises instead."""
    (eager_model, eager_w, eager_arch), (graphed_model, graphed_w, graphed_arch) = twins()

    def capture(self, compute, x, y):
        if failure == "recording":
            raise RuntimeError("operation not permitted when stream is capturing")
        alphas = compute.__name__ == "_alpha_gradients"
        n_grads = len(self.model.arch_parameters() if alphas else self.model.weight_parameters())
        stale = (torch.zeros(()), torch.zeros(len(x), 4), tuple(torch.zeros(1) for _ in range(n_grads)))
        return _GraphThatComputesNothing(), x.clone(), y.clone(), stale

    monkeypatch.setattr(GraphedStep, "_capture", capture)
    x, y = torch.randn(8, 1, 16, 16), torch.arange(8) % 4
    strict = GraphedStep(*twins()[0], grad_clip=5.0, strict=True)
    with pytest.raises(RuntimeError, match="capturing" if failure == "recording" else "differs from the eager"):
        strict(x, y, x, y, 0.05, True)
    step = GraphedStep(graphed_model, graphed_w, graphed_arch, grad_clip=5.0)
    with pytest.warns(UserWarning, match="goes on without graphs"):
        got = step(x, y, x, y, 0.05, True)
    assert not step.record and step.graphs == {}
    expected = search_step(eager_model, eager_w, eager_arch, x, y, x, y, 0.05, 5.0)
    assert all(torch.equal(e, g) for e, g in zip(expected, got))
    assert_same_state(eager_model, graphed_model)
