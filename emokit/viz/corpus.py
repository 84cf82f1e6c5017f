"""Pictures of a corpus and its feature maps (notebook 01).

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot (nothing leaks when made in a loop). In Jupyter show one with
``display(fig)`` or as a cell's last value.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from emokit.data import CANONICAL_LABELS
from emokit.features import FeatureConfig

__all__ = ["LABEL_COLORS", "class_counts_figure", "speaker_counts_figure", "waveform_and_map_figure"]

#: One colour per canonical label, shared by all pictures.
LABEL_COLORS: dict[str, str] = dict(zip(
    CANONICAL_LABELS,
    ["#d62728", "#ff7f0e", "#1f77b4", "#7f7f7f", "#9467bd", "#8c564b", "#bcbd22",
     "#17becf", "#2ca02c", "#e377c2", "#393b79", "#e7ba52", "#c7c7c7"],
))


def _labels_in_order(labels: pd.Series) -> list[str]:
    present = set(labels)
    return [c for c in CANONICAL_LABELS if c in present] + sorted(present - set(CANONICAL_LABELS))


def _color(label: str) -> str:
    return LABEL_COLORS.get(label, "#555555")


def class_counts_figure(manifest: pd.DataFrame) -> Figure:
    """Bar chart: utterances per emotion class (canonical order)."""
    if len(manifest) == 0:
        raise ValueError("the manifest is empty: nothing to count")
    order = _labels_in_order(manifest["label"])
    counts = manifest["label"].value_counts().reindex(order)
    fig = Figure(figsize=(1.2 + 0.8 * len(order), 3.2), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.bar(order, counts.to_numpy(), color=[_color(c) for c in order])
    ax.bar_label(bars, fontsize=8)
    ax.set_ylabel("utterances")
    corpora = ", ".join(sorted(manifest["corpus"].astype(str).unique())) if "corpus" in manifest else ""
    ax.set_title(f"{corpora}: {len(manifest)} utterances per class".strip(": "))
    ax.tick_params(axis="x", rotation=30)
    return fig


def speaker_counts_figure(manifest: pd.DataFrame) -> Figure:
    """Stacked bars: utterances per speaker, split by emotion class.

    The x labels carry the gender (``m`` / ``f``) when the manifest has it.
    """
    if len(manifest) == 0:
        raise ValueError("the manifest is empty: nothing to count")
    order = _labels_in_order(manifest["label"])
    table = pd.crosstab(manifest["speaker"].astype(str), manifest["label"]).reindex(columns=order, fill_value=0)
    names = list(table.index)
    if "gender" in manifest:
        genders = manifest.assign(speaker=manifest["speaker"].astype(str)).groupby("speaker")["gender"].first()
        names = [f"{s} ({genders[s][0]})" if genders[s] in ("male", "female") else s for s in table.index]
    fig = Figure(figsize=(1.5 + 0.45 * len(names), 3.4), layout="constrained")
    ax = fig.add_subplot()
    bottom = np.zeros(len(table))
    for label in order:
        values = table[label].to_numpy()
        ax.bar(names, values, bottom=bottom, color=_color(label), label=label)
        bottom += values
    ax.set_ylabel("utterances")
    ax.set_xlabel("speaker")
    ax.set_title(f"{len(names)} speakers")
    ax.tick_params(axis="x", rotation=90 if len(names) > 12 else 45)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def waveform_and_map_figure(audio: np.ndarray, fmap: np.ndarray, config: FeatureConfig = FeatureConfig(),
                            title: str = "") -> Figure:
    """An utterance's waveform above its feature map, on one time axis.

    Parameters
    ----------
    audio : ndarray (config.n_samples,)
        From :func:`emokit.features.load_audio` (already padded / cut).
    fmap : ndarray (rows, columns) = ``config.shape``
        From :func:`emokit.features.feature_map`.
    config : FeatureConfig used for both.
    title : str
    """
    audio = np.asarray(audio)
    fmap = np.asarray(fmap)
    if fmap.ndim != 2:
        raise ValueError(f"fmap must be 2-D (rows, columns), got shape {fmap.shape}; pass features[i, 0]")
    seconds = len(audio) / config.sample_rate
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    wave_ax, map_ax = fig.subplots(2, 1, sharex=True, height_ratios=[1, 2])
    wave_ax.plot(np.arange(len(audio)) / config.sample_rate, audio, linewidth=0.4, color="#1f77b4")
    wave_ax.set_ylabel("amplitude")
    wave_ax.set_title(title)
    # Columns span the pooled frames; padding shows as a flat stretch at the end.
    map_seconds = fmap.shape[1] * config.time_pool * config.hop_length / config.sample_rate
    # Robust colour range: MFCC 0 (overall loudness) is hundreds below the
    # rest in silence and would wash out every other coefficient.
    vmin, vmax = np.percentile(fmap, [1, 99]) if fmap.size else (0.0, 1.0)
    image = map_ax.imshow(fmap, aspect="auto", origin="lower", cmap="magma", vmin=vmin, vmax=max(vmax, vmin + 1e-6),
                          extent=(0.0, map_seconds, -0.5, fmap.shape[0] - 0.5), interpolation="nearest")
    map_ax.set_xlim(0.0, max(seconds, map_seconds))
    map_ax.set_xlabel("time (s)")
    map_ax.set_ylabel("MFCC index" if config.kind == "mfcc" else "mel band")
    # Beside both axes, so the waveform and the map keep the same width.
    fig.colorbar(image, ax=[wave_ax, map_ax], label="value (1-99 % range)" if config.kind == "mfcc" else "dB (1-99 % range)",
                 pad=0.01, shrink=0.66, anchor=(0.0, 0.0), extend="both")
    return fig
