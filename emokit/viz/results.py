"""Pictures of a results folder: UA per fold, the paper's Figure 7 and summed confusions."""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from emokit.results import summed_confusions
from emokit.viz.training import confusion_matrix_figure


def ua_std_scatter(table: pd.DataFrame) -> Figure:
    """The paper's Figure 7: mean UA vs its std over folds, marker area by
    parameter count, one panel per corpus."""
    corpora = list(dict.fromkeys(table["corpus"]))
    fig = Figure(figsize=(5 * max(1, len(corpora)), 4), layout="constrained")
    axes = fig.subplots(1, max(1, len(corpora)), squeeze=False)[0]
    largest = max(float(table["parameters"].max() or 1), 1.0)
    for ax, corpus in zip(axes, corpora):
        part = table[table["corpus"] == corpus]
        sizes = 40 + 800 * part["parameters"].fillna(0).astype(float) / largest
        ax.scatter(part["ua_std"], part["ua_mean"], s=sizes, alpha=0.6)
        for _, row in part.iterrows():
            ax.annotate(row["model"], (row["ua_std"], row["ua_mean"]), fontsize=8, ha="center", va="bottom")
        ax.set(title=corpus, xlabel="std of UA over folds (%)", ylabel="mean UA (%)")
        ax.grid(alpha=0.3)
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
