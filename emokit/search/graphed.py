"""A first-order search step replayed from CUDA graphs.

On a GPU a step of a supernet this small is bound by launching its
thousands of small kernels from Python, not by arithmetic: the paper's
supernet took about as long at batch 16 as at batch 64
(docs/benchmarks.md). A CUDA graph records the kernels of one computation
once and launches them all again with one call.

:class:`GraphedStep` records the two gradient computations of a
first-order DARTS step -- the alpha gradients on the alpha batch and the
weight gradients on the weight batch -- once per batch size, and replays
them. The optimiser steps between them (Adam on the alphas; gradient
clipping and SGD on the weights) stay eager, so the update rules are
torch's own and the learning-rate schedule needs no recording. The step
computes what :func:`~emokit.search.architect.search_step` computes: each
new graph's first replay is checked against the same computation run
eagerly, and a graph that fails to record (out of memory, say) or to match
leaves the search to eager steps, with a warning.

A graph holds the Python numbers of its recording fixed, and keeps its own
memory (about one step's activations per recorded computation). So
:func:`graph_blockers` refuses: second order (its virtual step copies
weights between two models), ``aux_skip`` and ``beta_decay`` (numbers that
change every epoch), bf16 and edge recomputation (not measured), and any
device but CUDA.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from emokit.search.architect import Architect, at_least_fp32, frozen, search_step
from emokit.utils import kept_buffers

WARMUP_RUNS = 2  # eager runs on a side stream before recording (cuDNN / cuBLAS set-up, autograd streams)


def graph_blockers(config, device: torch.device, recompute: bool) -> list[str]:
    """Why a search of ``config`` on ``device`` cannot replay CUDA graphs
    (an empty list: it can). ``config``: a :class:`~emokit.search.loop.SearchConfig`."""
    blockers = []
    if device.type != "cuda":
        blockers.append(f"the device is {device.type}, not cuda")
    if config.order != "first":
        blockers.append("second order (its virtual step copies weights between models)")
    if config.aux_skip:
        blockers.append("aux_skip (its weight changes every epoch)")
    if config.beta_decay:
        blockers.append("beta_decay (its weight changes every epoch)")
    if config.gdas:
        blockers.append("gdas (it draws ops inside the step)")
    if config.precision != "fp32":
        blockers.append(f"precision {config.precision!r} (only fp32 is recorded)")
    if recompute:
        blockers.append("edge recomputation")
    return blockers


def make_search_step(model, w_optimizer, architect: Architect, config, device: torch.device, recompute: bool):
    """The step a search runs: ``step(x_w, y_w, x_a, y_a, lr, alphas_move)``
    -> (weight loss, weight logits, alpha loss, alpha logits), as
    :func:`~emokit.search.architect.search_step` returns them.

    ``config.cuda_graphs``: "auto" replays CUDA graphs where
    :func:`graph_blockers` finds nothing in the way; True insists (a
    ``ValueError`` names what is in the way); False never."""
    blockers = graph_blockers(config, device, recompute)
    if config.cuda_graphs is True and blockers:
        raise ValueError("cuda_graphs=True, but a CUDA graph cannot record this search: " + "; ".join(blockers)
                         + ". Set cuda_graphs='auto' (graphs only where they can run) or False.")
    if config.cuda_graphs and not blockers:
        return GraphedStep(model, w_optimizer, architect, config.grad_clip, strict=config.cuda_graphs is True)

    def eager_step(x_w, y_w, x_a, y_a, lr, alphas_move):
        return search_step(model, w_optimizer, architect if alphas_move else None, x_w, y_w, x_a, y_a, lr,
                           config.grad_clip, config.precision)
    return eager_step


def replay_mismatches(expected, got, rtol: float = 1e-3) -> list[str]:
    """Which outputs of a replay (loss, logits, each gradient) differ from the
    eager ones by more than float rounding: ``rtol`` of the largest
    magnitude of the eager tensor (summation order in reduction kernels
    changes the last digits, nothing more)."""
    loss, logits, grads = expected
    names = ["loss", "logits"] + [f"gradient {i}" for i in range(len(grads))]
    differing = []
    for name, e, g in zip(names, (loss, logits, *grads), (got[0], got[1], *got[2])):
        if (e is None) != (g is None):
            differing.append(name)
        elif e is not None and not (e - g).abs().max() <= rtol * e.abs().max() + 1e-12:
            differing.append(name)
    return differing


def unshared(grads):
    """``grads`` with no tensor twice. An RNN kernel returns one tensor as the
    gradient of both its biases (``bias_ih``, ``bias_hh``); gradient clipping
    scales gradients in place and would scale that one twice."""
    seen = set()
    out = []
    for grad in grads:
        if grad is not None:
            if grad.data_ptr() in seen:
                grad = grad.clone()
            seen.add(grad.data_ptr())
        out.append(grad)
    return tuple(out)


class GraphedStep:
    """A first-order search step whose two gradient computations are
    recorded as CUDA graphs, one pair per batch size.

    ``record=False`` runs the same computations eagerly (what a replay
    computes, without the graph): the CPU tests check the step's logic that
    way. Each new graph is replayed once as a trial and checked against
    the eager computation (:meth:`_replay`). ``strict``: a graph that fails
    to record or to match raises instead of warning and going on eagerly.
    """

    def __init__(self, model: nn.Module, w_optimizer, architect: Architect, grad_clip: float, record: bool = True,
                 strict: bool = False):
        if architect.order != "first":
            raise ValueError("GraphedStep records first-order steps only")
        self.model, self.w_optimizer, self.architect, self.grad_clip = model, w_optimizer, architect, grad_clip
        self.record, self.strict = record, strict
        self.graphs: dict[tuple, tuple] = {}  # (kind, input shape) -> (graph, static x, static y, outputs)

    # --- the two recorded computations -------------------------------------
    def _alpha_gradients(self, x, y):
        alphas = self.model.arch_parameters()
        with frozen(self.model.weight_parameters()):  # as Architect.step: no weight gradients
            logits = at_least_fp32(self.model(x))
            loss = nn.functional.cross_entropy(logits, y)
            grads = torch.autograd.grad(loss, alphas)
        return loss.detach(), logits.detach(), grads

    def _weight_gradients(self, x, y):
        weights = self.model.weight_parameters()
        with frozen(self.model.arch_parameters()):  # as search_step: no alpha gradients
            logits = self.model(x)
            loss = nn.functional.cross_entropy(logits.float(), y)
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
        return loss.detach(), logits.detach().float(), unshared(grads)

    def _replay(self, kind: str, x, y):
        compute = self._alpha_gradients if kind == "alpha" else self._weight_gradients
        if not self.record:
            return compute(x, y)
        key = (kind, tuple(x.shape))
        if key in self.graphs:
            graph, static_x, static_y, outputs = self.graphs[key]
            static_x.copy_(x)
            static_y.copy_(y)
            graph.replay()
            return outputs
        # A new graph: recorded, replayed once as a trial, and kept only if
        # the trial gives what the same computation gives eagerly (a kernel
        # that cannot be recorded, or a torch version that records
        # differently, must not steer a search silently). This step's
        # result, and its BatchNorm update, are the eager run's.
        try:
            graph, static_x, static_y, outputs = self._capture(compute, x, y)
            with kept_buffers(self.model):
                graph.replay()
        except (RuntimeError, torch.OutOfMemoryError) as error:
            self._stop_recording(error)
            return compute(x, y)
        expected = compute(static_x, static_y)
        differing = replay_mismatches(expected, outputs)
        if differing:
            self._stop_recording(RuntimeError("the replayed graph differs from the eager computation in "
                                              + ", ".join(differing)))
        else:
            self.graphs[key] = (graph, static_x, static_y, outputs)
        return expected

    def _stop_recording(self, error: Exception) -> None:
        if self.strict:
            raise error
        warnings.warn(f"a CUDA graph of the search step failed ({error}); the search goes on without graphs",
                      stacklevel=4)
        self.record = False
        self.graphs.clear()
        torch.cuda.empty_cache()

    def _capture(self, compute, x, y):
        static_x, static_y = x.clone(), y.clone()
        with kept_buffers(self.model):  # the warm-up runs are no steps: BatchNorm's statistics go back
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_RUNS):
                    compute(static_x, static_y)
            torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = compute(static_x, static_y)
        return graph, static_x, static_y, outputs

    # --- one step --------------------------------------------------------------
    def __call__(self, x_w, y_w, x_a, y_a, lr, alphas_move: bool):
        if self.architect.beta_decay:
            raise ValueError("GraphedStep records no beta_decay regulariser; search eagerly (cuda_graphs=False)")
        a_loss = a_logits = None
        if alphas_move:
            a_loss, a_logits, grads = self._replay("alpha", x_a, y_a)
            a_loss, a_logits = a_loss.clone(), a_logits.clone()  # the next replay overwrites them
            optimizer = self.architect.optimizer
            optimizer.zero_grad(set_to_none=True)
            for alpha, grad in zip(self.model.arch_parameters(), grads):
                alpha.grad = grad
            optimizer.step()
        loss, logits, grads = self._replay("weight", x_w, y_w)
        self.w_optimizer.zero_grad(set_to_none=True)
        weights = self.model.weight_parameters()
        for weight, grad in zip(weights, grads):
            weight.grad = grad  # None where unused, as backward() leaves it
        nn.utils.clip_grad_norm_(weights, self.grad_clip)
        self.w_optimizer.step()
        return loss.clone(), logits.clone(), a_loss, a_logits
