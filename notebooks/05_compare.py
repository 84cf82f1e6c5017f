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
# # 05 · Comparing the found architectures with the baselines
#
# *Cost of Run All:* on a 2-core CPU, about 3 s; on a GPU, the same (tables and
# pictures only). Measured in JupyterLab by `make browser-test`
# (docs/benchmarks.md).
#
# Every run of an experiment grid (corpus x search scope or baseline x fold x
# seed) left a folder with its metrics. Here they become the paper's tables:
# UA and WA as **mean ± standard deviation over the speaker-independent
# folds** (and seeds), with parameter counts. A large standard deviation means
# the result depends strongly on which speakers were held out -- look at the
# per-fold numbers before trusting a mean.
#
# Then the question a NAS kit must answer honestly: **did the search find
# something better than what you would otherwise use?** Controls answer it:
# `random` (a genome drawn uniformly from the same search space, retrained
# with the same recipe), `random_search` when the grid ran it (the best of 4
# such genomes by validation UA) and `classical` (utterance statistics and a
# logistic regression). Runs of two models on the same fold and seed are compared
# *pairwise*: the mean of their UA differences with a bootstrap 95 %
# confidence interval, and a Wilcoxon signed-rank test. A difference whose
# interval straddles 0 is not a result, however good the mean looks.

# %% tags=["parameters"]
# Parameters (papermill overrides these)
results_dir = None  # None: $EMOKIT_RESULTS, else the checkout's results/
baselines = ["cnn", "cnn_lstm", "cnn_lstm_att"]
controls = ["random", "random_search", "classical"]
scopes = ["emodarts", "lstm", "lstm_att", "rnn", "rnn_att"]

# %%
# %matplotlib inline
from pathlib import Path
from IPython.display import Markdown, display

from emokit.metrics import LIKELY_CAUSES
from emokit.paths import results_root
from emokit.results import collect, export_table, per_fold_table, summary_table
from emokit.search.genotype import Genome
from emokit.stats import agreement_across_seeds, paired_comparisons, search_helped
from emokit.viz import plot_op_frequency
from emokit.viz.results import confusion_grid, ua_per_fold_figure, ua_std_scatter

results_dir = results_dir or str(results_root())
results = collect(results_dir)
shown = results.assign(**{"UA %": (100 * results["ua"]).round(2), "WA %": (100 * results["wa"]).round(2)})
display(shown[["corpus", "name", "fold", "seed", "status", "UA %", "WA %", "parameters"]])
failed = results[results["status"] != "done"]
if len(failed):
    display(Markdown(f"**{len(failed)} runs not finished** (see their run.json):"))
    display(failed[["corpus", "name", "fold", "seed", "status", "error"]])
suspect = results[results["suspect"].notna()] if "suspect" in results else results.iloc[:0]
if len(suspect):  # below chance: no verdict below is drawn from their pairs
    display(Markdown(f"**{len(suspect)} runs scored significantly below chance** (suspect; likely causes: "
                     f"{LIKELY_CAUSES}):"))
    display(suspect[["corpus", "name", "fold", "seed", "suspect"]])

# %% [markdown]
# ## emoDARTS vs the controls and the baselines (the paper's Table 4) and the restricted scopes (Table 7)

# %%
tables = Path(results_dir) / "tables"
main = summary_table(results, names=["emodarts"] + controls + baselines)
display(main.drop(columns=["ua_mean", "ua_std"]))
export_table(main, tables / "table4_emodarts_vs_baselines")
scoped = summary_table(results, names=scopes)
display(scoped.drop(columns=["ua_mean", "ua_std"]))
export_table(scoped, tables / "table7_scopes")
print("written:", sorted(p.name for p in tables.iterdir()))

# %% [markdown]
# ## Did the search help? Paired differences of UA (percentage points)
#
# Each row compares emoDARTS with another model on the fold x seed runs both
# finished: `mean` is the mean UA difference, `ci_low` / `ci_high` its
# bootstrap 95 % interval, `p` the Wilcoxon signed-rank p-value, `wins` how
# many paired runs emoDARTS won. The seeds of one fold share its test
# speakers, so they are not independent evidence: `p_folds` tests the
# differences averaged per fold over the `folds` (a t-test), and a verdict of
# "beats" or "worse" needs both p-values below 0.05. The "best baseline" is
# the hand-designed model with the highest mean UA on that corpus.
#
# When the search did not help, two questions come next. Was there anything
# to find? `studies/space_signal.py` retrains random genomes of the space
# under several seeds and tests whether genomes differ more than seeds do
# (`emokit.stats.genome_signal`). Did the supernet see it? The same script
# ranks the genomes by their one-shot loss (`emokit.search.one_shot`) against
# their retrained accuracy; notebook 02 shows each search's discretisation gap.
# And does a genome that wins on one fold's speakers win on the others'?
# `studies/genome_transfer.py` retrains the same genomes on every fold
# (`emokit.stats.genome_transfer`): only that common part is a search's to find.

# %%
comparisons = paired_comparisons(results)
export_table(comparisons.drop(columns="verdict"), tables / "paired_differences")
display(comparisons.drop(columns="verdict").round(3))
for corpus in dict.fromkeys(results["corpus"]):
    display(Markdown(f"**{search_helped(comparisons, corpus)}**"))
for sentence in comparisons["verdict"]:
    display(Markdown(f"- {sentence}"))

# %% [markdown]
# ## Across corpora: does a model, or a searched genome, carry over?
#
# Only for grids run with `test_corpora` (e.g. `emokit run --corpora emodb emovo
# --test-corpora emodb emovo --baselines random`). The matrix holds the mean
# test UA of each model, **trained on** the row's corpus and **tested on** the
# column's: the diagonal is the usual test on unseen speakers of the same
# corpus, the rest scores the same trained networks on *all* of another
# corpus (its speakers normalised on their own data where the preset does so).
# The classical control is scored the same way, on its functionals.
#
# The second question is about the genome, not the weights: the genome
# searched on corpus A is retrained from scratch on corpus B's folds
# (`emodarts_from_A`) and compared, pairwise as above, with random genomes of
# the same space retrained on B (`random`). If the search found something
# about speech emotion rather than about A, its genome should beat them.

# %%
from emokit.cross_corpus import cross_matrix, cross_table, transfer_comparisons, transfer_sentence
from emokit.viz.results import cross_corpus_figure

cross = cross_table(results_dir)
transfer = transfer_comparisons(results)
if len(cross):
    matrices = {name: cross_matrix(results, cross, name) for name in dict.fromkeys(cross["name"])}
    for name, matrix in matrices.items():
        display(Markdown(f"**{name}**: mean test UA %, trained on (rows) x tested on (columns)"), matrix.round(2))
    display(cross_corpus_figure(matrices))
if len(transfer):
    export_table(transfer.drop(columns="verdict"), tables / "genome_transfer")
    display(transfer.drop(columns="verdict").round(3))
    for corpus, name in dict.fromkeys(zip(transfer["corpus"], transfer["model"])):
        display(Markdown(f"**{transfer_sentence(transfer, name, corpus)}**"))
if not len(cross) and not len(transfer):
    display(Markdown("No cross-corpus runs in this results folder (a grid without `test_corpora`)."))

# %% [markdown]
# ## Do the seeds agree on a genome?
#
# For every fold searched with several seeds: the share of kept edges (node,
# input) that the genomes of two seeds have in common (`edges`), and the share
# that also carry the same op (`ops`), averaged over pairs of seeds and cell
# types. For scale: random genomes of the emoDARTS space agree on 67 % of
# edges and 7 % of ops with the paper's cells, 84 % and 9 % with the quick
# preset's 2-node cells (whose first node has no choice of inputs), so `ops`
# is the telling number.

# %%
agreement = agreement_across_seeds(results)
display(agreement.round(3) if len(agreement) else Markdown("Only one seed per fold: nothing to compare."))

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
