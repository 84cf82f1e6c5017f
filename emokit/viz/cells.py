"""Cell graphs of a genome (graphviz), in the style of the DARTS papers' figures.

Building a graph needs only the ``graphviz`` Python package; the ``dot``
program is needed to render it (:func:`save_graph`, or inline display in
Jupyter). When it is missing a :class:`RuntimeError` says how to install it.
"""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import graphviz
import numpy as np

from emokit.search.genotype import CELL_TYPES, Genome, edge_list, n_edges, op_family, state_name
from emokit.viz.style import FAMILY_COLORS, check_cell as _check_cell, pick as _pick

#: How to get the ``dot`` program, quoted in the missing-``dot`` error.
DOT_INSTALL_HINT = (
    "the Graphviz 'dot' program is needed to render cell graphs but was not found on PATH. "
    "Install Graphviz: 'sudo apt-get install graphviz' (Debian/Ubuntu), "
    "'conda install -c conda-forge graphviz' (conda) or 'brew install graphviz' (macOS); "
    "the 'graphviz' Python package alone is not enough. "
    "Drawing (graph.source) works without it."
)

_INPUT_FILL = "darkseagreen2"
_NODE_FILL = "lightblue"
_OUTPUT_FILL = "palegoldenrod"
_OUTPUT_EDGE = "gray"


def dot_available() -> bool:
    """Is Graphviz' ``dot`` program on ``PATH``? (Without it only cell graphs are lost.)"""
    return shutil.which("dot") is not None


def require_dot() -> str:
    """Check that Graphviz' ``dot`` program is installed.

    Returns
    -------
    str
        Path of the ``dot`` executable.

    Raises
    ------
    RuntimeError
        When ``dot`` is not on ``PATH``, with install instructions.
    """
    path = shutil.which("dot")
    if path is None:
        raise RuntimeError(DOT_INSTALL_HINT)
    return path


class _Digraph(graphviz.Digraph):
    """A :class:`graphviz.Digraph` whose Jupyter display fails with the
    install hint rather than a bare ``ExecutableNotFound``."""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        require_dot()
        return super()._repr_mimebundle_(include, exclude, **kwargs)


def _edge_weights(genome: Genome, cell: str, weights, ops) -> dict[tuple[int, int, str], float] | None:
    """Softmax weight of the chosen op on each ``(node, input, op)`` edge of the genome."""
    if weights is None and ops is None:
        return None
    if weights is None or ops is None:
        raise ValueError("pass both `weights` and `ops` to label edges with weights, or neither")
    weights = np.asarray(_pick(weights, cell), dtype=float)
    ops = list(_pick(ops, cell))
    n_nodes = genome.n_nodes(cell)
    if weights.shape != (n_edges(n_nodes), len(ops)):
        raise ValueError(
            f"{cell} weights have shape {weights.shape}, expected ({n_edges(n_nodes)}, {len(ops)}) "
            f"for {n_nodes} nodes and {len(ops)} ops"
        )
    rows = {edge: r for r, edge in enumerate(edge_list(n_nodes))}
    out = {}
    for j, node in enumerate(genome.cell(cell)):
        for op, src in node:
            if op not in ops:
                raise ValueError(f"{cell} node {j} uses op {op!r}, which is not among the ops {ops}")
            out[(j, src, op)] = float(weights[rows[(j, src)], ops.index(op)])
    return out


def _add_cell(graph: graphviz.Digraph, genome: Genome, cell: str, prefix: str, weights, ops) -> None:
    """Add the nodes and edges of one cell to ``graph``, node names prefixed."""
    w = _edge_weights(genome, cell, weights, ops)
    n_nodes = genome.n_nodes(cell)

    def name(index: int) -> str:
        return prefix + state_name(index)

    for i in (0, 1):
        graph.node(name(i), label=state_name(i), fillcolor=_INPUT_FILL)
    for j in range(n_nodes):
        graph.node(name(2 + j), label=str(j), fillcolor=_NODE_FILL)
    out = prefix + "c_{k}"
    graph.node(out, label="c_{k}", fillcolor=_OUTPUT_FILL)
    for j, node in enumerate(genome.cell(cell)):
        for op, src in node:
            label = op if w is None else f"{op}\\n{w[(j, src, op)]:.2f}"
            color = FAMILY_COLORS[op_family(op)]
            graph.edge(name(src), name(2 + j), label=label, color=color, fontcolor=color)
    for j in range(n_nodes):
        graph.edge(name(2 + j), out, color=_OUTPUT_EDGE)


def _new_graph(name: str, label: str) -> graphviz.Digraph:
    return _Digraph(
        name=name,
        graph_attr={"rankdir": "LR", "label": label, "labelloc": "t", "fontsize": "16"},
        node_attr={"style": "filled", "shape": "rect", "fontsize": "14", "height": "0.4", "penwidth": "1.5"},
        edge_attr={"fontsize": "11"},
    )


def cell_graph(genome: Genome, cell: str = "normal", weights=None, ops=None) -> graphviz.Digraph:
    """Draw one cell of a genome, DARTS-figure style.

    Parameters
    ----------
    genome : Genome
    cell : {"normal", "reduce", "seq"}
    weights : ndarray (n_edges, n_ops) or dict, optional
        Softmax alphas of this cell (rows in ``edge_list`` order), or a whole
        alpha snapshot (cell type -> array). With ``ops``, each edge is also
        labelled with the weight of its op.
    ops : list of str or dict, optional
        Op names of this cell's columns, or a dict cell type -> list.

    Returns
    -------
    graphviz.Digraph
        Inputs ``c_{k-2}``, ``c_{k-1}``, nodes ``0, 1, ...``, output ``c_{k}``;
        edges labelled and coloured by op family (:data:`FAMILY_COLORS`),
        grey edges from every node to ``c_{k}``. Needs ``dot`` only to render.

    Raises
    ------
    KeyError
        Unknown cell type.
    """
    _check_cell(cell)
    graph = _new_graph(f"{cell}_cell", f"{cell} cell")
    _add_cell(graph, genome, cell, "", weights, ops)
    return graph


def genome_figure(genome: Genome, snapshot: Mapping | None = None, ops: Mapping | None = None) -> graphviz.Digraph:
    """Draw the three cells of a genome one above the other in one graph
    (narrow enough for a notebook's output area).

    Parameters
    ----------
    genome : Genome
    snapshot : dict cell type -> ndarray (n_edges, n_ops), optional
        Alpha snapshot; with ``ops`` the edges also show their op's weight.
    ops : dict cell type -> list of str, optional

    Returns
    -------
    graphviz.Digraph
        One cluster per cell (``cluster_normal`` ...), node names prefixed with
        the cell type (``normal_c_{k-2}``, ``normal_0`` ...), stacked from top
        to bottom in that order (their inputs share one rank).
    """
    graph = _new_graph("genome", "")
    graph.attr(nodesep="0.3", ranksep="0.4", newrank="true")
    for cell in reversed(CELL_TYPES):  # dot stacks the clusters of one rank bottom-up in this order
        with graph.subgraph(name=f"cluster_{cell}") as sub:
            # title at the left, above the input column: centred, dot lays edge labels over it
            sub.attr(label=f"{cell} cell", labeljust="l", style="rounded", color="gray60", fontsize="16")
            _add_cell(sub, genome, cell, f"{cell}_", snapshot, ops)
    with graph.subgraph() as inputs:  # one column of inputs: the cells stack vertically
        inputs.attr(rank="same")
        for cell in CELL_TYPES:
            inputs.node(f"{cell}_c_{{k-2}}")
    graph.attr(size="10.5,40")  # inches: scaled down to fit a notebook's output area (about 1050 px)
    return graph


def save_graph(graph: graphviz.Graph | graphviz.Digraph, path: str | Path) -> Path:
    """Render a graph to a file; the format follows the suffix (svg, png, pdf ...).

    Parameters
    ----------
    graph : graphviz.Digraph
    path : str or Path
        Output file, e.g. ``"figures/normal.svg"``. Parent folders are made.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    RuntimeError
        When the ``dot`` program is missing (with install instructions).
    ValueError
        When the suffix is not a Graphviz output format.
    """
    from emokit.utils import atomic_write_bytes

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in graphviz.FORMATS:
        raise ValueError(f"cannot tell the format of {path}: use a suffix such as .svg, .png or .pdf")
    require_dot()
    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise RuntimeError(DOT_INSTALL_HINT) from exc
    atomic_write_bytes(path, data)
    return path

