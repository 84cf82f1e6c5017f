"""Glue between corpora, features and folds: what every notebook needs first.

:func:`corpus_features` loads a corpus and its (cached) feature maps;
:func:`fold_data` cuts them into the roles of one fold, normalised with
statistics of the fold's training speakers only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emokit.data import PAPER_CLASSES, load_corpus
from emokit.features import NORMALIZATIONS, FeatureConfig, Normalizer, extract, speaker_standardize
from emokit.splits import ROLES, Fold, check_fold


def corpus_features(
    corpus: str,
    data_root: str | Path | None = None,
    config: FeatureConfig = FeatureConfig(),
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
    data_root : folder holding the corpora (``$EMOKIT_DATA``); the corpus is
        read from ``data_root / corpus`` (for ``csv``: ``data_root`` is the CSV).
    config, cache_dir, n_jobs, progress : see :func:`emokit.features.extract`

    Returns
    -------
    features : ndarray (n, 1, rows, columns), float32
    manifest : DataFrame of the n readable files
    """
    root = None
    if data_root is not None:
        root = Path(data_root) if corpus == "csv" else Path(data_root) / corpus
    manifest = load_corpus(corpus, root=root, classes=classes, **corpus_options)
    return extract(manifest, config, cache_dir=cache_dir, n_jobs=n_jobs, progress=progress)


@dataclass
class FoldData:
    """One fold's arrays, per role (``search``, ``train``, ``val``, ``test``).

    ``x[role]``: (n, 1, rows, columns) float32, normalised with
    ``normalizer`` (fitted on the training speakers: search + train + val),
    after each speaker's own standardisation when ``normalization`` is
    ``"speaker"``. ``y[role]``: (n,) int64 class indices into ``classes``.
    """

    fold: Fold
    classes: tuple[str, ...]
    normalizer: Normalizer
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    manifest: pd.DataFrame = field(repr=False)
    normalization: str = "train"

    def arrays(self, *roles: str) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of several roles concatenated."""
        return np.concatenate([self.x[r] for r in roles]), np.concatenate([self.y[r] for r in roles])


def label_indices(labels: pd.Series, classes: tuple[str, ...]) -> np.ndarray:
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(classes)}; load the corpus with these classes")
    lookup = {c: i for i, c in enumerate(classes)}
    return labels.map(lookup).to_numpy(np.int64)


def fold_data(features: np.ndarray, manifest: pd.DataFrame, fold: Fold,
              classes: tuple[str, ...] = PAPER_CLASSES, normalization: str = "train") -> FoldData:
    """Split features by the roles of ``fold`` and normalise them.

    ``normalization="train"`` (default): one normaliser fitted on the training
    speakers' utterances only, so nothing of the test speakers enters the
    statistics. ``"speaker"``: first each speaker's maps are standardised with
    that speaker's own statistics (:func:`emokit.features.speaker_standardize`;
    for the test speakers, from their unlabelled maps), then the same
    training-speaker normaliser is applied. No label of a test speaker is used
    either way.
    """
    if len(features) != len(manifest):
        raise ValueError(f"{len(features)} feature maps for {len(manifest)} manifest rows; extract them together")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; known: {', '.join(NORMALIZATIONS)}")
    check_fold(fold, manifest)
    if normalization == "speaker":
        from emokit.splits import speaker_keys

        keys = speaker_keys(manifest) if "corpus" in manifest else manifest["speaker"].astype(str)
        features = speaker_standardize(features, keys)
    training = np.concatenate([fold.indices(r) for r in ROLES if r != "test"])
    normalizer = Normalizer.fit(features[training])
    y_all = label_indices(manifest["label"], tuple(classes))
    x = {r: normalizer(features[fold.indices(r)]) for r in ROLES}
    y = {r: y_all[fold.indices(r)] for r in ROLES}
    annotated = manifest.assign(role=fold.roles.to_numpy())
    return FoldData(fold, tuple(classes), normalizer, x, y, annotated, normalization)


def as_feature_config(value: FeatureConfig | dict | None) -> FeatureConfig:
    """A FeatureConfig from itself, a dict of its fields (notebook
    parameters) or None (the paper's defaults)."""
    if isinstance(value, FeatureConfig):
        return value
    return FeatureConfig(**(value or {}))


def prepare_fold(corpus: str, fold: int, data_root=None, feature_config=None, feature_dir="cache",
                 classes: tuple[str, ...] = PAPER_CLASSES, split_seed: int = 0, n_jobs: int = -1,
                 progress: bool = True, normalization: str = "train") -> FoldData:
    """Features of a corpus (from the cache of notebook 01 when present) cut
    into fold ``fold`` of its speaker-independent folds."""
    from emokit.splits import make_folds

    config = as_feature_config(feature_config)
    features, manifest = corpus_features(corpus, data_root, config, feature_dir, classes, n_jobs, progress)
    folds = make_folds(manifest, seed=split_seed)
    if not 0 <= fold < len(folds):
        raise ValueError(f"{corpus} has {len(folds)} folds (0..{len(folds) - 1}); fold {fold} does not exist")
    return fold_data(features, manifest, folds[fold], classes, normalization)


def search_fold(data: FoldData, run_dir, space=None, config=None, feature_config=None, meta=None, **kwargs):
    """Run a search on the ``search`` role of a fold (never its test speakers).

    Returns the :class:`~emokit.search.loop.SearchResult`.
    """
    from emokit.search.loop import SearchConfig, run_search
    from emokit.search.supernet import SearchSpace

    space = space or SearchSpace(n_classes=len(data.classes), input_shape=data.x["search"].shape[2:])
    meta = dict(meta or {}, fold=data.fold.index, test_speakers=list(data.fold.test_speakers),
                classes=list(data.classes), feature_config=as_feature_config(feature_config).to_dict())
    return run_search(data.x["search"], data.y["search"], run_dir, space, config or SearchConfig(), meta=meta,
                      **kwargs)


GENOME_ARCH_KEYS = ("cnn_cells", "seq_cells", "channels", "stem_multiplier", "seq_hidden", "freq_bins", "dropout",
                    "drop_path", "stem_stride")


def retrain_fold(data: FoldData, run_dir, model: str = "genome", search_dir=None, genome_json=None,
                 train_config=None, architecture: dict | None = None, feature_config=None, meta=None, **kwargs):
    """Train a genome (from a search folder or a genome.json) or a baseline
    from scratch on a fold; model selection on ``val``, test scored once.

    ``architecture`` holds the genome net's sizes (:data:`GENOME_ARCH_KEYS`);
    baselines take the input shape from the data. Returns the metrics dict of
    :func:`emokit.train.train_model`.
    """
    from emokit.search.genotype import Genome
    from emokit.train import TrainConfig, train_model

    genome = None
    model_kwargs: dict = {}
    if model == "genome":
        source = genome_json or search_dir
        if source is None:
            raise ValueError("model 'genome' needs search_dir (a search run folder) or genome_json")
        genome = Genome.load(source)
        model_kwargs = {k: v for k, v in (architecture or {}).items() if k in GENOME_ARCH_KEYS and v is not None}
        if not genome.seq:
            model_kwargs["seq_cells"] = 0
    else:
        model_kwargs = {"input_shape": list(data.x["train"].shape[2:])}
    extra = dict(meta or {}, search_dir=str(search_dir) if search_dir else None)
    return train_model(model, data, run_dir, train_config or TrainConfig(), genome=genome, model_kwargs=model_kwargs,
                       feature_config=as_feature_config(feature_config), extra=extra, **kwargs)
