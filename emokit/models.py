"""Networks that are trained from scratch: a found genome and the paper's
hand-designed baselines (section IV-B), all in one registry.

Every model maps an MFCC map batch ``(N, 1, rows, columns)`` to logits
``(N, n_classes)``; columns are time.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from emokit.config import Config
from emokit.registry import Registry
from emokit.search import speed
from emokit.search.cells import FixedCNNCell, FixedSeqCell
from emokit.search.genotype import Genome
from emokit.search.supernet import Bridge, SearchSpace, cnn_stem, count_parameters

MODELS: Registry = Registry("model")

__all__ = ["MODELS", "NetConfig", "GenomeNet", "build_model", "count_parameters"]


@dataclass(frozen=True)
class NetConfig(Config):
    """Sizes of a retrained genome network (defaults: the paper's retraining,
    4 CNN cells of C = 16 and 2 SeqNN cells of d = 64). Baselines have their
    own fixed sizes and take only the input shape from the data.

    Attributes
    ----------
    cnn_cells, seq_cells : int, cells of each component.
    channels : int, channels C of the first CNN cell.
    stem_multiplier : int, the stem has ``stem_multiplier * channels`` channels.
    seq_hidden : int, SeqNN width d.
    freq_bins : int, frequency bands per time step at the bridge.
    stem_stride : int, 1 (paper) or 2 (the stem halves rows and columns); must
        match the search's ``stem_stride``.
    dropout : float, before the classifier.
    drop_path : float, probability of dropping a CNN path while training.
    """

    cnn_cells: int = 4
    seq_cells: int = 2
    channels: int = 16
    stem_multiplier: int = 3
    seq_hidden: int = 64
    freq_bins: int = 4
    stem_stride: int = 1
    dropout: float = 0.3
    drop_path: float = 0.0


@MODELS.register("genome")
class GenomeNet(nn.Module):
    """The discrete network of a genome: CNN cells (reductions at 1/3 and 2/3)
    -> bridge over time -> SeqNN cells -> mean over time -> dense.

    Parameters
    ----------
    genome : Genome
    cnn_cells, seq_cells : int, cells of each component (paper: 4 and 2).
    channels : int, channels C of the first CNN cell.
    seq_hidden : int, SeqNN width d.
    freq_bins : int, frequency bands per time step at the bridge.
    stem_stride : int, 1 (paper) or 2 (the stem halves rows and columns).
    dropout : float, before the classifier.
    drop_path : float, probability of dropping a CNN path while training.
    fast : bool, share the ReLUs of ops that read one state
        (:class:`emokit.search.speed.SharedReLU`; the same outputs and
        gradients up to float rounding).
    """

    def __init__(self, genome: Genome, n_classes: int = 4, cnn_cells: int = 4, seq_cells: int = 2,
                 channels: int = 16, stem_multiplier: int = 3, seq_hidden: int = 64, freq_bins: int = 4,
                 dropout: float = 0.3, drop_path: float = 0.0, stem_stride: int = 1, fast: bool = True):
        super().__init__()
        self.fast = fast
        if seq_cells and not genome.seq:
            raise ValueError("the genome has no SeqNN cell; use seq_cells=0")
        reductions = SearchSpace(cnn_cells=cnn_cells).reduction_cells
        for cell, needed in (("normal", cnn_cells > len(reductions)), ("reduce", bool(reductions))):
            if needed and not genome.cell(cell):
                raise ValueError(f"the genome's {cell} cell has no nodes, but {cnn_cells} CNN cells need one")
        self.genome = genome
        self.drop_path = drop_path
        c_stem = stem_multiplier * channels
        self.stem = cnn_stem(c_stem, stem_stride)
        self.cnn_cells = nn.ModuleList()
        c_pp, c_p, c = c_stem, c_stem, channels
        reduction_prev = False
        for k in range(cnn_cells):
            reduction = k in reductions
            c = c * 2 if reduction else c
            genes = genome.reduce if reduction else genome.normal
            self.cnn_cells.append(FixedCNNCell(genes, c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, c * len(genes)
        self.bridge = Bridge(c_p, freq_bins, seq_hidden)
        self.seq_cells = nn.ModuleList(FixedSeqCell(genome.seq, seq_hidden) for _ in range(seq_cells))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(seq_hidden, n_classes)
        speed.accelerate(self)  # faster CPU BatchNorm / pooling, same parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        apply = speed.SharedReLU().apply if self.fast else None
        for cell in self.cnn_cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path, apply)
        h0 = h1 = self.bridge(s1)
        for cell in self.seq_cells:
            h0, h1 = h1, cell(h0, h1)
        return self.classifier(self.dropout(h1.mean(dim=1)))


class _ConvPool(nn.Module):
    """The baselines' front end: conv (kernel 2, stride 2, padding 2) ->
    (BatchNorm) -> ReLU -> max pool (2, 2)."""

    def __init__(self, filters: int, batch_norm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, kernel_size=2, stride=2, padding=2)
        self.norm = nn.BatchNorm2d(filters) if batch_norm else nn.Identity()
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x):
        return self.pool(torch.relu(self.norm(self.conv(x))))

    @staticmethod
    def out_shape(input_shape: tuple[int, int]) -> tuple[int, int]:
        rows, cols = ((s + 4 - 2) // 2 + 1 for s in input_shape)
        return rows // 2, cols // 2


@MODELS.register("cnn")
class CNNBaseline(nn.Module):
    """Paper's CNN: conv -> max pool -> dropout 0.3 -> two dense layers.
    The defaults (1 filter, 32 hidden units) give the paper's ~35 K weights.

    Two of emokit's choices make its single filter train on every fold
    (docs/results.md, "The cnn baseline"):

    - ``batch_norm`` (2 weights) normalises the conv's output before its
      ReLU. Without it the filter can die: once its output is negative on
      every input, no gradient reaches it and the network predicts one
      class (EmoDB, quick preset: 1 of 15 trainings at chance).
    - ``positive_filter`` starts the filter with positive weights. Its
      sign decides what the ReLU lets through: the peaks of the map
      (energy) or its troughs, and training does not flip it. On EmoDB
      every training whose filter summed below 0 scored below every one
      whose filter summed above 0 (52-66 against 76-88 % UA, 15 trainings).
    """

    def __init__(self, n_classes: int = 4, input_shape=(128, 128), filters: int = 1, hidden: int = 32,
                 dropout: float = 0.3, batch_norm: bool = True, positive_filter: bool = True):
        super().__init__()
        self.front = _ConvPool(filters, batch_norm)
        if positive_filter:
            with torch.no_grad():
                self.front.conv.weight.abs_()
        rows, cols = _ConvPool.out_shape(tuple(input_shape))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(filters * rows * cols, hidden),
                                  nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x):
        return self.head(self.front(x))


class Attention(nn.Module):
    """Additive attention pooling over the time steps of each utterance."""

    def __init__(self, d: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))

    def forward(self, h):  # (N, T, d) -> (N, d)
        weights = torch.softmax(self.score(h), dim=1)
        return (weights * h).sum(dim=1)


@MODELS.register("cnn_lstm")
class CNNLSTMBaseline(nn.Module):
    """Paper's CNN+LSTM: the CNN front end, then a bidirectional LSTM of 128
    units along time, then dropout and two dense layers. ``attention=True``
    pools the LSTM outputs with attention (the CNN+LSTM-attention baseline);
    otherwise the last step's state of both directions is used."""

    def __init__(self, n_classes: int = 4, input_shape=(128, 128), filters: int = 4, units: int = 128,
                 hidden: int = 64, dropout: float = 0.3, attention: bool = False):
        super().__init__()
        self.front = _ConvPool(filters)
        rows, _ = _ConvPool.out_shape(tuple(input_shape))
        self.lstm = nn.LSTM(filters * rows, units, batch_first=True, bidirectional=True)
        self.attention = Attention(2 * units) if attention else None
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * units, hidden), nn.ReLU(),
                                  nn.Linear(hidden, n_classes))

    def forward(self, x):
        h = self.front(x)  # (N, F, rows, T)
        h, (last, _) = self.lstm(h.permute(0, 3, 1, 2).flatten(2))  # one step per time column
        pooled = self.attention(h) if self.attention is not None else torch.cat([last[-2], last[-1]], dim=1)
        return self.head(pooled)


@MODELS.register("cnn_lstm_att")
def cnn_lstm_att(**kwargs) -> CNNLSTMBaseline:
    """Paper's CNN+LSTM-attention baseline."""
    return CNNLSTMBaseline(attention=True, **kwargs)


# The controls: GenomeNets of genomes drawn from the search space (one, or
# the best of several by validation UA: emokit.pipeline.random_search).
MODELS.add("random", GenomeNet)
MODELS.add("random_search", GenomeNet)
GENOME_MODELS = ("genome", "random", "random_search")


def build_model(name: str, genome: Genome | None = None, **kwargs) -> nn.Module:
    """A model by registry name; those of ``GENOME_MODELS`` need ``genome``."""
    factory = MODELS.get(name)
    if name in GENOME_MODELS:
        if genome is None:
            raise ValueError(f"model {name!r} needs a genome (a search's genome.json)")
        return factory(genome, **kwargs)
    return factory(**kwargs)
