"""Pictures of a results folder: UA per fold, the paper's Figure 7 and summed confusions."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from emokit.results import summed_confusions
from emokit.viz.style import series_colors
from emokit.viz.training import confusion_matrix_figure


def _marker_area(parameters, largest: float):
    """Marker area (points^2) for a parameter count: area grows with the count."""
    return 30 + 600 * np.sqrt(np.asarray(parameters, dtype=float) / largest)


def _weights_label(count: float) -> str:
    return f"{count / 1e6:.1f} M weights" if count >= 1e6 else (
        f"{count / 1e3:.0f} K weights" if count >= 1e3 else f"{count:.0f} weights")


def ua_std_scatter(table: pd.DataFrame) -> Figure:
    """The paper's Figure 7: mean UA vs its standard deviation over the runs,
    one colour per model (named in the legend, so no label sits on a marker),
    marker area by parameter count (with a size key), one panel per corpus."""
    corpora = list(dict.fromkeys(table["corpus"]))
    models = list(dict.fromkeys(table["model"]))
    colours = dict(zip(models, series_colors(models)))
    fig = Figure(figsize=(4.2 * max(1, len(corpora)) + 2.2, 4), layout="constrained")
    axes = fig.subplots(1, max(1, len(corpora)), squeeze=False)[0]
    largest = max(float(table["parameters"].max() or 1), 1.0)
    for ax, corpus in zip(axes, corpora):
        part = table[table["corpus"] == corpus].sort_values("parameters", ascending=False)
        for _, row in part.iterrows():  # the largest first: a small marker stays visible on top
            ax.scatter(row["ua_std"], row["ua_mean"], s=_marker_area(row["parameters"] or 0, largest),
                       color=colours[row["model"]], alpha=0.7, edgecolors="black", linewidths=0.5)
        ax.set(title=corpus, xlabel="std of UA over runs (%)", ylabel="mean UA (%)")
        ax.margins(0.2)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], ls="", marker="o", color=colours[m], markersize=8, label=m) for m in models]
    counts = table["parameters"].dropna().astype(float)
    keys = sorted({float(v) for v in np.quantile(counts, [0, 0.5, 1])}) if len(counts) else []
    handles += [Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor="gray",
                       markersize=float(np.sqrt(_marker_area(k, largest))), label=_weights_label(k)) for k in keys]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, labelspacing=1.8, handletextpad=1.6,
               borderpad=1.0, frameon=False, title="model / weights", title_fontsize=8)
    return fig


def ua_per_fold_figure(results: pd.DataFrame) -> Figure:
    """UA of every fold for each model, one panel per corpus."""
    done = results[results["status"] == "done"]
    corpora = list(dict.fromkeys(done["corpus"]))
    fig = Figure(figsize=(5 * max(1, len(corpora)), 3.5), layout="constrained")
    axes = fig.subplots(1, max(1, len(corpora)), squeeze=False)[0]
    for ax, corpus in zip(axes, corpora):
        part = done[done["corpus"] == corpus]
        for name, group in part.groupby("name", sort=False):
            means = group.groupby("fold")["ua"].mean() * 100
            ax.plot(means.index, means.values, marker="o", label=name)
        ax.set(title=corpus, xlabel="fold", ylabel="UA (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def confusion_grid(results: pd.DataFrame) -> Figure:
    """The summed confusion matrices of every model side by side."""
    matrices = summed_confusions(results)
    fig = Figure(figsize=(3.6 * max(1, len(matrices)), 3.4), layout="constrained")
    axes = fig.subplots(1, max(1, len(matrices)), squeeze=False)[0]
    for ax, ((corpus, name), (matrix, classes)) in zip(axes, matrices.items()):
        confusion_matrix_figure(matrix, classes, ax=ax)
        ax.set_title(f"{corpus}: {name}", fontsize=9)
    return fig


def genome_spread_figure(retrained: pd.DataFrame, one_shot: pd.DataFrame | None = None) -> Figure:
    """Is there anything to find? Left: test UA of each genome retrained with
    several seeds (a dot per seed, a bar at the mean), genomes ordered by
    their mean, searched genomes in their own colour. Right (with
    ``one_shot``): each supernet's one-shot loss of a genome against the
    genome's mean validation UA trained on its own.

    Parameters
    ----------
    retrained : DataFrame with genome, kind ("searched" / "random"), seed, ua, val_ua (in [0, 1])
    one_shot : DataFrame with supernet, genome, loss (a "(supernet)" row per supernet is left out)
    """
    kinds = {"random": "#7f7f7f", "searched": "#d62728"}
    means = retrained.groupby(["genome", "kind"])[["ua", "val_ua"]].mean().reset_index().sort_values("ua")
    fig = Figure(figsize=(11 if one_shot is not None else 6.5, 4), layout="constrained")
    axes = fig.subplots(1, 2 if one_shot is not None else 1, squeeze=False)[0]
    ax = axes[0]
    for x, row in enumerate(means.itertuples()):
        runs = retrained[retrained["genome"] == row.genome]
        ax.scatter(np.full(len(runs), x), runs["ua"] * 100, s=18, color=kinds[row.kind], alpha=0.6)
        ax.plot([x - 0.3, x + 0.3], [row.ua * 100] * 2, color=kinds[row.kind], lw=2)
    ax.set_xticks(range(len(means)), means["genome"], rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="test UA (%)", title="genomes retrained with several seeds")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=[Line2D([], [], ls="", marker="o", color=c, label=k) for k, c in kinds.items()], fontsize=8)
    if one_shot is not None:
        ax = axes[1]
        scored = one_shot[one_shot["genome"] != "(supernet)"].merge(means, on="genome")
        supernets = list(dict.fromkeys(scored["supernet"]))
        for supernet, colour in zip(supernets, series_colors(supernets)):
            part = scored[scored["supernet"] == supernet]
            for kind, marker in (("random", "o"), ("searched", "*")):
                rows = part[part["kind"] == kind]
                ax.scatter(rows["loss"], rows["val_ua"] * 100, color=colour, marker=marker,
                           s=90 if marker == "*" else 30, label=f"{supernet}, {kind}")
        ax.set(xlabel="one-shot loss on the alpha half (nats)", ylabel="mean validation UA (%)",
               title="does the supernet rank genomes as retraining does?")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return fig


def genome_fold_figure(runs: pd.DataFrame) -> Figure:
    """Do genomes keep their order from fold to fold? One line per genome
    through its mean UA (over seeds) on each fold, test UA left and
    validation UA (held-out utterances of the training speakers) right:
    parallel lines are a genome effect that carries to new speakers,
    crossing lines one that does not.

    Parameters
    ----------
    runs : DataFrame with genome, fold, seed, ua and val_ua (in [0, 1])
    """
    genomes = sorted(runs["genome"].unique())
    folds = sorted(runs["fold"].unique())
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)  # own scales: validation UA sits far above test UA on some corpora
    for ax, value, title in zip(axes, ("ua", "val_ua"), ("test speakers", "validation utterances")):
        means = runs.groupby(["genome", "fold"])[value].mean().unstack().reindex(index=genomes, columns=folds) * 100
        for genome, colour in zip(genomes, series_colors(genomes)):
            ax.plot(range(len(folds)), means.loc[genome], marker="o", color=colour, label=f"genome {genome}")
        ax.set_xticks(range(len(folds)), [f"fold {f}" for f in folds])
        ax.set(title=f"mean UA over seeds, {title}", ylabel="UA (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def cross_corpus_figure(matrices: dict[str, pd.DataFrame]) -> Figure:
    """One heatmap of mean test UA (%) per model: rows the corpus it was
    trained on, columns the corpus it was tested on (the diagonal is the
    within-corpus test; :func:`emokit.cross_corpus.cross_matrix`). Each cell
    is written out; a missing pair is blank."""
    names = list(matrices)
    fig = Figure(figsize=(3.2 * max(1, len(names)) + 0.8, 3.4), layout="constrained")
    axes = fig.subplots(1, max(1, len(names)), squeeze=False)[0]
    image = None
    for ax, name in zip(axes, names):
        matrix = matrices[name]
        values = matrix.to_numpy(dtype=float)
        image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=25, vmax=100)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=10,
                        color="white" if value < 70 else "black")
        ax.set_xticks(range(len(matrix.columns)), list(matrix.columns))
        ax.set_yticks(range(len(matrix.index)), list(matrix.index))
        ax.set(title=name, xlabel="tested on", ylabel="trained on")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="mean test UA (%)", shrink=0.9)
    return fig
