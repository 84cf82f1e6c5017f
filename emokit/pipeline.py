"""What every notebook does first: a corpus's maps, one fold of them, and
the search or retraining of that fold.

:func:`corpus_features` loads a corpus and its (cached) feature maps;
:func:`prepare_fold` cuts them into the roles of one fold
(:class:`~emokit.fold_data.FoldData`, normalised with statistics of the
fold's training speakers only); :func:`search_fold` and :func:`retrain_fold`
run a search and a retraining on it from plain settings dicts (the
notebooks' parameters).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from emokit.classical import ClassicalConfig, fit_classical, functionals
from emokit.data import PAPER_CLASSES, corpus_classes, corpus_root, load_corpus
from emokit.features import FeatureConfig, extract
from emokit.fold_data import FoldData, fold_data
from emokit.models import NetConfig
from emokit.search.genotype import Genome, random_genome
from emokit.search.loop import SearchConfig, SearchResult, run_search
from emokit.search.supernet import SearchSpace
from emokit.splits import make_folds
from emokit.train import TrainConfig, train_model
from emokit.utils import read_json, write_json


def as_config(cls, value):
    """``value`` as a ``cls`` settings dataclass: itself, or a dict of its fields (None: defaults)."""
    return value if isinstance(value, cls) else cls.from_dict(value)


def corpus_features(
    corpus: str,
    data_root: str | Path | None = None,
    config: FeatureConfig | dict | None = None,
    cache_dir: str | Path | None = "cache",
    classes: tuple[str, ...] | None = PAPER_CLASSES,
    n_jobs: int = -1,
    progress: bool = True,
    **corpus_options,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Manifest and feature maps of a corpus.

    Parameters
    ----------
    corpus : registry name (``emodb``, ``emovo``, ``iemocap``, ... or ``csv``)
    data_root : folder holding the corpora (None: ``$EMOKIT_DATA``); the
        corpus is read from ``data_root / corpus`` (:func:`emokit.data.corpus_root`).
    config : FeatureConfig or a dict of its fields (None: the paper's maps)
    cache_dir, n_jobs, progress : see :func:`emokit.features.extract`

    Returns
    -------
    features : ndarray (n, 1, rows, columns), float32
    manifest : DataFrame of the n readable files
    """
    manifest = load_corpus(corpus, root=corpus_root(corpus, data_root), classes=classes, **corpus_options)
    return extract(manifest, as_config(FeatureConfig, config), cache_dir=cache_dir, n_jobs=n_jobs, progress=progress)


def prepare_fold(corpus: str, fold: int, data_root=None, features: FeatureConfig | dict | None = None,
                 feature_dir="cache", classes: tuple[str, ...] | None = None, split_seed: int = 0,
                 n_jobs: int = -1, progress: bool = True, normalization: str = "train",
                 val_speakers: int = 0) -> FoldData:
    """Features of a corpus (from the cache of notebook 01 when present) cut
    into fold ``fold`` of its speaker-independent folds (``val_speakers``:
    :func:`emokit.splits.make_folds`). ``classes`` None: the corpus's own
    (:func:`emokit.data.corpus_classes`: the paper's four unless a named
    corpus's ``corpus.yaml`` says otherwise)."""
    config = as_config(FeatureConfig, features)
    classes = tuple(classes) if classes is not None else corpus_classes(corpus, data_root)
    maps, manifest = corpus_features(corpus, data_root, config, feature_dir, classes, n_jobs, progress)
    folds = make_folds(manifest, seed=split_seed, val_speakers=val_speakers)
    if not 0 <= fold < len(folds):
        raise ValueError(f"{corpus} has {len(folds)} folds (0..{len(folds) - 1}); fold {fold} does not exist")
    return fold_data(maps, manifest, folds[fold], classes, normalization, config)


def search_space_for(data: FoldData, space: SearchSpace | dict | None = None) -> SearchSpace:
    """The search space of ``space`` (dict or dataclass) fitted to the fold:
    its classes and map shape come from the data."""
    space = as_config(SearchSpace, space)
    return space.replace(n_classes=len(data.classes), input_shape=tuple(data.x["search"].shape[2:]))


def search_fold(data: FoldData, run_dir, space: SearchSpace | dict | None = None,
                config: SearchConfig | dict | None = None, meta=None, **kwargs) -> SearchResult:
    """Run a search on the ``search`` role of a fold (never its test speakers;
    each row's speaker goes with it, for ``alpha_split="speakers"``).

    ``space`` and ``config`` are dataclasses or dicts of their fields; the
    space's ``n_classes`` and ``input_shape`` are taken from the data.
    """
    data.check_no_test_speakers()
    meta = dict(meta or {}, fold=data.fold.index, test_speakers=list(data.fold.test_speakers),
                classes=list(data.classes),
                feature_config=data.feature_config.to_dict() if data.feature_config is not None else None)
    return run_search(data.x["search"], data.y["search"], run_dir, search_space_for(data, space),
                      as_config(SearchConfig, config), meta=meta, speakers=data.speakers("search"), **kwargs)


def retrain_fold(data: FoldData, run_dir, model: str = "genome", search_dir=None, genome_json=None,
                 train: TrainConfig | dict | None = None, net: NetConfig | dict | None = None, meta=None,
                 space: SearchSpace | dict | None = None, classical: ClassicalConfig | dict | None = None,
                 cache_dir=None, candidates: int = 4, **kwargs) -> dict:
    """Train a model from scratch on a fold; model selection on ``val``, test
    scored once. Returns the metrics dict (:func:`emokit.train.train_model`).

    ``model``:

    - ``"genome"``: the genome of a search folder (``search_dir``) or of a
      ``genome_json``, sized by ``net`` (:class:`~emokit.models.NetConfig`);
    - ``"random"``: the random-genome control, a genome drawn uniformly from
      ``space`` with the seed ``[train.seed, fold]``, saved as
      ``run_dir/genome.json`` and trained exactly like a searched genome;
    - ``"random_search"``: the random-search control, the best of
      ``candidates`` random genomes by validation UA (:func:`random_search`);
    - ``"classical"``: functionals and a linear classifier
      (:mod:`emokit.classical`, settings ``classical``, functionals cached in
      ``cache_dir``);
    - a hand-designed baseline (``cnn``, ``cnn_lstm``, ``cnn_lstm_att``),
      which takes only the input shape from the data.
    """
    train = as_config(TrainConfig, train)
    if model == "random_search":
        return random_search(data, run_dir, train, net, space, candidates, meta, **kwargs)
    if model == "classical":
        config = as_config(ClassicalConfig, classical)
        values = functionals(data.manifest["path"], config, cache_dir=cache_dir, progress=kwargs.get("progress", True))
        return fit_classical(values, data, run_dir, config, seed=train.seed, extra=meta)
    genome = None
    if model in ("genome", "random"):
        if model == "random":
            genome = random_genome(search_space_for(data, space), [train.seed, data.fold.index])
            genome.save(Path(run_dir) / "genome.json")
        else:
            source = genome_json or search_dir
            if source is None:
                raise ValueError("model 'genome' needs search_dir (a search run folder) or genome_json")
            genome = Genome.load(source)
        model_kwargs = genome_net_kwargs(genome, net)
    else:
        model_kwargs = {"input_shape": list(data.x["train"].shape[2:])}
    source_note = {"genome_json": str(genome_json)} if genome_json else {"search_dir": str(search_dir) if search_dir else None}
    return train_model(model, data, run_dir, train, genome=genome, model_kwargs=model_kwargs,
                       extra=dict(meta or {}, **source_note), **kwargs)


def genome_net_kwargs(genome: Genome, net: NetConfig | dict | None) -> dict:
    """The GenomeNet sizes of ``net`` for ``genome`` (no SeqNN cells when it has none)."""
    model_kwargs = as_config(NetConfig, net).to_dict()
    if not genome.seq:
        model_kwargs["seq_cells"] = 0
    return model_kwargs


def random_search(data: FoldData, run_dir, train: TrainConfig | dict | None = None, net: NetConfig | dict | None = None,
                  space: SearchSpace | dict | None = None, candidates: int = 4, meta=None, **kwargs) -> dict:
    """The random-search control (Li & Talwalkar 2019, each candidate fully
    trained): ``candidates`` genomes drawn uniformly from ``space`` with the
    seeds ``[train.seed, fold, i]``, each retrained like a searched genome in
    ``run_dir/candidates/<i>``. The one with the best validation UA (the
    first of a tie) is the run's model: its files are copied to ``run_dir``.
    The candidates' test scores play no part in the choice.

    Returns the chosen candidate's metrics with ``chosen`` (its index),
    ``candidates`` (each one's validation UA and genome) and
    ``train_seconds`` summed over the candidates (what the control cost).
    """
    if candidates < 1:
        raise ValueError(f"random_search needs 1 or more candidates, got {candidates}")
    train, run_dir = as_config(TrainConfig, train), Path(run_dir)
    search_space = search_space_for(data, space)
    tried = []
    for i in range(candidates):
        genome = random_genome(search_space, [train.seed, data.fold.index, i])
        folder = run_dir / "candidates" / str(i)
        metrics = train_model("random", data, folder, train, genome=genome, model_kwargs=genome_net_kwargs(genome, net),
                              extra=dict(meta or {}, candidate=i), **kwargs)
        genome.save(folder / "genome.json")
        tried.append({"candidate": i, "best_val_ua": metrics["best_val_ua"], "genome": genome.to_dict(),
                      "metrics": metrics})
    chosen = max(range(candidates), key=lambda i: tried[i]["best_val_ua"])  # validation only
    source = run_dir / "candidates" / str(chosen)
    for name in ("model.pt", "log.csv", "genome.json", "confusion.png", "curves.png"):
        if (source / name).exists():
            shutil.copy2(source / name, run_dir / name)
    config = read_json(source / "config.json")
    write_json({**config, "model_name": "random_search", "extra": dict(config.get("extra") or {}, chosen=chosen)},
               run_dir / "config.json")
    metrics = {**tried[chosen]["metrics"], "chosen": chosen,
               "candidates": [{k: v for k, v in t.items() if k != "metrics"} for t in tried],
               "train_seconds": sum(t["metrics"].get("train_seconds") or 0.0 for t in tried)}
    write_json(metrics, run_dir / "metrics.json")  # last: its presence marks a finished run
    return metrics
