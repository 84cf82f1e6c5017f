# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Looking at the genome
#
# *Cost of Run All:* on a 2-core CPU, about 4 s; on a GPU, the same (nothing to
# compute). Measured in JupyterLab by `make browser-test` (docs/benchmarks.md).
#
# A search ends with a **genome**: for every cell type (normal CNN cell,
# reduction CNN cell, SeqNN cell) a small graph in which each intermediate node
# keeps its two strongest incoming edges, each with one operation.
#
# How to read a cell graph:
#
# - `c_{k-2}` and `c_{k-1}` are the cell's inputs, the outputs of the two
#   previous cells; `0, 1, ...` are intermediate nodes; `c_{k}` is the cell's
#   output (CNN cells concatenate their nodes, SeqNN cells average them);
# - each edge is an operation, coloured by family (convolution, pooling,
#   recurrent, attention, identity); the number under the name is the softmax
#   weight that op had on that edge at the end of the search.
#
# The heatmaps show every weight the search learnt, the line plots how they
# moved epoch by epoch, and -- across several folds or seeds -- how often each
# op was chosen: a stable search picks similar ops every time.

# %% tags=["parameters"]
# Parameters (papermill overrides these)
run_dirs = None  # search folders; None: the default of notebook 02 (EmoDB, emodarts, fold 0, seed 0)

# %%
# %matplotlib inline
from pathlib import Path
from IPython.display import Image, display

from emokit.paths import run_folder
from emokit.search.genotype import Genome, collapse_report
from emokit.viz import (DOT_INSTALL_HINT, cell_graph, dot_available, genome_figure, load_alpha_history,
                        op_frequency, plot_op_frequency, save_search_figures)

run_dirs = run_dirs or [str(run_folder(None, "emodb", "emodarts", 0, 0) / "search")]
if not dot_available():  # only the cell graphs need it; everything else is drawn
    print(f"No cell graphs: {DOT_INSTALL_HINT}")

# %% [markdown]
# ## The genome of the first run, as text and as cell graphs

# %%
first = run_dirs[0]
genome = Genome.load(first)
print(genome)
for message in collapse_report(genome):
    print("collapse:", message)
history, ops = load_alpha_history(first)
final = {cell: h[-1] for cell, h in history.items()}
if dot_available():
    display(genome_figure(genome, final, ops))

# %%
if dot_available():
    display(cell_graph(genome, "seq", final.get("seq"), ops.get("seq")) if genome.seq else cell_graph(genome, "normal"))

# %% [markdown]
# ## Every picture of every run, saved next to the run (`figures/`)

# %%
for run_dir in run_dirs:
    saved = save_search_figures(run_dir)
    print(run_dir, "->", ", ".join(sorted(p.name for p in saved.values())))
display(Image(filename=str(Path(first) / "figures" / "alpha_heatmaps.png")))
for cell in history:
    display(Image(filename=str(Path(first) / "figures" / f"alpha_evolution_{cell}.png")))

# %% [markdown]
# ## How stable is the search? Op frequency across runs

# %%
genomes = [Genome.load(d) for d in run_dirs]
frequency = op_frequency(genomes)
display(frequency)
fig = plot_op_frequency(frequency)
for run_dir in run_dirs:
    fig.savefig(Path(run_dir) / "figures" / "op_frequency.png", dpi=90, bbox_inches="tight")
fig
