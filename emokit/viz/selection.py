"""Pictures of a selection by perturbation (:mod:`emokit.search.selection`):
how much worse the supernet does without each op and each edge."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from emokit.search.genotype import CELL_TYPES, Genome, edge_labels, edge_list, nodes_for_edges
from emokit.search.selection import read_scores


def load_selection(run_folder: str | Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[str]]]:
    """The scores of a search read by perturbation, and its op names.

    Returns
    -------
    scores : cell type -> {"ops": ndarray (n_edges, n_ops), "edges": ndarray (n_edges,)}, loss increases in nats
    ops : cell type -> list of op names
    """
    scores = read_scores(run_folder)
    space = json.loads((Path(run_folder) / "search_space.json").read_text())
    ops = {cell: list(names) for cell, names in space["ops"].items()}
    return scores, ops


def selection_heatmaps(scores: dict[str, dict[str, np.ndarray]], ops: dict[str, list[str]],
                       genome: Genome | None = None) -> Figure:
    """One panel per cell type: the loss increase (nats, on the alpha half)
    without each op (columns) on each edge (rows), and in the last column
    without the whole edge. Red: the supernet needs it; blue: it does better
    without. The genome's kept edges and ops are outlined."""
    tables = {t: np.column_stack([scores[t]["ops"], scores[t]["edges"]]) for t in CELL_TYPES if t in scores}
    widths = [table.shape[1] for table in tables.values()]
    rows = max(table.shape[0] for table in tables.values())
    fig = Figure(figsize=(2.0 + 0.42 * sum(widths) + 1.6 * len(tables), 1.9 + 0.3 * rows), layout="constrained")
    axes = fig.subplots(1, len(tables), width_ratios=widths, squeeze=False)[0]
    limit = max(float(np.nanmax(np.abs(table))) for table in tables.values()) or 1.0
    norm = TwoSlopeNorm(0.0, -limit, limit)
    for ax, (t, table) in zip(axes, tables.items()):
        image = ax.imshow(np.ma.masked_invalid(table), cmap="RdBu_r", norm=norm, aspect="auto", interpolation="nearest")
        n_nodes = nodes_for_edges(table.shape[0])
        ax.set_xticks(range(table.shape[1]), ops[t] + ["whole edge"], rotation=60, ha="right", rotation_mode="anchor",
                      fontsize=8)
        ax.set_yticks(range(table.shape[0]), edge_labels(n_nodes), fontsize=8)
        ax.axvline(table.shape[1] - 1.5, color="black", lw=0.8)
        if genome is not None:
            index = {edge: e for e, edge in enumerate(edge_list(n_nodes))}
            for node, genes in enumerate(genome.cell(t)):
                for op, source in genes:
                    e = index[(node, source)]
                    for column in (ops[t].index(op), table.shape[1] - 1):
                        ax.add_patch(_outline(column, e))
        ax.set_title(f"{t} cell", fontsize=10)
    fig.colorbar(image, ax=list(axes), fraction=0.04, pad=0.02).set_label("loss increase without it (nats)")
    return fig


def _outline(column: int, row: int):
    from matplotlib.patches import Rectangle

    return Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="black", lw=1.4)
