"""Choosing the genome from a trained supernet: by the alphas, or by perturbation.

DARTS keeps, on each edge, the op with the largest softmax weight, and on
each node the two edges whose best op weighs most ("alphas"). Wang et al.
(2021, "Rethinking architecture selection in differentiable NAS") showed
that a large weight need not mean the supernet relies on the op, and chose
by perturbation instead: take an op out of its edge and measure how much
worse the supernet does on held-out data; keep the op whose removal hurts
most. Here:

    op score(e, o)  = L(supernet without op o on edge e) - L(supernet)
    edge score(e)   = L(supernet without edge e)         - L(supernet)

with ``L`` the mean cross-entropy on the search's alpha half (held-out
utterances of the training speakers; never the test speakers). BatchNorm
normalises with the statistics of each batch, as during the search and in
Wang et al.'s published code, so taking an op out is not confounded with the
running statistics no longer fitting the sum; dropout is off, and the
running statistics are put back afterwards. Alphas are shared by every cell
of a type, so an op is taken out of that edge in every cell of its type.
This is the one-shot form of the method: every score comes from the same
trained supernet (the paper fine-tunes the supernet between decisions).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emokit.search.genotype import CELL_TYPES, Genome, derive_cell
from emokit.search.supernet import SearchSpace, Supernet
from emokit.utils import atomic_write_bytes, kept_buffers, npz_bytes

SELECTIONS = ("alphas", "perturbation")
SCORES_FILE = "selection.npz"  # in a search's run folder: arrays <cell>_ops and <cell>_edges


def check_selection(selection: str) -> str:
    """``selection`` if it is known; a ``ValueError`` naming the known ones otherwise."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; known: {', '.join(SELECTIONS)}")
    return selection


@torch.no_grad()
def supernet_loss(model: Supernet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64,
                  masks: dict[str, torch.Tensor] | None = None, weights: dict[str, torch.Tensor] | None = None) -> float:
    """Mean cross-entropy of ``model`` (in the mode it is in) on ``x``, ``y``,
    in batches of near-equal size of at most ``batch_size`` (no small last
    batch whose statistics would be noisy).

    Parameters
    ----------
    x : Tensor, shape (n, 1, rows, columns), on the model's device
    y : Tensor, shape (n,), class indices
    masks, weights : cell type -> Tensor (n_edges, n_ops), see :meth:`Supernet.forward`
    """
    total = 0.0
    for rows in torch.arange(len(x), device=x.device).tensor_split(-(-len(x) // batch_size)):
        logits = model(x[rows], masks, weights).float()
        total += float(nn.functional.cross_entropy(logits, y[rows], reduction="sum"))
    return total / len(x)


@contextlib.contextmanager
def batch_statistics(model: nn.Module):
    """Inside: BatchNorm in training mode (each batch's statistics), every
    other module in eval mode (no dropout); afterwards the modes and the
    running statistics are what they were."""
    modes = [(m, m.training) for m in model.modules()]
    with kept_buffers(model):
        for m in model.modules():
            m.training = isinstance(m, nn.modules.batchnorm._BatchNorm)
        try:
            yield
        finally:
            for m, mode in modes:
                m.training = mode


@contextlib.contextmanager
def final_network(model: Supernet):
    """Inside: :func:`batch_statistics`, and DARTS-' auxiliary skip weight at
    0 (it is gone from the final network); afterwards everything is put back."""
    aux_skip = [(m, m.aux_skip) for m in model.modules() if hasattr(m, "aux_skip")]
    model.set_aux_skip(0.0)
    try:
        with batch_statistics(model):
            yield
    finally:
        for module, weight in aux_skip:
            module.aux_skip = weight


@torch.no_grad()
def perturbation_scores(model: Supernet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64,
                        progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """How much worse ``model`` does on ``x``, ``y`` without each op and each edge.

    Returns
    -------
    dict
        cell type -> ``{"ops": ndarray (n_edges, n_ops), "edges": ndarray
        (n_edges,)}``: the loss increase (nats) when that op, or the whole
        edge, is taken out. ``none`` contributes nothing, so its column is NaN.
        The model's modes, running statistics and auxiliary skip weight are
        put back afterwards.
    """
    from tqdm.auto import tqdm

    jobs = [(t, e, o) for t, a in model.alphas.items() for e in range(a.shape[0]) for o in range(-1, a.shape[1])
            if o < 0 or model.space.ops(t)[o] != "none"]  # o = -1: the whole edge
    scores = {t: {"ops": np.full(tuple(a.shape), np.nan), "edges": np.full(a.shape[0], np.nan)}
              for t, a in model.alphas.items()}
    with final_network(model):
        base = supernet_loss(model, x, y, batch_size)
        for t, e, o in tqdm(jobs, desc="selection", unit="mask", disable=not progress):
            mask = torch.ones_like(model.alphas[t])
            mask[e, o if o >= 0 else slice(None)] = 0.0
            loss = supernet_loss(model, x, y, batch_size, {t: mask}) - base
            if o < 0:
                scores[t]["edges"][e] = loss
            else:
                scores[t]["ops"][e, o] = loss
    return scores


def genome_from_scores(scores: dict[str, dict[str, np.ndarray]], space: SearchSpace,
                       max_skip: int | None = None) -> Genome:
    """The genome whose ops and edges the supernet of ``space`` needs most
    (:func:`perturbation_scores`); ``max_skip`` as in :func:`derive_cell`."""
    genes = {t: derive_cell(scores[t]["ops"], space.ops(t), space.nodes(t), max_skip=max_skip,
                            edge_strength=scores[t]["edges"]) if t in scores else () for t in CELL_TYPES}
    return Genome(**genes)


def select_genome(model: Supernet, selection: str, x: torch.Tensor, y: torch.Tensor, max_skip: int | None = None,
                  batch_size: int = 64, progress: bool = False) -> tuple[Genome, dict | None]:
    """The genome of a trained supernet by ``selection`` ("alphas" or
    "perturbation", scored on ``x``, ``y``); returns it and the scores (None for "alphas")."""
    if check_selection(selection) == "alphas":
        return model.genome(max_skip), None
    scores = perturbation_scores(model, x, y, batch_size, progress)
    return genome_from_scores(scores, model.space, max_skip), scores


def write_scores(run_dir: str | Path, scores: dict[str, dict[str, np.ndarray]] | None) -> None:
    """Save the scores in ``run_dir``/selection.npz; None (a genome read by
    the alphas) removes the file, so it never belongs to another genome."""
    path = Path(run_dir) / SCORES_FILE
    if scores is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_bytes(path, npz_bytes({f"{t}_{kind}": v for t, by in scores.items() for kind, v in by.items()}))


def read_scores(run_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """The scores :func:`write_scores` saved: cell type -> {"ops", "edges"}."""
    path = Path(run_dir) / SCORES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{Path(run_dir)} has no {SCORES_FILE}: its genome was read from the alphas; "
                                "search with selection='perturbation' (or run the search again with it)")
    with np.load(path) as saved:
        return {t: {"ops": saved[f"{t}_ops"], "edges": saved[f"{t}_edges"]} for t in CELL_TYPES
                if f"{t}_ops" in saved.files}
