"""The genome: the discrete architecture a search finds.

A cell has two inputs (``c_{k-2}``, ``c_{k-1}``, indices 0 and 1) and
``n_nodes`` intermediate nodes (indices 2, 3, ...). Node ``j`` may read from
any earlier state ``i < j``; in the supernet every such edge is a mixed op,
in the genome each node keeps two incoming edges, each with one op. The cell's
output combines all its intermediate nodes (CNN cells: concatenation along
channels; SeqNN cells: mean).

The genome round-trips through plain JSON, never ``eval``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

CELL_TYPES = ("normal", "reduce", "seq")

Edge = tuple[str, int]  # (op name, index of the input state)
CellGenes = tuple[tuple[Edge, ...], ...]  # per intermediate node, its incoming edges


def n_edges(n_nodes: int) -> int:
    """Number of mixed edges in a cell with ``n_nodes`` intermediate nodes."""
    return sum(2 + j for j in range(n_nodes))


def nodes_for_edges(edges: int) -> int:
    """Number of intermediate nodes of a cell with ``edges`` mixed edges."""
    n = 0
    while n_edges(n) < edges:
        n += 1
    if n_edges(n) != edges:
        raise ValueError(f"{edges} edges is not a DARTS cell (2, 5, 9, 14, 20 ... edges)")
    return n


def state_name(index: int) -> str:
    """Readable name of state ``index``: ``c_{k-2}``, ``c_{k-1}``, then node numbers."""
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(index, str(index - 2))


def edge_list(n_nodes: int) -> list[tuple[int, int]]:
    """``(node, input)`` of every edge, in the supernet's order (node-major)."""
    return [(j, i) for j in range(n_nodes) for i in range(2 + j)]


def edge_labels(n_nodes: int) -> list[str]:
    """Labels ``"node 0 <- c_{k-2}"`` ... for the rows of alpha heatmaps."""
    return [f"node {j} <- {state_name(i)}" for j, i in edge_list(n_nodes)]


def op_family(op: str) -> str:
    """Family of an op name, for colours: pooling, convolution, attention,
    recurrent, identity or none."""
    if op == "none":
        return "none"
    if op == "skip_connect":
        return "identity"
    if "pool" in op:
        return "pooling"
    if "_att" in op:
        return "attention"
    if op.startswith(("lstm", "rnn", "gru")):
        return "recurrent"
    return "convolution"


PARAMETER_FREE_FAMILIES = ("pooling", "identity", "none")


def derive_cell(weights: np.ndarray, op_names: Sequence[str], n_nodes: int, k: int = 2,
                max_skip: int | None = None, edge_strength: np.ndarray | None = None) -> CellGenes:
    """DARTS' discretisation of one cell.

    Parameters
    ----------
    weights : ndarray, shape (n_edges, n_ops)
        Softmax of the cell's alphas, rows in :func:`edge_list` order.
    op_names : sequence of str, length n_ops
    n_nodes : int
    k : int
        Incoming edges kept per node (2 in DARTS).
    max_skip : int, optional
        At most this many ``skip_connect`` edges in the cell (P-DARTS): the
        weakest of any others take their edge's strongest op other than
        ``none`` and ``skip_connect``.
    edge_strength : ndarray, shape (n_edges,), optional
        Ranks each node's incoming edges instead of their strongest op's
        weight (selection by perturbation: how much worse the supernet does
        without the edge).

    Returns
    -------
    CellGenes
        Per node, its ``k`` strongest incoming edges, each ranked and labelled
        by its strongest op other than ``none``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_edges(n_nodes), len(op_names)):
        raise ValueError(f"weights shape {weights.shape} does not fit {n_nodes} nodes x {len(op_names)} ops")
    if edge_strength is not None:
        edge_strength = np.asarray(edge_strength, dtype=np.float64)
    if edge_strength is not None and edge_strength.shape != (n_edges(n_nodes),):
        raise ValueError(f"edge_strength shape {edge_strength.shape} does not fit {n_edges(n_nodes)} edges")
    usable = [c for c, name in enumerate(op_names) if name != "none"]
    if not usable:
        raise ValueError("a cell needs at least one op other than 'none'")
    genes = []
    start = 0
    for j in range(n_nodes):
        rows = weights[start : start + 2 + j]
        best_op = [max(usable, key=lambda c: row[c]) for row in rows]
        strength = ([row[c] for row, c in zip(rows, best_op)] if edge_strength is None
                    else list(edge_strength[start : start + 2 + j]))
        # Stable ranking: ties go to the earlier input, so derivation is deterministic.
        chosen = sorted(range(len(rows)), key=lambda i: (-strength[i], i))[: min(k, len(rows))]
        genes.append([[op_names[best_op[i]], i, rows[i]] for i in sorted(chosen)])
        start += 2 + j
    if max_skip is not None:
        skips = sorted((edge for node in genes for edge in node if edge[0] == "skip_connect"),
                       key=lambda e: -e[2][op_names.index("skip_connect")])
        others = [c for c in usable if op_names[c] != "skip_connect"]
        for edge in skips[max_skip:]:
            if others:
                edge[0] = op_names[max(others, key=lambda c: edge[2][c])]
    return tuple(tuple((op, i) for op, i, _ in node) for node in genes)


def random_genome(space, seed) -> "Genome":
    """A genome drawn uniformly from ``space`` (a
    :class:`~emokit.search.supernet.SearchSpace`): the random-search control.

    Every node of every searched cell type gets two distinct inputs among the
    earlier states, each with an op drawn uniformly from the cell's op list
    without ``none`` (as DARTS' discretisation never keeps ``none``).
    ``seed``: an int or a sequence of ints (e.g. ``[seed, fold]``).
    """
    rng = np.random.default_rng(seed)
    genes = {}
    for cell in CELL_TYPES:
        ops = [op for op in space.ops(cell) if op != "none"]
        nodes = []
        if cell in space.cell_types():
            for j in range(space.nodes(cell)):
                inputs = sorted(rng.choice(2 + j, size=2, replace=False))
                nodes.append(tuple((ops[int(rng.integers(len(ops)))], int(i)) for i in inputs))
        genes[cell] = tuple(nodes)
    return Genome(**genes)


def genome_agreement(genomes: Sequence["Genome"]) -> dict[str, float]:
    """How alike several genomes are (e.g. one search per seed), averaged
    over all pairs and cell types.

    Returns
    -------
    dict
        ``edges``: share of kept edges (node, input) that the other genome
        keeps too; ``ops``: share kept with the same op as well. 1.0 means
        identical genomes; NaN with fewer than two genomes.
    """
    pairs = [(a, b) for i, a in enumerate(genomes) for b in genomes[i + 1:]]
    shares = {"edges": [], "ops": []}
    for a, b in pairs:
        for cell in CELL_TYPES:
            ours = {(j, src): op for j, node in enumerate(a.cell(cell)) for op, src in node}
            theirs = {(j, src): op for j, node in enumerate(b.cell(cell)) for op, src in node}
            if not ours:
                continue
            shares["edges"].append(len(ours.keys() & theirs.keys()) / len(ours))
            shares["ops"].append(sum(theirs.get(key) == op for key, op in ours.items()) / len(ours))
    return {key: float(np.mean(values)) if values else float("nan") for key, values in shares.items()}


def _as_genes(value: Iterable, cell: str = "cell") -> CellGenes:
    """Genes from nested lists, with an error naming the cell and node of a malformed edge."""
    genes = []
    for j, node in enumerate(value):
        edges = []
        for edge in node:
            if (not isinstance(edge, (list, tuple)) or len(edge) != 2 or not isinstance(edge[0], str)
                    or isinstance(edge[1], bool) or not isinstance(edge[1], (int, np.integer))):
                raise ValueError(f"{cell} node {j}: edge {edge!r} is not an [op name, input index] pair "
                                 f"(e.g. [\"sep_conv_3x3\", 0]; the index an integer)")
            edges.append((edge[0], int(edge[1])))
        if not edges:
            raise ValueError(f"{cell} node {j} has no edges; every node needs at least one [op name, input index]")
        genes.append(tuple(edges))
    return tuple(genes)


@dataclass(frozen=True)
class Genome:
    """A found architecture: the genes of the normal, reduction and SeqNN cells.

    Each field holds, per intermediate node, a tuple of ``(op, input)`` edges.
    """

    normal: CellGenes
    reduce: CellGenes
    seq: CellGenes

    def __post_init__(self) -> None:
        for cell in CELL_TYPES:
            genes = _as_genes(getattr(self, cell), cell)
            for j, node in enumerate(genes):
                for op, src in node:
                    if not 0 <= src < 2 + j:
                        raise ValueError(f"{cell} node {j}: input {src} is not an earlier state (0..{1 + j})")
            object.__setattr__(self, cell, genes)

    def cell(self, cell_type: str) -> CellGenes:
        if cell_type not in CELL_TYPES:
            raise KeyError(f"unknown cell type {cell_type!r}; known: {', '.join(CELL_TYPES)}")
        return getattr(self, cell_type)

    def n_nodes(self, cell_type: str) -> int:
        return len(self.cell(cell_type))

    def ops(self, cell_type: str) -> list[str]:
        return [op for node in self.cell(cell_type) for op, _ in node]

    # --- serialisation -------------------------------------------------
    def to_dict(self) -> dict:
        return {cell: [[[op, src] for op, src in node] for node in getattr(self, cell)] for cell in CELL_TYPES}

    @classmethod
    def from_dict(cls, data: dict) -> "Genome":
        missing = [c for c in CELL_TYPES if c not in data]
        if missing:
            raise ValueError(f"genome is missing cells {missing}; expected keys {list(CELL_TYPES)}")
        return cls(**{c: _as_genes(data[c], c) for c in CELL_TYPES})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Genome":
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        from emokit.utils import atomic_write_bytes

        atomic_write_bytes(path, (self.to_json() + "\n").encode())

    @classmethod
    def load(cls, path: str | Path) -> "Genome":
        path = Path(path)
        if path.is_dir():
            path = path / "genome.json"
        if not path.exists():
            raise FileNotFoundError(f"no genome at {path}; run a search first (notebook 02) or pass a genome.json")
        try:
            return cls.from_json(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}); fix it or run the search again") from None
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def __str__(self) -> str:
        lines = []
        for cell in CELL_TYPES:
            lines.append(f"{cell} cell:")
            for j, node in enumerate(self.cell(cell)):
                edges = ", ".join(f"{op}({state_name(src)})" for op, src in node)
                lines.append(f"  node {j} = {edges}")
        return "\n".join(lines)


# What to try, shown with the warnings below (log, notebook 02).
COLLAPSE_REMEDIES = ("fewer SeqNN nodes/cells (paper: at most 3), warmup_epochs > 0, aux_skip (DARTS-), "
                     "max_skip (P-DARTS) or a scope without skip_connect")
UNDECIDED_REMEDIES = "more epochs, a larger alpha_lr, or PC-DARTS (partial_channels) to afford more epochs"


def collapse_report(genome: Genome) -> list[str]:
    """Warnings for collapsed cells (paper VI-B): a cell whose genes are all
    ``skip_connect`` or all parameter-free ops. Empty when nothing collapsed."""
    warnings = []
    for cell in CELL_TYPES:
        ops = genome.ops(cell)
        if not ops:
            continue
        if all(op == "skip_connect" for op in ops):
            warnings.append(f"{cell} cell collapsed: every edge is skip_connect")
        elif all(op_family(op) in PARAMETER_FREE_FAMILIES for op in ops):
            warnings.append(f"{cell} cell collapsed: every edge is parameter-free ({', '.join(sorted(set(ops)))})")
    return warnings


UNDECIDED_RATIO = 1.25


def undecided_report(weights: dict[str, np.ndarray], ratio: float = UNDECIDED_RATIO) -> list[str]:
    """Warnings for cells whose alphas are still close to uniform.

    When no op of any edge of a cell has a softmax weight of at least
    ``ratio`` times the uniform weight ``1 / n_ops``, the top-2 choice of the
    genome rests on near-ties: rounding or another seed may pick other ops.

    Parameters
    ----------
    weights : cell type -> softmax alphas, shape (edges, ops), e.g. the last
        epoch of a search's alpha history
    ratio : how many times the uniform weight an op must reach

    Returns
    -------
    list of str, empty when every cell has at least one clear choice
    """
    warnings = []
    for cell, cell_weights in weights.items():
        cell_weights = np.asarray(cell_weights)
        if cell_weights.size == 0:
            continue
        uniform = 1.0 / cell_weights.shape[-1]
        strongest = float(cell_weights.max())
        if strongest < ratio * uniform:
            warnings.append(f"{cell} cell undecided: its strongest op weight is {strongest:.4f}, "
                            f"{strongest / uniform:.3f}x the uniform {uniform:.4f}")
    return warnings
