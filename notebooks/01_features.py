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
# # 01 · From speech to feature maps
#
# *Cost of Run All:* on a 2-core CPU, about 10 s (EmoDB; the feature cache is
# then reused); on a GPU, not measured yet (the feature extraction runs on the
# CPU anyway). Measured in JupyterLab by `make browser-test`
# (docs/benchmarks.md).
#
# Speech emotion recognition (SER) asks: *which emotion does this utterance
# express?* The network we will search for (emoDARTS, notebooks 02 ff.) does not
# listen to raw audio. Every utterance is first turned into a fixed-size picture,
# a **128 × 128 map of MFCCs**, and the network classifies these pictures.
#
# This notebook
#
# 1. loads a corpus and shows what is in it (classes, speakers),
# 2. cuts it into **speaker-independent folds** with a *search*, *train*, *val*
#    and *test* role for every utterance,
# 3. explains MFCCs and shows one waveform and its map per emotion,
# 4. extracts the maps of the whole corpus in parallel and writes them to a
#    **cache** in `output_dir`, where the next notebooks find them.
#
# All the work is done by the `emokit` library; this notebook only sets
# parameters, calls it and draws pictures.

# %% [markdown]
# ## Parameters
#
# The next cell is tagged `parameters`, so [papermill](https://papermill.readthedocs.io)
# can replace its values when it runs the notebook, e.g.
# `papermill 01_features.ipynb out.ipynb -p corpus emovo -p n_jobs 2`.
#
# | name | meaning |
# |---|---|
# | `corpus` | corpus name: `emodb`, `emovo`, `iemocap`, `msp_improv`, `msp_podcast`, `ravdess`, `csv` |
# | `preset` | `"quick"` (emokit's small recipe: 3 s log-mel maps; a few minutes per notebook on a CPU) or `"paper"` (the paper's 8 s MFCC maps); `None`: the paper's defaults |
# | `data_root` | folder holding the corpora (the corpus is read from `data_root/corpus`); `None` → `$EMOKIT_DATA`, else the checkout's `data/` |
# | `features` | fields of `emokit.features.FeatureConfig` that differ from the preset's, e.g. `{"duration": 4.0}`; an unknown key is an error that lists the known ones |
# | `output_dir` | cache folder for the extracted maps |
# | `n_jobs` | worker processes for the extraction; `-1` = all cores |
#
# The fields of `FeatureConfig`: `kind` (`mfcc`, the paper, or `logmel`),
# `sample_rate` (Hz every file is resampled to), `duration` (seconds every
# utterance is padded with silence or cut to), `n_mfcc` and `n_mels` (MFCC
# coefficients, the rows of the map, and the mel bands they come from),
# `n_fft` and `hop_length` (analysis window and step, in samples), `time_pool`
# (frames max-pooled into one column), `fmin` and `fmax` (Hz).

# %% tags=["parameters"]
corpus = "emodb"
preset = "quick"  # or "paper"; the dicts below change single keys of it
data_root = None  # None: $EMOKIT_DATA, else the checkout's data/
features = {}  # FeatureConfig fields; {}: the preset's maps
output_dir = None  # cache folder; None: <results>/features (results: $EMOKIT_RESULTS, else the checkout's results/)
n_jobs = -1

# %%
# %matplotlib inline
from pathlib import Path

from IPython.display import Markdown, display

from emokit.data import corpus_root, load_corpus, skipped_files, summarize
from emokit.diagnosis import speaker_confound
from emokit.experiments import notebook_settings
from emokit.features import FeatureConfig, feature_map, load_audio
from emokit.paths import results_root
from emokit.pipeline import corpus_features
from emokit.viz import corpus as pictures
from emokit.splits import SCHEME_RULES, fold_scheme, fold_table, make_folds

config = FeatureConfig.from_dict(notebook_settings(preset, features=features)["features"])
output_dir = output_dir or str(results_root() / "features")
print(config)
print(f"{config.n_samples} samples -> {config.n_frames} frames -> map of {config.shape[0]} x {config.shape[1]}")

# %% [markdown]
# ## 1 · The corpus
#
# A *corpus* is a collection of recorded utterances, each labelled with the
# emotion the speaker was asked to act (or that listeners perceived). EmoDB,
# the Berlin Database of Emotional Speech, has 10 actors (5 female, 5 male)
# speaking 10 German sentences in 7 emotions. Like the paper we keep four
# classes: **anger, happiness, sadness, neutral**.
#
# `load_corpus` returns a *manifest*: one row per utterance with its file path,
# speaker, gender and label. Files that cannot be read are left out with a
# warning and listed by `skipped_files`.

# %%
manifest = load_corpus(corpus, root=corpus_root(corpus, data_root))
display(summarize(manifest))
confound = speaker_confound(manifest)
display(Markdown(f"**{confound.describe(corpus)}**" if confound.confounded else confound.describe(corpus)))
display(manifest.head())
print(f"skipped: {len(skipped_files(manifest))} files")

# %% [markdown]
# The line under the table says whether emotion and speaker are **confounded**:
# in an acted corpus every speaker speaks every emotion, but if many speakers
# speak a single one, subtracting each speaker's mean (speaker normalisation)
# removes their emotion too, and validating on more utterances of the training
# speakers rewards recognising voices. Then use `normalization="train"` and
# `val_speakers >= 1` (`emokit.diagnosis`).
#
# The classes are not balanced, so later we report the **unweighted accuracy**
# (UA, the mean of the per-class recalls) next to the plain accuracy (WA). The
# second chart shows that speakers differ too, in how many utterances they
# give and in their mix of classes: one reason results move from fold to fold.

# %%
display(pictures.class_counts_figure(manifest))
display(pictures.speaker_counts_figure(manifest))

# %% [markdown]
# ## 2 · Speaker-independent folds
#
# A model that has heard a speaker during training recognises that *voice*
# more easily than a stranger's, so testing on utterances of training speakers
# overestimates how well it works for new people. In **speaker-independent**
# cross-validation every fold holds out whole speakers as its test set. For
# EmoDB each fold tests on one man and one woman (5 folds of 2 speakers); for
# IEMOCAP and MSP-IMPROV one recording session per fold; for other corpora
# groups of speakers chosen so that every test fold holds every class (a
# warning names a fold where the speakers do not allow it: its UA is then the
# mean recall over the classes it holds).
#
# Inside a fold the remaining (training) speakers' utterances get one of three
# roles, stratified by class:
#
# | role | used for |
# |---|---|
# | `search` | the architecture search: DARTS learns the network's structure on it (paper: 70 % of the training data) |
# | `train` | retraining the network that the search found, from scratch (paper: the other 30 %) |
# | `val` | choosing the best epoch and stopping early; set aside first (15 % here; `emokit run --val-speakers 1`: one whole training speaker) |
# | `test` | the held-out speakers: used **only** to report the final scores, never to choose anything |
#
# Each row of the table below is one fold: its test speakers, how many
# utterances each role has, and the class counts of its test set.

# %%
folds = make_folds(manifest)  # the folds notebooks 02 and 04 and `emokit run` use
print("folds:", SCHEME_RULES[fold_scheme(manifest)])
fold_table(folds, manifest)

# %% [markdown]
# ## 3 · What is an MFCC map?
#
# A waveform is a long list of air-pressure samples (here 16 000 per second);
# its raw values say little about emotion directly. What carries emotion is how
# the **spectrum** (which frequencies are loud) changes over time: pitch,
# loudness, voice quality, speaking rate. Mel-frequency cepstral coefficients
# (MFCCs) summarise the spectrum of short stretches of speech:
#
# 1. **Frames.** Cut the signal into overlapping windows of `n_fft` = 1024
#    samples (64 ms), one every `hop_length` = 250 samples (15.6 ms).
# 2. **Spectrum.** Take each frame's power spectrum (a Fourier transform).
# 3. **Mel filterbank.** Sum the power into `n_mels` = 128 bands spaced on the
#    *mel* scale, narrow at low and wide at high frequencies, the way human
#    hearing resolves pitch.
# 4. **Log.** Take the logarithm (decibels): loudness is perceived roughly
#    logarithmically, and silence is floored at -100 dB instead of minus infinity.
# 5. **DCT.** A discrete cosine transform of the 128 log energies gives the
#    *cepstral* coefficients. The first ones describe the broad shape of the
#    spectrum (the vocal tract, timbre), the later ones finer detail such as the
#    harmonics of the pitch. With `n_mfcc` = `n_mels` = 128 nothing is thrown
#    away: the DCT only rotates the log-mel spectrum into decorrelated
#    coefficients.
#
# **Why 8 s, 512 frames and pooling by 4?** A convolutional network needs inputs
# of one size, so every utterance is zero-padded (silence appended) or cut to
# `duration` = 8 s, long enough for almost all acted utterances. The paper gets
# 128 × 512 MFCCs from librosa and max-pools along time by 4 to a **128 × 128**
# single-channel map, but it does not say which sample rate or hop it used. We
# resample to 16 kHz (the usual rate for speech, keeping frequencies up to
# 8 kHz) and choose a hop of 250 samples, so that 8 s × 16 000 / 250 = **512
# frames**; max pooling keeps the strongest value of every 4 frames (62.5 ms),
# giving 128 columns.
#
# EmoDB's utterances last 1.4-9.0 s (half of them under 2.6 s), so most 8 s
# maps end in padding: the flat stretch at the right of the pictures below.
# The `quick` preset uses shorter maps (`duration`), chosen on validation
# speakers: see `docs/results.md`.

# %%
examples = manifest.groupby("label", sort=False).head(1)
for row in examples.itertuples():
    audio = load_audio(row.path, config)
    title = f"{row.label}: {Path(row.path).name} (speaker {row.speaker})"
    display(pictures.waveform_and_map_figure(audio, feature_map(audio, config), config, title))

# %% [markdown]
# ## 4 · Extract every map, with a cache
#
# `corpus_features` loads the corpus and computes all maps with `n_jobs` worker
# processes. The result is saved in `output_dir`: one `.npy` array of shape
# (utterances, 1, rows, columns), the manifest of the utterances it holds as
# `.csv` (row *i* of one is row *i* of the other), and a `.skipped.json` list
# of files that could not be decoded. The file names contain a key computed
# from every feature parameter and every audio file's size and modification
# time: running again with the same settings only loads the cache, while
# changing a parameter or a file computes a fresh one.
#
# The maps are saved **unnormalised**. Each fold later standardises every
# coefficient with the mean and standard deviation of its *training speakers*
# only (`emokit.fold_data.fold_data`), so that nothing about the test speakers
# leaks into training.

# %%
features, feature_manifest = corpus_features(corpus, data_root, config, cache_dir=output_dir, n_jobs=n_jobs)
print(f"features: {features.shape} {features.dtype}, manifest: {len(feature_manifest)} rows")
print(f"{len(skipped_files(feature_manifest))} files could not be decoded")

# %%
print(f"cache folder: {Path(output_dir).resolve()}")
for file in sorted(Path(output_dir).iterdir()):
    print(f"  {file.name:<48} {file.stat().st_size / 2**20:8.2f} MiB")

# %% [markdown]
# The next notebook searches an architecture on the `search` role of each fold, using
# these cached maps.
