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
# # 04 · Retraining from scratch and testing on unseen speakers
#
# *Cost of Run All:* on a 2-core CPU, about 47 s for the quick preset's 60
# epochs; on a GPU, not measured with the quick preset; the `paper` preset's 300
# epochs took 66 s on an NVIDIA H200. Measured in JupyterLab by `make browser-
# test` (docs/benchmarks.md).
#
# The supernet's weights were shared by every candidate op, so they are thrown
# away: the genome becomes an ordinary network (**GenomeNet**: CNN cells with
# reductions at 1/3 and 2/3 of the depth, a bridge that turns each time column
# of the CNN output into one step of a sequence, SeqNN cells along time, a mean
# over time and a dense classifier) and is trained from scratch. The paper's
# hand-designed baselines (`cnn`, `cnn_lstm`, `cnn_lstm_att`) go through the
# same loop for a fair comparison.
#
# Two **controls** ask whether the search was worth it. `random` is a genome
# drawn uniformly from the same search space (same cells, nodes and op lists),
# retrained with exactly the same recipe: if the searched genome is no better,
# the search did not find anything the space did not already give.
# `random_search` retrains several random genomes and keeps the one with the
# best validation UA: what a search must beat for the same or less training.
# `classical`
# is the obvious model: a vector of acoustic statistics per utterance (means
# and spreads of 40 MFCCs, or openSMILE's eGeMAPS / ComParE functionals) and
# a logistic regression, trained in seconds.
#
# Training uses the fold's training speakers only: the `train` role (paper) or
# `search` + `train`. The `val` role (held-out utterances of the training
# speakers; with `val_speakers = 1`, every utterance of one training speaker,
# so that validation too meets a voice it never trained on) picks the best epoch. The **test speakers are scored once**, at the
# end, with those weights, reporting
#
# - **UA** (unweighted accuracy): the mean of the per-class recalls, so every
#   emotion counts the same however rare;
# - **WA** (weighted accuracy): the share of utterances classified correctly.
#
# **Augmentation** (off by default, not in the paper) fights over-fitting on
# small corpora: EmoDB gives about 270 training utterances per fold. Each batch
# can be rolled along time (`time_shift`: where speech sits in the window
# says nothing about emotion), have bands blanked (`freq_masks`, `time_masks`:
# SpecAugment) and be blended pairwise with its labels (`mixup`).

# %% [markdown]
# ## Parameters
#
# `train` holds fields of `emokit.train.TrainConfig` (`epochs`, `batch_size`,
# `lr`, `optimizer`, `train_roles` — `["train"]`, the paper's 30 % split, or
# `["search", "train"]` —, the augmentations `time_shift`, `freq_masks`,
# `time_masks`, `mixup`, `seed`, `device` ...); `net` holds fields of
# `emokit.models.NetConfig`, the genome network's sizes (`cnn_cells`,
# `seq_cells`, `channels`, `seq_hidden`, `stem_stride` — which must match the
# search's —, `dropout` ...). Baselines take only the map shape from the data.
# `preset` fills them (and the features, normalisation and space) as `emokit
# run` does: `"quick"` (60 epochs of a small network with time shifts and
# mixup, a minute or two on a CPU) or `"paper"` (300 epochs, no augmentation);
# the dicts change single keys of it. Use the preset the genome was searched with.

# %% tags=["parameters"]
# Parameters (papermill overrides these)
corpus = "emodb"
preset = "quick"            # or "paper", as in notebook 02; the settings below change single keys of it
data_root = None
feature_dir = None          # None: <results>/features
features = {}               # FeatureConfig fields, as in notebooks 01 and 02; {}: the preset's
normalization = None        # "train" (paper) or "speaker", as in the search of a genome; None: the preset's
val_speakers = None         # as in the search: 0, val is 15 % of the training speakers' utterances; n, all of n speakers'
fold = 0
model = "genome"            # genome; a baseline: cnn, cnn_lstm, cnn_lstm_att; a control: random, random_search, classical
search_dir = None           # None: notebook 02's default folder for this corpus, scope, fold and seed
genome_json = None          # or a genome.json instead of a search folder
net = {}                    # NetConfig fields; {}: the preset's retrained network
train = {}                  # TrainConfig fields; {}: the preset's training
space = {}                  # models "random", "random_search": SearchSpace fields of the space genomes are drawn from
candidates = 4              # model "random_search": random genomes retrained; the best by validation UA is kept
classical = {}              # model "classical": ClassicalConfig fields (functionals, classifier ...)
run_dir = None              # None: <results>/runs/<corpus>/<scope or model>/fold<fold>-seed<seed>/retrain
resume = True
live = True

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import Image, display

from emokit.experiments import notebook_settings
from emokit.models import NetConfig
from emokit.paths import results_root, run_folder
from emokit.pipeline import prepare_fold, retrain_fold
from emokit.train import TrainConfig
from emokit.viz.live import LiveMonitor

settings = notebook_settings(preset, features=features, space=space, net=net, train=train, classical=classical,
                             normalization=normalization, val_speakers=val_speakers)
features, space, classical, normalization, val_speakers = (
    settings[k] for k in ("features", "space", "classical", "normalization", "val_speakers"))
config, sizes = TrainConfig.from_dict(settings["train"]), NetConfig.from_dict(settings["net"])
scope = space.get("scope", "emodarts")
feature_dir = feature_dir or str(results_root() / "features")
if model == "genome" and genome_json is None:
    search_dir = search_dir or str(run_folder(None, corpus, scope, fold, config.seed) / "search")
run_dir = run_dir or str(run_folder(None, corpus, scope if model == "genome" else model, fold, config.seed) / "retrain")
print(config)
print(f"run folder: {run_dir}")

# %%
data = prepare_fold(corpus, fold, data_root, features, feature_dir, normalization=normalization,
                    val_speakers=val_speakers)
print(f"fold {fold}: test speakers {data.fold.test_speakers}; rows per role", {r: len(y) for r, y in data.y.items()})

# %% [markdown]
# ## Training, with live curves (loss and validation UA every epoch)

# %%
monitor = LiveMonitor(live=live)
metrics = retrain_fold(data, run_dir, model, search_dir, genome_json, config, sizes,
                       meta={"corpus": corpus, "fold": fold, "seed": config.seed}, space=space, classical=classical,
                       cache_dir=feature_dir, candidates=candidates, resume=resume, callback=monitor)

# %% [markdown]
# ## On the test speakers

# %%
chosen = f"C = {metrics['best_c']}" if model == "classical" else f"epoch {metrics['best_epoch']}"
if model == "random_search":
    chosen += f" of candidate {metrics['chosen']}, the best of {len(metrics['candidates'])},"
print(f"{model}: UA {metrics['ua']:.2%}  WA {metrics['wa']:.2%}  parameters {metrics['parameters']:,}  "
      f"({chosen} chosen by validation UA)")
print("recall per class:", {k: (round(v, 3) if v is not None else None) for k, v in metrics["per_class_recall"].items()})
for picture in ("confusion.png", "curves.png"):
    if (Path(run_dir) / picture).exists():
        display(Image(filename=str(Path(run_dir) / picture)))
