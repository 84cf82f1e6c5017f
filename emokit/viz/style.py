"""Colours shared by every picture."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from emokit.search.genotype import CELL_TYPES

#: Colour of each op family (see :func:`~emokit.search.genotype.op_family`).
FAMILY_COLORS: dict[str, str] = {
    "convolution": "#d62728",
    "pooling": "#1f77b4",
    "attention": "#9467bd",
    "recurrent": "#2ca02c",
    "identity": "#ff7f0e",
    "none": "#bbbbbb",
}


def series_colors(names: Sequence[str]) -> list:
    """One distinct colour per name (tab10, or tab20 beyond ten)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(len(names))]


def check_cell(cell: str) -> None:
    if cell not in CELL_TYPES:
        raise KeyError(f"unknown cell type {cell!r}; known: {', '.join(CELL_TYPES)}")


def pick(value, cell: str):
    """``value[cell]`` when ``value`` is a per-cell mapping, else ``value``."""
    if isinstance(value, Mapping):
        if cell not in value:
            raise KeyError(f"no entry for cell type {cell!r}; have {', '.join(map(str, value))}")
        return value[cell]
    return value
