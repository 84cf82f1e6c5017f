"""Pictures of a training run: curves per epoch and the confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from emokit.viz.style import series_colors

SCHEDULE_COLUMNS = ("lr", "seconds", "aux_skip", "beta_decay", "gumbel_tau")  # drawn by schedule_curves, not with the metrics


def _legend_above(ax: Axes, lines: list) -> None:
    """One legend for the lines of an axes and its twin, in a row above the
    plot: inside, ``loc="best"`` weighs only the first axes' lines and lands on the twin's."""
    ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.01),
              ncols=min(len(lines), 6), frameon=False, borderaxespad=0, handlelength=1.5, columnspacing=1.0)


def training_curves(log: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Plot every numeric column of a training log against the epoch.

    Parameters
    ----------
    log : DataFrame (or anything ``pd.DataFrame`` accepts, e.g. a list of dicts)
        One row per epoch; an ``epoch`` column is used as x when present
        (else the row number). Columns whose name contains ``loss`` go on the
        left axis, all other numeric columns (accuracies, UA, WA ...) on a
        second y axis at the right. Columns with ``val`` in the name are dashed.
    ax : Axes, optional

    Returns
    -------
    Axes
        The left (loss) axes; the right one, if any, is its twin.
    """
    log = pd.DataFrame(log)
    x = log["epoch"].to_numpy() if "epoch" in log.columns else np.arange(1, len(log) + 1)
    numeric = [c for c in log.select_dtypes("number").columns
               if c not in ("epoch", *SCHEDULE_COLUMNS) and log[c].notna().any()]
    if not numeric:
        raise ValueError(f"no numeric columns to plot besides 'epoch' (columns: {list(log.columns)})")
    if ax is None:
        ax = Figure(figsize=(7, 4), layout="constrained").add_subplot()
    losses = [c for c in numeric if "loss" in str(c).lower()]
    others = [c for c in numeric if c not in losses]
    left_cols, right_cols = (losses, others) if losses else (others, [])
    right = ax.twinx() if right_cols else None
    colors = series_colors(numeric)
    lines = []
    for axis, cols in ((ax, left_cols), (right, right_cols)):
        for col in cols:
            style = "--" if "val" in str(col).lower() else "-"
            lines += axis.plot(x, log[col].to_numpy(dtype=float), style, marker=".", color=colors[numeric.index(col)], label=str(col))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_ylabel("loss" if losses else "value")
    if right is not None:
        right.set_ylabel("accuracy / metric")
    _legend_above(ax, lines)
    return ax


def schedule_curves(log: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """The learning rate (left axis) and the seconds per epoch (right axis)
    of a training or search log, apart from the metrics they would flatten."""
    log = pd.DataFrame(log)
    x = log["epoch"].to_numpy() if "epoch" in log.columns else np.arange(1, len(log) + 1)
    if ax is None:
        ax = Figure(figsize=(4, 3), layout="constrained").add_subplot()
    lines = []
    if "lr" in log:
        lines += ax.plot(x, log["lr"].to_numpy(dtype=float), marker=".", color="#1f77b4", label="lr")
        ax.set_ylabel("learning rate")
    if "seconds" in log:
        right = ax.twinx()
        lines += right.plot(x, log["seconds"].to_numpy(dtype=float), marker=".", color="#7f7f7f", label="seconds")
        right.set_ylabel("seconds per epoch")
        right.set_ylim(bottom=0)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if lines:
        _legend_above(ax, lines)
    return ax


def confusion_matrix_figure(
    matrix: np.ndarray, class_names: Sequence[str], ax: Axes | None = None, normalize: bool = True
) -> Figure:
    """Draw a confusion matrix (rows: true class, columns: predicted).

    Parameters
    ----------
    matrix : ndarray (n_classes, n_classes)
        Counts.
    class_names : sequence of str
    ax : Axes, optional
    normalize : bool
        Show each row as proportions (recall on the diagonal); the title then
        gives the unweighted accuracy (mean recall).

    Returns
    -------
    Figure
        The figure holding the axes.
    """
    counts = np.asarray(matrix, dtype=float)
    k = len(class_names)
    if counts.shape != (k, k):
        raise ValueError(f"matrix shape {counts.shape} does not fit {k} classes")
    if ax is None:
        ax = Figure(figsize=(1.2 + 0.9 * k, 1.0 + 0.8 * k), layout="constrained").add_subplot()
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        shown = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        vmax = 1.0
    else:
        shown = counts
        vmax = max(float(counts.max(initial=0.0)), 1.0)
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax)
    for (r, c), value in np.ndenumerate(shown):
        text = f"{value:.2f}" if normalize else f"{int(round(value))}"
        ax.text(c, r, text, ha="center", va="center", fontsize=9, color="white" if value > 0.5 * vmax else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if normalize:
        ua = float(np.mean(np.diag(shown)[counts.sum(axis=1) > 0])) if counts.sum() > 0 else 0.0
        ax.set_title(f"UA = {ua:.3f}")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax.figure

