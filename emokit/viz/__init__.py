"""Pictures, by subject. Every matplotlib picture is a
:class:`~matplotlib.figure.Figure` built without pyplot (nothing leaks when
made in a loop); cell graphs are :class:`graphviz.Digraph` objects.

- :mod:`emokit.viz.corpus`: classes, speakers, a waveform and its map (notebook 01)
- :mod:`emokit.viz.alphas`: alpha heatmaps, their evolution, op frequency (notebooks 02, 03)
- :mod:`emokit.viz.selection`: the scores of a genome read by perturbation (notebook 02)
- :mod:`emokit.viz.cells`: cell graphs of a genome (notebook 03)
- :mod:`emokit.viz.training`: training curves, confusion matrices (notebook 04)
- :mod:`emokit.viz.results`: UA per fold, Figure 7, summed confusions (notebook 05)
- :mod:`emokit.viz.live`: the same pictures redrawn every epoch in a notebook
"""
from emokit.viz.alphas import (alpha_evolution, alpha_heatmap, alpha_heatmaps, load_alpha_history, op_frequency,
                               plot_op_frequency, save_search_figures)
from emokit.viz.cells import DOT_INSTALL_HINT, cell_graph, dot_available, genome_figure, require_dot, save_graph
from emokit.viz.style import FAMILY_COLORS
from emokit.viz.training import confusion_matrix_figure, training_curves

__all__ = ["FAMILY_COLORS", "DOT_INSTALL_HINT", "dot_available", "require_dot", "cell_graph", "genome_figure", "save_graph",
           "load_alpha_history", "alpha_heatmap", "alpha_heatmaps", "alpha_evolution", "op_frequency",
           "plot_op_frequency", "save_search_figures", "training_curves", "confusion_matrix_figure"]
