"""The joint CNN + SeqNN supernet of emoDARTS.

    (N, 1, 128, 128) MFCC map   (rows: coefficients, columns: time)
      -> stem conv
      -> CNN cells (each fed by the two previous; reductions at 1/3 and 2/3)
      -> bridge: average over the frequency rows into ``freq_bins`` bands,
         each time column becomes one step: (N, T, d)
      -> SeqNN cells along T (each fed by the two previous)
      -> mean over time -> dense classifier

Unlike the authors' code, the bridge keeps the time axis, so recurrent ops run
along the frames of one utterance, never across the utterances of a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from emokit.config import Config
from emokit.search import speed
from emokit.search.cells import SearchCNNCell, SearchSeqCell
from emokit.search.genotype import CELL_TYPES, Genome, derive_cell, n_edges
from emokit.search.ops import CNN_OPS, CNN_SCOPE, check_ops, seq_scope


@dataclass(frozen=True)
class SearchSpace(Config):
    """Everything that fixes the supernet's shape.

    Attributes
    ----------
    scope : name of the SeqNN op scope (Table 6): emodarts, lstm, lstm_att,
        rnn, rnn_att; ignored when ``seq_ops`` is given.
    cnn_ops, seq_ops : custom op lists (``seq_ops=None``: from ``scope``).
    cnn_cells, cnn_nodes : CNN cells (reductions at 1/3 and 2/3) and nodes per cell.
    seq_cells, seq_nodes : SeqNN cells and nodes per cell.
    channels : initial channels C of the first cell (DARTS' C_init).
    stem_multiplier : the stem has ``stem_multiplier * channels`` channels.
    stem_stride : 1 (DARTS, the paper) or 2: the stem halves rows and columns,
        so every cell costs a quarter (not in the paper; used by the quick preset).
    seq_hidden : width d of the SeqNN component.
    freq_bins : frequency bands the bridge keeps per time step.
    n_classes : output classes.
    input_shape : (rows, columns) of the input map.
    partial_channels : PC-DARTS' K (1 = plain DARTS): 1/K of the channels go
        through the mixed ops.
    dropout : before the dense classifier.
    """

    scope: str = "emodarts"
    cnn_ops: tuple[str, ...] = CNN_SCOPE
    seq_ops: tuple[str, ...] | None = None
    cnn_cells: int = 4
    cnn_nodes: int = 4
    seq_cells: int = 2
    seq_nodes: int = 3
    channels: int = 8
    stem_multiplier: int = 3
    stem_stride: int = 1
    seq_hidden: int = 64
    freq_bins: int = 4
    n_classes: int = 4
    input_shape: tuple[int, int] = (128, 128)
    partial_channels: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cnn_ops", check_ops(self.cnn_ops, CNN_OPS))
        object.__setattr__(self, "seq_ops", seq_scope(self.seq_ops if self.seq_ops is not None else self.scope))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if self.cnn_cells < 1:
            raise ValueError("cnn_cells must be at least 1")
        if self.channels % self.partial_channels:
            raise ValueError(f"channels={self.channels} must be divisible by partial_channels={self.partial_channels}")

    @property
    def reduction_cells(self) -> tuple[int, ...]:
        """Indices of reduction cells: 1/3 and 2/3 of the CNN depth (DARTS)."""
        if self.cnn_cells < 3:
            return (self.cnn_cells // 2,) if self.cnn_cells == 2 else ()
        return (self.cnn_cells // 3, 2 * self.cnn_cells // 3)

    def ops(self, cell_type: str) -> tuple[str, ...]:
        return self.seq_ops if cell_type == "seq" else self.cnn_ops

    def nodes(self, cell_type: str) -> int:
        return self.seq_nodes if cell_type == "seq" else self.cnn_nodes

    def cell_types(self) -> tuple[str, ...]:
        """Cell types this space searches (``reduce`` only with reduction cells, ``seq`` only with SeqNN cells)."""
        return tuple(t for t in CELL_TYPES
                     if (t != "reduce" or self.reduction_cells) and (t != "seq" or self.seq_cells))

    def describe(self) -> dict:
        """The fields plus, per cell type, its op list and node count (``search_space.json``)."""
        return {**self.to_dict(), "ops": {t: list(self.ops(t)) for t in CELL_TYPES},
                "nodes": {t: self.nodes(t) for t in CELL_TYPES}}


class Bridge(nn.Module):
    """CNN feature map (N, C, H, W) -> sequence (N, W, d): one step per time
    column, its C x ``freq_bins`` band averages projected to ``d``."""

    def __init__(self, channels: int, freq_bins: int, d: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((freq_bins, None))
        self.proj = nn.Linear(channels * freq_bins, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)  # (N, C, bins, W)
        x = x.permute(0, 3, 1, 2).flatten(2)  # (N, W, C * bins)
        return self.norm(self.proj(x))


def cnn_stem(channels_out: int, stride: int = 1) -> nn.Sequential:
    if stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stride}")
    return nn.Sequential(nn.Conv2d(1, channels_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(channels_out))


class Supernet(nn.Module):
    """Every candidate op on every edge, weighted by softmax(alpha).

    ``forward(x)``: x (N, 1, rows, columns) -> logits (N, n_classes).
    Architecture parameters (``arch_parameters``) and weights
    (``weight_parameters``) are optimised separately (bilevel DARTS).

    ``fast`` (default) evaluates the cells with :mod:`emokit.search.speed`
    (same sums, tested against the reference); ``fast=False`` runs the plain
    DARTS cells of :mod:`emokit.search.cells`. ``recompute_edges``: recompute
    each CNN edge's inside in the backward pass instead of storing it (a
    fraction of the memory for about one more forward pass).
    """

    def __init__(self, space: SearchSpace = SearchSpace(), fast: bool = True, recompute_edges: bool = False):
        super().__init__()
        self.space = space
        self.fast = fast
        self.recompute_edges = recompute_edges
        c = space.channels
        c_stem = space.stem_multiplier * c
        self.stem = cnn_stem(c_stem, space.stem_stride)
        c_pp, c_p, c_cur = c_stem, c_stem, c
        self.cnn_cells = nn.ModuleList()
        reduction_prev = False
        for k in range(space.cnn_cells):
            reduction = k in space.reduction_cells
            if reduction:
                c_cur *= 2
            self.cnn_cells.append(SearchCNNCell(space.cnn_ops, space.cnn_nodes, c_pp, c_p, c_cur, reduction,
                                                reduction_prev, space.partial_channels))
            reduction_prev = reduction
            c_pp, c_p = c_p, c_cur * space.cnn_nodes
        self.bridge = Bridge(c_p, space.freq_bins, space.seq_hidden)
        self.seq_cells = nn.ModuleList(SearchSeqCell(space.seq_ops, space.seq_nodes, space.seq_hidden)
                                       for _ in range(space.seq_cells))
        self.dropout = nn.Dropout(space.dropout)
        self.classifier = nn.Linear(space.seq_hidden, space.n_classes)
        self.gumbel_tau: float | None = None  # GDAS sampling while training (set by the search loop)
        # 1e-3 * randn, as in DARTS; drawn from torch's global RNG (seed first).
        self.alphas = nn.ParameterDict({
            t: nn.Parameter(1e-3 * torch.randn(n_edges(space.nodes(t)), len(space.ops(t))))
            for t in space.cell_types()
        })
        if fast or recompute_edges:  # recomputation needs BatchNorm that knows it is recomputing
            speed.accelerate(self)

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("alphas.")]

    def forward(self, x: torch.Tensor, masks: dict[str, torch.Tensor] | None = None,
                weights: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits of ``x``; ``masks`` (cell type -> (n_edges, n_ops) of 0 and
        1) takes ops out of the mixed edges, as architecture selection by
        perturbation does (:mod:`emokit.search.selection`); ``weights`` (cell
        type -> (n_edges, n_ops)) replaces the alphas' weights: one-hot rows
        run one genome with the supernet's weights."""
        w = {t: self._edge_weights(a) for t, a in self.alphas.items()}
        w.update({t: v.to(w[t]) for t, v in (weights or {}).items()})
        for t, mask in (masks or {}).items():
            w[t] = w[t] * mask.to(w[t])
        s0 = s1 = self.stem(x)
        for cell in self.cnn_cells:
            s0, s1 = s1, self._cnn_cell(cell, s0, s1, w["reduce"] if cell.reduction else w["normal"])
        h0 = h1 = self.bridge(s1)
        for cell in self.seq_cells:
            h0, h1 = h1, speed.seq_cell_forward(cell, h0, h1, w["seq"]) if self.fast else cell(h0, h1, w["seq"])
        return self.classifier(self.dropout(h1.mean(dim=1)))

    def _edge_weights(self, alphas: torch.Tensor) -> torch.Tensor:
        """Softmax of each edge's alphas; while training with ``gumbel_tau``
        set (GDAS), one op per edge drawn by Gumbel-max instead: the forward
        pass runs that op alone, the gradient reaches the alphas through the
        softmax of temperature ``gumbel_tau`` (straight-through)."""
        if self.training and self.gumbel_tau is not None:
            return nn.functional.gumbel_softmax(alphas, tau=self.gumbel_tau, hard=True, dim=-1)
        return torch.softmax(alphas, dim=-1)

    def set_aux_skip(self, weight: float) -> None:
        """DARTS-: the weight of the auxiliary skip connection of every stride-1 edge (0: none)."""
        for module in self.modules():
            if hasattr(module, "aux_skip"):
                module.aux_skip = float(weight)

    def _cnn_cell(self, cell: SearchCNNCell, s0, s1, weights) -> torch.Tensor:
        if self.recompute_edges and torch.is_grad_enabled():
            return speed.cnn_cell_recomputed(cell, s0, s1, weights)
        if self.fast:
            return speed.cnn_cell_by_state(cell, s0, s1, weights)
        return cell(s0, s1, weights)

    def alpha_snapshot(self) -> dict[str, np.ndarray]:
        """Softmax weights per cell type, (n_edges, n_ops) each."""
        with torch.no_grad():
            return {t: torch.softmax(a, dim=-1).cpu().numpy() for t, a in self.alphas.items()}

    def genome(self, max_skip: int | None = None) -> Genome:
        """The discrete architecture the current alphas stand for
        (``max_skip``: at most that many ``skip_connect`` per cell, P-DARTS)."""
        snapshot = self.alpha_snapshot()
        genes = {t: derive_cell(snapshot[t], self.space.ops(t), self.space.nodes(t), max_skip=max_skip)
                 if t in snapshot else () for t in CELL_TYPES}
        return Genome(**genes)


def count_parameters(model: nn.Module, include_alphas: bool = False) -> int:
    """Trainable parameters of ``model`` (alphas left out unless asked)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if p.requires_grad and (include_alphas or not name.startswith("alphas.")))
