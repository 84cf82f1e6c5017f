# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Comparing the found architectures with the baselines
#
# Every run of an experiment grid (corpus x search scope or baseline x fold x
# seed) left a folder with its metrics. Here they become the paper's tables:
# UA and WA as **mean ± standard deviation over the speaker-independent
# folds** (and seeds), with parameter counts. A large standard deviation means
# the result depends strongly on which speakers were held out -- look at the
# per-fold numbers before trusting a mean.

# %% tags=["parameters"]
# Parameters (papermill overrides these)
results_dir = "results"
baselines = ["cnn", "cnn_lstm", "cnn_lstm_att"]
scopes = ["emodarts", "lstm", "lstm_att", "rnn", "rnn_att"]

# %%
# %matplotlib inline
from pathlib import Path
from IPython.display import Markdown, display

from emokit.results import collect, export_table, per_fold_table, summary_table
from emokit.viz.results import confusion_grid, ua_per_fold_figure, ua_std_scatter
from emokit.search.genotype import Genome
from emokit.viz import plot_op_frequency

results = collect(results_dir)
display(results[["corpus", "name", "fold", "seed", "status", "ua", "wa", "parameters"]])
failed = results[results["status"] != "done"]
if len(failed):
    display(Markdown(f"**{len(failed)} runs not finished** (see their run.json):"))
    display(failed[["corpus", "name", "fold", "seed", "status", "error"]])

# %% [markdown]
# ## emoDARTS vs the baselines (the paper's Table 4) and the restricted scopes (Table 7)

# %%
tables = Path(results_dir) / "tables"
main = summary_table(results, names=["emodarts"] + baselines)
display(main.drop(columns=["ua_mean", "ua_std"]))
export_table(main, tables / "table4_emodarts_vs_baselines")
scoped = summary_table(results, names=scopes)
display(scoped.drop(columns=["ua_mean", "ua_std"]))
export_table(scoped, tables / "table7_scopes")
print("written:", sorted(p.name for p in tables.iterdir()))

# %% [markdown]
# ## UA per fold

# %%
display(per_fold_table(results))
ua_per_fold_figure(results)

# %% [markdown]
# ## Mean UA against its spread over folds (the paper's Figure 7; marker area: parameters)

# %%
ua_std_scatter(summary_table(results))

# %% [markdown]
# ## Confusion matrices, summed over folds

# %%
confusion_grid(results)

# %% [markdown]
# ## Which ops did the searches choose?

# %%
genomes = [Genome.from_json(g) for g in results["genome"].dropna()]
plot_op_frequency(genomes) if genomes else Markdown("No search runs in this results folder.")
