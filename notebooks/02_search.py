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
# # 02 · Searching an architecture with DARTS
#
# *Cost of Run All:* on a 2-core CPU, about 47 s for the quick preset's search
# of one fold; the `paper` preset's search about 8.4 h per fold (projected from
# measured epochs); on a GPU, not measured with the quick preset; the `paper`
# preset's search of one EmoDB fold took 6 min on an NVIDIA H200. Measured in
# JupyterLab by `make browser-test` (docs/benchmarks.md).
#
# Instead of designing a network by hand, **DARTS** (differentiable architecture
# search) lets gradient descent choose it. The network is built from *cells*. A
# cell is a small graph: it reads the outputs of the two previous cells,
# $c_{k-2}$ and $c_{k-1}$, computes a few intermediate nodes, and outputs their
# combination. Every edge $(i \to j)$ of the graph may carry one of many
# candidate operations $o \in \mathcal{O}$ (a convolution, a pooling, an LSTM,
# an identity, *none*...).
#
# **Continuous relaxation.** During the search every edge carries *all*
# candidates at once, mixed by a softmax over architecture weights
# $\alpha^{(i,j)}$:
#
# $$\bar o^{(i,j)}(x) = \sum_{o \in \mathcal{O}} \frac{\exp \alpha_o^{(i,j)}}{\sum_{o'} \exp \alpha_{o'}^{(i,j)}}\; o(x), \qquad x^{(j)} = \sum_{i<j} \bar o^{(i,j)}\big(x^{(i)}\big).$$
#
# This big network is the **supernet**. emoDARTS builds it from a CNN component
# (normal and reduction cells over the MFCC map) followed by a sequential
# component (SeqNN cells of LSTM/RNN ops, with or without attention, running
# along the time axis), then a dense classifier. Both are searched **jointly**.
#
# **Bilevel optimisation.** The ordinary weights $w$ and the architecture
# weights $\alpha$ are trained on two different halves of the fold's *search*
# set:
#
# $$\min_\alpha \; \mathcal{L}_{val}\big(w^*(\alpha), \alpha\big) \quad \text{s.t.} \quad w^*(\alpha) = \arg\min_w \mathcal{L}_{train}(w, \alpha).$$
#
# Each step updates $\alpha$ with $\nabla_\alpha \mathcal{L}_{val}$ (first
# order; second order approximates $w^*$ by one virtual SGD step
# $w - \xi \nabla_w \mathcal{L}_{train}$), then $w$ with $\nabla_w
# \mathcal{L}_{train}$.
#
# By default the two halves share speakers: $\mathcal{L}_{val}$ is measured on
# other utterances of the voices $w$ trains on. The test, though, meets new
# voices. With `alpha_split="speakers"` the alpha half is every utterance of
# some search speakers and the weight half those of the others, so $\alpha$ is
# chosen for voices $w$ never saw.
#
# **Discretisation.** At the end, each node keeps its two strongest incoming
# edges, each with its strongest operation other than *none*:
# $o^{(i,j)*} = \arg\max_{o \neq none} \alpha_o^{(i,j)}$. That discrete
# architecture is the **genome**; notebook 04 retrains it from scratch.
#
# The test speakers of the fold are never used here.

# %% [markdown]
# ## Parameters
#
# `space` holds fields of `emokit.search.supernet.SearchSpace` (what the
# supernet is: `scope` — the SeqNN op list of Table 6, `emodarts`, `lstm`,
# `lstm_att`, `rnn` or `rnn_att` —, `cnn_cells`, `cnn_nodes`, `seq_cells`,
# `seq_nodes`, `channels`, `seq_hidden`, `stem_stride`, `partial_channels` for
# PC-DARTS ...); `search` holds fields of `emokit.search.loop.SearchConfig`
# (how it is trained: `epochs`, `batch_size`, `alpha_lr`, `warmup_epochs`,
# `order` — first or second —, `alpha_split` — `utterances` or `speakers` —,
# `selection` — `alphas` or `perturbation` —,
# `gdas`, `precision`, `seed`, `device` ...). `preset` fills them (and the
# features and normalisation) as `emokit run` does: `"quick"`, emokit's small
# recipe for a CPU (a narrow 3 + 1-cell supernet, 15 epochs on 3 s log-mel
# maps), or `"paper"`, the paper's supernet and 300 epochs (a GPU's work); the
# dicts change single keys of it, e.g. `search = {"epochs": 30}`.

# %% tags=["parameters"]
# Parameters (papermill overrides these). The dicts hold fields of emokit's
# settings dataclasses; a key they do not have is an error listing the known ones.
corpus = "emodb"
data_root = None            # folder holding the corpora; None: $EMOKIT_DATA, else the checkout's data/
preset = "quick"            # or "paper"; the settings below change single keys of it
feature_dir = None          # feature cache of notebook 01; None: <results>/features
features = {}               # FeatureConfig fields; {}: the preset's maps
normalization = None        # "train" or "speaker" (each speaker standardised with their own statistics); None: the preset's
val_speakers = None         # 0: val is 15 % of the training speakers' utterances; n: all of n training speakers'; None: the preset's
fold = 0
space = {}                  # SearchSpace fields; {}: the preset's supernet (scope emodarts)
search = {}                 # SearchConfig fields; {}: the preset's search
run_dir = None              # None: <results>/runs/<corpus>/<scope>/fold<fold>-seed<seed>/search
resume = True
live = True                 # redraw the pictures in the notebook every epoch
estimate = True             # time one step and project the search first (a grid's runs skip it)
n_random_genomes = 5        # random genomes of the space scored beside the found one (one-shot losses)

# %%
# %matplotlib inline
from IPython.display import Markdown, display

from emokit.experiments import notebook_settings
from emokit.paths import results_root, run_folder
from emokit.pipeline import prepare_fold, search_fold, search_space_for
from emokit.search.budget import cost_advice, estimate_cost, format_cost
from emokit.search.genotype import COLLAPSE_REMEDIES, UNDECIDED_REMEDIES, random_genome
from emokit.search.loop import SearchConfig
from emokit.search.one_shot import one_shot_losses
from emokit.viz import alpha_evolution, load_alpha_history
from emokit.viz.live import LiveMonitor, alpha_slider
from emokit.viz.selection import load_selection, selection_heatmaps

settings = notebook_settings(preset, features=features, space=space, search=search, normalization=normalization,
                             val_speakers=val_speakers)
features, space, normalization, val_speakers = (settings[k] for k in ("features", "space", "normalization",
                                                                      "val_speakers"))
config = SearchConfig.from_dict(settings["search"])
feature_dir = feature_dir or str(results_root() / "features")
run_dir = run_dir or str(run_folder(None, corpus, space.get("scope", "emodarts"), fold, config.seed) / "search")
print(config)
print(f"run folder: {run_dir}")

# %% [markdown]
# ## The fold's data
#
# Features come from the cache of notebook 01. The normalisation statistics are
# fitted on the training speakers only; the search uses only the `search` role
# (70 % of the training speakers' utterances). With `normalization="speaker"`
# each speaker's maps are first standardised with that speaker's own statistics
# (no labels involved; for a test speaker, from their unlabelled audio), which
# removes much of the difference between voices.

# %%
data = prepare_fold(corpus, fold, data_root, features, feature_dir, normalization=normalization,
                    val_speakers=val_speakers)
print(f"fold {fold}: test speakers {data.fold.test_speakers}")
print({role: len(y) for role, y in data.y.items()})

# %% [markdown]
# ## Will it fit?
#
# The supernet holds every candidate op on every edge, so it is far bigger and
# slower than the network it will find. Before searching, one step is measured
# on the chosen device and the search time is projected (seconds: on a CPU the
# step is timed on 8 maps and scaled to the batch; the runs of a grid skip it,
# `estimate=False`). A search projected past 30 minutes on a CPU says so and
# names the faster ways.
#
# Memory is checked first, in every search: the activations autograd stores
# are counted on forward passes of 2 and 4 maps and scaled to the batch. With
# `recompute_edges="auto"` (the default) a step that would not fit in the free
# memory recomputes each CNN edge in the backward pass instead of storing its
# inside (the same search to float rounding, slower); one that fits neither
# way stops here with an error naming the batch size that would fit.
#
# On a GPU a step of a supernet is bound by launching thousands of small
# kernels. With `cuda_graphs="auto"` (the default) a first-order fp32 search
# records each step's two gradient computations once as CUDA graphs and
# replays them; the first replay of each is checked against the eager step.

# %%
search_space = search_space_for(data, space)  # classes and map shape from the data
print(search_space)
if estimate:
    batch = min(config.batch_size, len(data.y["search"]) // 2)
    cost = estimate_cost(search_space, config.replace(batch_size=batch), n_search=len(data.y["search"]))
    print(format_cost(cost))
    advice = cost_advice(cost)
    if advice:
        display(Markdown(f"**{advice}**"))

# %% [markdown]
# ## Search
#
# Every epoch the heatmaps show $\mathrm{softmax}(\alpha)$ per cell type
# (rows: edges "node k ← input i", columns: candidate ops; the strongest op of
# each edge is outlined), coloured as a multiple of the uniform weight
# $1/|\mathcal{O}|$ on a fixed scale: white is still undecided, red preferred,
# blue rejected. Below them, the losses and accuracies of the weight half and
# the alpha half, and beside those the learning rate and seconds per epoch. A checkpoint is written every epoch: re-running this cell
# after an interruption resumes where it stopped.

# %%
monitor = LiveMonitor(frames_dir=f"{run_dir}/frames", live=live)
result = search_fold(data, run_dir, search_space, config, meta={"corpus": corpus, "scope": search_space.scope},
                     resume=resume, callback=monitor)
print(result.genome)

# %% [markdown]
# ## Did the search collapse, or not decide?
#
# With many cells or nodes the SeqNN cells of emoDARTS tended to become all
# `skip_connect` (paper, section VI-B): the identity is easy to learn early and
# then starves the recurrent ops. emokit checks every cell of the genome.
#
# A search can also end before it has decided: if no op of a cell got clearly
# more than the uniform weight $1/|\mathcal{O}|$ (here: 1.25 times it), the
# genome's top-2 choice rests on near-ties that another seed, or mere rounding,
# would break differently. Short searches at the paper's $\alpha$ learning rate
# (3e-4) end like that; search longer or raise `alpha_lr`. The heatmaps above
# colour each weight relative to uniform, so an undecided cell looks pale.
#
# Three published remedies are `search` options:
#
# - **DARTS-** (`aux_skip`): every stride-1 edge gets an extra identity outside
#   the softmax, $\bar o^{(i,j)}(x) + \beta_t\, x$, with $\beta_t$ decaying
#   linearly from `aux_skip` to 0. The identity no longer needs to win an
#   $\alpha$ to carry the gradient, so `skip_connect` loses its head start.
# - **$\beta$-DARTS** (`beta_decay`): the $\alpha$ loss gets
#   $\lambda_t \cdot \mathrm{mean}_{(i,j)} \log \sum_o \exp \alpha_o^{(i,j)}$, whose
#   gradient $\mathrm{softmax}(\alpha)$ shrinks the leading $\alpha$s and keeps
#   one op from running away early ($\lambda_t$ grows linearly to `beta_decay`).
# - **P-DARTS' cap** (`max_skip`): when the genome is derived, at most that many
#   `skip_connect` edges per cell; the weakest others take their edge's next
#   best op.
#
# `warmup_epochs` trains only the weights first, so that the parametric ops
# have learnt something before the $\alpha$s compare them.

# %%
if result.warnings:
    for message in result.warnings:
        display(Markdown(f"**Collapse:** {message}. Try {COLLAPSE_REMEDIES}."))
else:
    display(Markdown("No cell collapsed: every cell keeps at least one op with weights."))
for message in result.undecided:
    display(Markdown(f"**Undecided:** {message}. Try {UNDECIDED_REMEDIES}."))

# %% [markdown]
# ## Which genome: the largest alphas, or what the supernet needs?
#
# DARTS reads the genome from the alphas: on each edge the op of the largest
# $\mathrm{softmax}(\alpha)$, on each node the two edges whose best op weighs
# most. A large weight need not mean that the supernet relies on the op (Wang
# et al. 2021, "Rethinking architecture selection in differentiable NAS").
# With `selection="perturbation"` the genome is read by taking each op, and
# each whole edge, out of the trained supernet and measuring the loss $L$ on
# the alpha half (held-out utterances of the training speakers, or with
# `alpha_split="speakers"` held-out speakers):
#
# $$s(e, o) = L(\text{supernet without } o \text{ on } e) - L(\text{supernet}).$$
#
# Each edge keeps the op whose removal hurts most, each node the two edges
# whose removal hurts most. The heatmap shows these scores (red: needed,
# blue: the supernet does better without it) with the kept ones outlined.

# %%
if config.selection == "perturbation":
    scores, ops = load_selection(run_dir)
    display(selection_heatmaps(scores, ops, result.genome))
else:
    print("genome read from the alphas (selection='alphas'); selection='perturbation' reads it by removing ops")

# %% [markdown]
# ## How far is the genome from the supernet?
#
# The supernet was trained as a mixture: every edge computes
# $\bar o^{(i,j)}(x) = \sum_{o} \mathrm{softmax}(\alpha^{(i,j)})_o \, o(x)$. The
# genome keeps one op per edge and two edges per node. Run alone with the
# supernet's weights (each kept op at weight 1, as in the retrained network),
# how well does it do on the alpha half? If the genome alone is far worse than
# the supernet, and no better than random genomes of the space run the same
# way, the alphas ranked ops inside a mixture that the genome is not: the
# *discretisation gap*. GDAS (`gdas=True`, Dong & Yang 2019) trains one op
# per edge at a time, drawn from the alphas by Gumbel-max, so the supernet
# learns single paths. (Chance is $\ln 4 \approx 1.39$ nats for 4 classes.)

# %%
probes = {"found genome": result.genome} | {f"random genome {k}": random_genome(search_space, [k, fold])
                                            for k in range(n_random_genomes)}
one_shot_losses(run_dir, data.x["search"], data.y["search"], probes, data.speakers("search")).round(3)

# %% [markdown]
# ## Scrub the alpha history
#
# Move the slider to replay how the architecture weights evolved.

# %%
history, ops = load_alpha_history(run_dir)
if live:  # a widget needs a live front end; under papermill (live=False) nbclient can wait forever on its messages
    display(alpha_slider(history, ops))

# %%
alpha_evolution(history, ops, cell="seq" if "seq" in history else "normal")
