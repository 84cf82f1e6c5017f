"""Pictures of the architecture weights: heatmaps, their evolution, op frequency.

Alpha data come as an *alpha snapshot*: ``dict`` cell type -> ndarray
``(n_edges, n_ops)`` of softmax weights, rows in
:func:`~emokit.search.genotype.edge_list` order, with the op names per cell
type in a second ``dict`` cell type -> list of str. A run folder stores their
history (see :func:`load_alpha_history`). Every function returns a
:class:`matplotlib.figure.Figure` built without pyplot.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.ticker import MaxNLocator
from matplotlib.figure import Figure

from emokit.search.genotype import (CELL_TYPES, Genome, edge_labels as _edge_labels, edge_list, n_edges, nodes_for_edges,
                                    op_family, state_name)
from emokit.viz.cells import cell_graph, genome_figure, save_graph
from emokit.viz.style import FAMILY_COLORS, check_cell as _check_cell, pick as _pick, series_colors

_ANNOTATE_MAX_CELLS = 300  # heatmaps with more cells than this get no numbers
RATIO_RANGE = 4.0  # heatmap colours span 1/4 to 4 times the uniform weight (at least)
RATIO_LABEL = "weight / uniform"

def load_alpha_history(run_folder: str | Path) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Read the alpha history of a search run.

    Parameters
    ----------
    run_folder : str or Path
        Folder with ``alpha_history.npz`` (arrays ``normal``, ``reduce``,
        ``seq`` of shape (epochs, n_edges, n_ops)) and ``search_space.json``.

    Returns
    -------
    history : dict cell type -> ndarray (epochs, n_edges, n_ops)
    ops : dict cell type -> list of str
    """
    folder = Path(run_folder)
    missing = [name for name in ("alpha_history.npz", "search_space.json") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} has no {' or '.join(missing)}; run a search first (notebook 02) "
            "and pass its run folder"
        )
    space = json.loads((folder / "search_space.json").read_text())
    ops = {cell: list(names) for cell, names in space["ops"].items()}
    with np.load(folder / "alpha_history.npz") as npz:
        history = {key: np.asarray(npz[key]) for key in _cell_order(npz.files)}
    for cell, arr in history.items():
        if cell in ops and (arr.ndim != 3 or arr.shape[-1] != len(ops[cell])):
            raise ValueError(f"{folder}: {cell} alpha history has shape {arr.shape}, expected (epochs, n_edges, {len(ops[cell])})")
    return history, ops


def _cell_order(keys: Iterable[str]) -> list[str]:
    keys = list(keys)
    return [c for c in CELL_TYPES if c in keys] + [k for k in keys if k not in CELL_TYPES]



def alpha_heatmap(
    weights: np.ndarray,
    op_names: Sequence[str],
    edge_labels: Sequence[str],
    ax: Axes | None = None,
    title: str | None = None,
    *,
    annotate: bool | None = None,
    colorbar: bool = True,
    vmax: float | None = None,
) -> Axes:
    """Heatmap of one cell's softmax alphas, coloured relative to uniform.

    The colour is ``weight / (1 / n_ops)`` on a log scale centred on 1: an
    op at the uniform weight is white, a preferred op red, a rejected one
    blue. A search whose alphas barely left uniform therefore looks pale,
    however small its spread: the scale does not stretch to the data.

    Parameters
    ----------
    weights : ndarray (n_edges, n_ops)
    op_names : sequence of str
        Column labels.
    edge_labels : sequence of str
        Row labels, e.g. from :func:`~emokit.search.genotype.edge_labels`.
    ax : Axes, optional
        Where to draw; a new figure is made otherwise.
    title : str, optional
    annotate : bool, optional
        Write the values in the cells; by default only when the map has at
        most 300 cells.
    colorbar : bool
        Add a colour bar beside the axes.
    vmax : float, optional
        Top of the colour scale as a multiple of the uniform weight (the
        bottom is its inverse); :data:`RATIO_RANGE` or the largest ratio by default.

    Returns
    -------
    Axes
        The written values are the ratios to uniform; the row maximum (the
        op DARTS would keep on that edge) is outlined, or written in bold.
    """
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(edge_labels), len(op_names)):
        raise ValueError(f"weights shape {weights.shape} does not fit {len(edge_labels)} edges x {len(op_names)} ops")
    if ax is None:
        fig = Figure(figsize=(2.4 + 0.45 * len(op_names), 1.6 + 0.3 * len(edge_labels)), layout="constrained")
        ax = fig.add_subplot()
    ratios = weights * weights.shape[1] if weights.size else weights
    if vmax is None:
        vmax = max(RATIO_RANGE, float(ratios.max(initial=0.0)))
    image = ax.imshow(np.maximum(ratios, 1e-6), cmap="RdBu_r", norm=LogNorm(1 / vmax, vmax), aspect="auto",
                      interpolation="nearest")
    ax.set_xticks(range(len(op_names)), op_names, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(len(edge_labels)), edge_labels, fontsize=8)
    ax.tick_params(length=2, pad=2)
    if annotate is None:
        annotate = weights.size <= _ANNOTATE_MAX_CELLS
    best = weights.argmax(axis=1) if weights.size else np.zeros(0, dtype=int)
    if annotate:
        for (r, c), value in np.ndenumerate(ratios):
            strong = value > vmax ** 0.6 or value < vmax ** -0.6  # dark cells get white text
            ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=6, color="white" if strong else "black",
                    fontweight="bold" if c == best[r] else "normal")
    elif weights.size:
        ax.plot(best, np.arange(len(edge_labels)), "s", ms=6, mfc="none", mec="red", mew=1.0)
        ax.set_xlim(-0.5, len(op_names) - 0.5)
        ax.set_ylim(len(edge_labels) - 0.5, -0.5)
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        _ratio_colorbar(ax.figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02), vmax)
    return ax


def _ratio_colorbar(bar, vmax: float) -> None:
    """Ticks at 1/4, 1/2, 1, 2, 4 ... times uniform, written plainly."""
    ticks = [2.0 ** k for k in range(-8, 9) if 1 / vmax - 1e-9 <= 2.0 ** k <= vmax + 1e-9]
    bar.set_ticks(ticks, labels=[f"{t:g}" if t >= 1 else f"1/{1 / t:g}" for t in ticks])
    bar.ax.minorticks_off()
    bar.set_label(RATIO_LABEL)


# fixed layout of alpha_heatmaps, in inches (no layout engine: it is redrawn every epoch)
_HM_CELL_W, _HM_CELL_H = 0.42, 0.27
_HM_LABEL_W, _HM_GAP, _HM_BOTTOM, _HM_TOP, _HM_CBAR = 1.15, 0.3, 1.05, 0.6, 1.0


def alpha_heatmaps(
    snapshot: Mapping[str, np.ndarray],
    ops: Mapping[str, Sequence[str]],
    fig: Figure | None = None,
    *,
    annotate: bool | None = None,
) -> Figure:
    """One alpha heatmap per cell type, side by side, with a shared colour bar.

    Parameters
    ----------
    snapshot : dict cell type -> ndarray (n_edges, n_ops)
    ops : dict cell type -> list of str
    fig : Figure, optional
        Figure to reuse: it is cleared and redrawn (for a live view updated
        every epoch); its size is kept.
    annotate : bool, optional
        Write the values in the cells; by default only when all maps together
        have at most 300 cells (so not for the full CNN + SeqNN search
        spaces, keeping a live update well under 0.3 s). The strongest op of
        each edge is outlined (bold when values are written).

    Returns
    -------
    Figure
    """
    cells = _cell_order(snapshot)
    if not cells:
        raise ValueError("empty alpha snapshot")
    arrays = [np.asarray(snapshot[cell], dtype=float) for cell in cells]
    cols = [a.shape[1] for a in arrays]
    rows = max(a.shape[0] for a in arrays)
    fixed_w = len(cells) * _HM_LABEL_W + (len(cells) - 1) * _HM_GAP + _HM_CBAR
    if fig is None:
        fig = Figure(figsize=(fixed_w + _HM_CELL_W * sum(cols), _HM_BOTTOM + _HM_TOP + _HM_CELL_H * rows))
    else:
        fig.clear()
    width, height = fig.get_size_inches()
    cell_w = max(width - fixed_w, 0.5) / sum(cols)
    cell_h = max(height - _HM_BOTTOM - _HM_TOP, 0.5) / rows
    vmax = max([RATIO_RANGE] + [float((a * a.shape[1]).max(initial=0.0)) for a in arrays])
    if annotate is None:
        annotate = sum(a.size for a in arrays) <= _ANNOTATE_MAX_CELLS
    x = 0.0
    image = None
    for cell, weights, n_cols in zip(cells, arrays, cols):
        x += _HM_LABEL_W
        h = cell_h * weights.shape[0]
        ax = fig.add_axes((x / width, (height - _HM_TOP - h) / height, cell_w * n_cols / width, h / height))
        labels = _edge_labels(nodes_for_edges(weights.shape[0]))
        alpha_heatmap(weights, list(_pick(ops, cell)), labels, ax=ax, title=f"{cell} cell", colorbar=False, vmax=vmax, annotate=annotate)
        image = ax.images[0]
        x += cell_w * n_cols + _HM_GAP
    cax = fig.add_axes(((x - _HM_GAP + 0.12) / width, _HM_BOTTOM / height, 0.12 / width, cell_h * rows / height))
    _ratio_colorbar(fig.colorbar(image, cax=cax), vmax)
    return fig


def alpha_evolution(history: Mapping[str, np.ndarray], ops: Mapping[str, Sequence[str]], cell: str = "normal") -> Figure:
    """Small multiples of the alpha weights of one cell over the epochs.

    Parameters
    ----------
    history : dict cell type -> ndarray (epochs, n_edges, n_ops)
    ops : dict cell type -> list of str
    cell : {"normal", "reduce", "seq"}

    Returns
    -------
    Figure
        One panel per edge (row: node, column: input state), one line per op,
        a single legend for the figure.
    """
    _check_cell(cell)
    if cell not in history:
        raise KeyError(f"no {cell!r} alpha history; have {', '.join(history)}")
    arr = np.asarray(history[cell], dtype=float)
    op_names = list(_pick(ops, cell))
    if arr.ndim != 3 or arr.shape[2] != len(op_names):
        raise ValueError(f"{cell} history has shape {arr.shape}, expected (epochs, n_edges, {len(op_names)})")
    n_nodes = nodes_for_edges(arr.shape[1])
    epochs = np.arange(1, arr.shape[0] + 1)
    fig = Figure(figsize=(2.4 * (n_nodes + 1) + 2.0, 1.9 * n_nodes + 0.6), layout="constrained")
    grid = fig.subplots(n_nodes, n_nodes + 1, sharex=True, sharey=True, squeeze=False)
    colors = series_colors(op_names)
    ymax = max(float(arr.max(initial=0.0)) * 1.05, 1e-6)
    for r, (j, i) in enumerate(edge_list(n_nodes)):
        ax = grid[j, i]
        for c, op in enumerate(op_names):
            ax.plot(epochs, arr[:, r, c], color=colors[c], lw=1.2, ls="--" if op == "none" else "-", label=op)
        ax.set_title(f"node {j} <- {state_name(i)}", fontsize=8)
        ax.set_ylim(0, ymax)
        ax.tick_params(labelsize=7, labelbottom=True)
    for j in range(n_nodes):
        for i in range(j + 2, n_nodes + 1):
            grid[j, i].remove()
    handles, labels = grid[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    fig.suptitle(f"{cell} cell: softmax alpha per edge over epochs")
    fig.supxlabel("epoch", fontsize=9)
    grid[0, 0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # shared by every panel
    return fig


# --------------------------------------------------------------------------
# stability across folds / seeds
# --------------------------------------------------------------------------
def op_frequency(genomes: Iterable[Genome] | Genome) -> pd.DataFrame:
    """How often each op was chosen, per cell type, over several genomes.

    Parameters
    ----------
    genomes : list of Genome (or one Genome)

    Returns
    -------
    DataFrame
        Index ``op``, columns the cell types, integer counts (0 where an op
        was never chosen in that cell), rows sorted by total count.
    """
    if isinstance(genomes, Genome):
        genomes = [genomes]
    counts: dict[str, dict[str, int]] = {cell: {} for cell in CELL_TYPES}
    for genome in genomes:
        for cell in CELL_TYPES:
            for op in genome.ops(cell):
                counts[cell][op] = counts[cell].get(op, 0) + 1
    df = pd.DataFrame(counts, columns=list(CELL_TYPES)).fillna(0).astype(int)
    if df.empty:
        return df.rename_axis("op")
    order = sorted(df.index, key=lambda op: (-int(df.loc[op].sum()), op))
    return df.loc[order].rename_axis("op")


def plot_op_frequency(genomes_or_frequency: Iterable[Genome] | pd.DataFrame) -> Figure:
    """Bar charts of op choice counts, one panel per cell type.

    Parameters
    ----------
    genomes_or_frequency : list of Genome or DataFrame
        Genomes (e.g. one per fold or seed) or the output of :func:`op_frequency`.

    Returns
    -------
    Figure
        Horizontal bars coloured by op family; ops never chosen in a cell
        are left out of its panel.
    """
    df = genomes_or_frequency if isinstance(genomes_or_frequency, pd.DataFrame) else op_frequency(genomes_or_frequency)
    cells = list(df.columns)
    fig = Figure(figsize=(4.0 * max(len(cells), 1), 0.6 + 0.3 * max(len(df), 3)), layout="constrained")
    axes = fig.subplots(1, max(len(cells), 1), squeeze=False)[0]
    for ax, cell in zip(axes, cells):
        counts = df[cell][df[cell] > 0].sort_values()
        if counts.empty:
            ax.text(0.5, 0.5, "no ops", ha="center", va="center", transform=ax.transAxes)
        else:
            colors = [FAMILY_COLORS.get(op_family(op), "black") for op in counts.index]
            ax.barh(list(counts.index), counts.to_numpy(), color=colors)
            ax.tick_params(axis="y", labelsize=8)
        ax.set_title(f"{cell} cell")
        ax.set_xlabel("times chosen")
        ax.xaxis.get_major_locator().set_params(integer=True)
    families = sorted({op_family(op) for op in df.index[df.sum(axis=1) > 0]}, key=list(FAMILY_COLORS).index)
    if families:
        from matplotlib.patches import Patch

        handles = [Patch(color=FAMILY_COLORS[f], label=f) for f in families]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return fig


def save_search_figures(run_folder: str | Path, formats: Sequence[str] = ("svg", "png")) -> dict[str, Path]:
    """Draw and save every picture of one search run into ``run_folder/figures``.

    Cell graphs of the genome (each cell, and all three side by side with the
    final alpha weights on the edges), final alpha heatmaps and the evolution
    of each cell type's alphas.

    Without Graphviz' ``dot`` the cell graphs are skipped with a warning
    (how to install it); the matplotlib pictures are saved all the same.

    Returns
    -------
    dict picture name -> path of the saved file (first format for graphs).
    """
    import warnings

    from emokit.viz.cells import DOT_INSTALL_HINT, dot_available

    run_folder = Path(run_folder)
    out = run_folder / "figures"
    out.mkdir(parents=True, exist_ok=True)
    genome = Genome.load(run_folder)
    history, ops = load_alpha_history(run_folder)
    final = {cell: h[-1] for cell, h in history.items()}
    saved: dict[str, Path] = {}
    graphs = {f"cell_{cell}": cell_graph(genome, cell, final.get(cell), ops.get(cell) if cell in final else None)
              for cell in CELL_TYPES if genome.cell(cell)}
    graphs["genome"] = genome_figure(genome, final, ops)
    if not dot_available():
        warnings.warn(f"cell graphs of {run_folder} not drawn: {DOT_INSTALL_HINT}", stacklevel=2)
        graphs = {}
    for name, graph in graphs.items():
        paths = [save_graph(graph, out / f"{name}.{fmt}") for fmt in formats]
        saved[name] = paths[0]
    figures = {"alpha_heatmaps": alpha_heatmaps(final, ops)}
    figures.update({f"alpha_evolution_{cell}": alpha_evolution(history, ops, cell) for cell in history})
    for name, fig in figures.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        saved[name] = path
    return saved
