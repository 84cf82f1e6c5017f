"""The classical baseline: utterance-level acoustic functionals and a linear classifier.

Every table of emokit answers "does the deep model beat the obvious model?":
this model takes seconds. Each utterance becomes one vector of functionals,

- ``mfcc_stats`` (default, librosa): the mean and standard deviation over
  frames of 40 MFCCs (80 values);
- ``egemaps``: the 88 eGeMAPS v02 functionals (openSMILE);
- ``compare``: the 6373 ComParE 2016 functionals (openSMILE);

normalised like the maps (``train``: scaled with statistics of the training
speakers; ``speaker``: first each speaker standardised with their own
statistics), and classified by a logistic regression (default) or an RBF SVM.
The regularisation strength ``C`` is chosen on the fold's ``val`` role only;
the model is fitted on the training roles and the test speakers are scored
once. A run folder holds ``config.json``, ``metrics.json``, ``model.joblib``,
``standardiser.npz`` (the training mean and scale, to score another corpus
the same way) and ``confusion.png``.
"""
from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from emokit.config import Config
from emokit.features import cache_key
from emokit.fold_data import FoldData
from emokit.locks import cache_lock
from emokit.metrics import below_chance, evaluate
from emokit.splits import speaker_keys
from emokit.utils import atomic_write_bytes, read_json, write_json
from emokit.viz.training import confusion_matrix_figure

FUNCTIONALS = ("mfcc_stats", "egemaps", "compare")
STANDARDISER = "standardiser.npz"  # a run's training mean and scale, to score other corpora the same way
CLASSIFIERS = ("logreg", "svm")


@dataclass(frozen=True)
class ClassicalConfig(Config):
    """The classical baseline's settings.

    Attributes
    ----------
    functionals : "mfcc_stats", "egemaps" or "compare"
    classifier : "logreg" (logistic regression) or "svm" (RBF kernel)
    c_grid : regularisation strengths tried; the best by ``val`` UA is kept
    class_weight : "balanced" (weights inverse to class frequency; UA counts
        every class the same) or None
    train_roles : roles fitted on (``val`` selects ``C``, ``test`` only reports)
    sample_rate, n_mfcc : of ``mfcc_stats`` (Hz, coefficients)
    """

    functionals: str = "mfcc_stats"
    classifier: str = "logreg"
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    class_weight: str | None = "balanced"
    train_roles: tuple[str, ...] = ("search", "train")
    sample_rate: int = 16000
    n_mfcc: int = 40

    def __post_init__(self) -> None:
        object.__setattr__(self, "c_grid", tuple(float(c) for c in self.c_grid))
        object.__setattr__(self, "train_roles", tuple(self.train_roles))
        if self.functionals not in FUNCTIONALS:
            raise ValueError(f"unknown functionals {self.functionals!r}; known: {', '.join(FUNCTIONALS)}")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {self.classifier!r}; known: {', '.join(CLASSIFIERS)}")
        if not self.c_grid or not set(self.train_roles) <= {"search", "train"} or not self.train_roles:
            raise ValueError("c_grid must not be empty and train_roles must be a subset of ('search', 'train')")


def mfcc_stats(path: str, sample_rate: int = 16000, n_mfcc: int = 40) -> np.ndarray:
    """Means and standard deviations over frames of ``n_mfcc`` MFCCs of one file, shape (2 * n_mfcc,)."""
    import librosa

    audio, _ = librosa.load(path, sr=sample_rate, mono=True)
    mfcc = librosa.feature.mfcc(y=audio, sr=sample_rate, n_mfcc=n_mfcc, n_fft=1024, hop_length=256)
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]).astype(np.float32)


def _opensmile(kind: str):
    try:
        import opensmile
    except ImportError as exc:  # an optional extra on some platforms
        raise ImportError(f"functionals {kind!r} need the 'opensmile' package: pip install opensmile") from exc
    feature_set = opensmile.FeatureSet.eGeMAPSv02 if kind == "egemaps" else opensmile.FeatureSet.ComParE_2016
    return opensmile.Smile(feature_set=feature_set, feature_level=opensmile.FeatureLevel.Functionals)


def functionals(paths, config: ClassicalConfig = ClassicalConfig(), cache_dir: str | Path | None = None,
                progress: bool = True) -> np.ndarray:
    """One vector of functionals per file, shape (n_files, n_functionals), float32.

    Cached in ``cache_dir`` under a key of the settings and every file's
    path, size and modification time (None: no cache).
    """
    paths = [str(p) for p in paths]
    if cache_dir is None:
        return _functionals(paths, config, progress)
    settings = {"functionals": config.functionals, "sample_rate": config.sample_rate, "n_mfcc": config.n_mfcc}
    key = cache_key(pd.DataFrame({"path": paths}), settings)  # what the values depend on, not the classifier
    cache = Path(cache_dir) / f"functionals-{config.functionals}-{key}.npy"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache_lock(cache.with_suffix("")):  # one process computes an entry, the others wait and read it
        if cache.exists():
            try:
                values = np.load(cache)
                if values.shape[0] == len(paths):
                    return values
                problem = f"holds {values.shape[0]} rows for {len(paths)} files"
            except (OSError, ValueError) as exc:
                problem = f"is damaged ({exc})"
            warnings.warn(f"{cache} {problem}; computing it again", stacklevel=2)
        values = _functionals(paths, config, progress)
        buffer = io.BytesIO()
        np.save(buffer, values)
        atomic_write_bytes(cache, buffer.getvalue())
        return values


def _functionals(paths: list[str], config: ClassicalConfig, progress: bool) -> np.ndarray:
    smile = _opensmile(config.functionals) if config.functionals != "mfcc_stats" else None
    rows = []
    for path in tqdm(paths, desc=config.functionals, unit="file", disable=not progress):
        if smile is None:
            rows.append(mfcc_stats(path, config.sample_rate, config.n_mfcc))
        else:
            rows.append(smile.process_file(path).to_numpy(np.float32)[0])
    return np.stack(rows).astype(np.float32)


def _standardise(values: np.ndarray, fitted_on: np.ndarray) -> np.ndarray:
    mean, std = values[fitted_on].mean(axis=0), values[fitted_on].std(axis=0)
    return (values - mean) / np.where(std > 1e-8, std, 1.0)


def speaker_standardise(values: np.ndarray, speakers) -> np.ndarray:
    """Each speaker's functionals standardised with that speaker's own statistics (no labels used).

    Parameters
    ----------
    values : ndarray (n, n_functionals)
    speakers : sequence of n speaker keys (:func:`emokit.splits.speaker_keys`)

    Returns
    -------
    ndarray (n, n_functionals), float64
    """
    keys = np.asarray(list(speakers), dtype=object)
    out = np.empty(values.shape, dtype=np.float64)
    for key in pd.unique(keys):
        rows = np.flatnonzero(keys == key)
        out[rows] = _standardise(values[rows].astype(np.float64), np.arange(len(rows)))
    return out


def normalised(values: np.ndarray, data: FoldData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Functionals normalised as the fold's maps are, and the standardiser used.

    Per speaker first when ``data.normalization == "speaker"``
    (:func:`speaker_standardise`, no labels used), then with the mean and
    standard deviation of the training speakers (every role but ``test``).

    Returns
    -------
    x : ndarray (n, n_functionals), float64
    mean, scale : ndarray (n_functionals,) each: ``x = (values' - mean) / scale``
    """
    if data.normalization == "speaker":
        values = speaker_standardise(values, speaker_keys(data.manifest))
    values = values.astype(np.float64)
    fitted_on = values[(data.manifest["role"] != "test").to_numpy()]
    mean, std = fitted_on.mean(axis=0), fitted_on.std(axis=0)
    scale = np.where(std > 1e-8, std, 1.0)
    return (values - mean) / scale, mean, scale


def normalise(values: np.ndarray, data: FoldData) -> np.ndarray:
    """:func:`normalised`'s ``x``."""
    return normalised(values, data)[0]


def _classifier(config: ClassicalConfig, c: float, seed: int):
    if config.classifier == "svm":
        from sklearn.svm import SVC

        return SVC(C=c, kernel="rbf", class_weight=config.class_weight, random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight=config.class_weight, max_iter=5000, random_state=seed)


def fit_classical(values: np.ndarray, data: FoldData, run_dir: str | Path, config: ClassicalConfig = ClassicalConfig(),
                  seed: int = 0, extra: dict | None = None) -> dict:
    """Fit the classical model on one fold's functionals and score its test speakers once.

    Parameters
    ----------
    values : ndarray (n, n_functionals), one row per row of ``data.manifest``
    data : FoldData (its roles, labels, classes and normalisation are used; its maps are not)
    run_dir : folder for config.json, metrics.json and model.joblib
    seed : seeds the classifier (the SVM's and solver's randomness)

    Returns
    -------
    dict: test ``ua``, ``wa``, ``per_class_recall``, ``confusion``, ``n``, and
    ``best_c``, ``best_val_ua``, ``val_ua_by_c``, ``parameters``, ``train_seconds``.
    """
    import joblib

    run_dir = Path(run_dir)
    if len(values) != len(data.manifest):
        raise ValueError(f"{len(values)} rows of functionals for {len(data.manifest)} manifest rows")
    if not np.isfinite(values).all():
        bad = data.manifest["path"][~np.isfinite(values).all(axis=1)].tolist()
        raise ValueError(f"functionals are not finite for {bad[:5]}; check these files")
    data.check_no_test_speakers(config.train_roles)
    started = time.perf_counter()
    x, mean, scale = normalised(values, data)  # mean, scale kept: emokit.cross_corpus scores other corpora with them
    roles = data.manifest["role"].to_numpy()
    labels = {role: data.y[role] for role in data.y}
    x_role = {role: x[roles == role] for role in labels}
    x_fit = np.concatenate([x_role[r] for r in config.train_roles])
    y_fit = np.concatenate([labels[r] for r in config.train_roles])
    val_ua, val_confusion = {}, {}
    for c in config.c_grid:  # selection on val only
        model = _classifier(config, c, seed).fit(x_fit, y_fit)
        scores = evaluate(labels["val"], model.predict(x_role["val"]), data.classes) if len(labels["val"]) else {}
        val_ua[c], val_confusion[c] = scores.get("ua", float("nan")), scores.get("confusion")
    best_c = max(config.c_grid, key=lambda c: (val_ua[c], -c)) if len(labels["val"]) else config.c_grid[-1]
    model = _classifier(config, best_c, seed).fit(x_fit, y_fit)
    metrics = evaluate(labels["test"], model.predict(x_role["test"]), data.classes)
    n_params = int(model.coef_.size + model.intercept_.size) if hasattr(model, "coef_") else \
        int(model.dual_coef_.size + model.support_vectors_.size + model.intercept_.size)
    metrics.update(best_c=best_c, best_val_ua=val_ua.get(best_c), val_ua_by_c={str(c): v for c, v in val_ua.items()},
                   parameters=n_params, train_seconds=time.perf_counter() - started,
                   val_confusion=val_confusion.get(best_c))
    metrics["suspect"] = below_chance(metrics)
    write_json({"model_name": "classical", "classical": config.to_dict(), "classes": list(data.classes),
                "normalization": data.normalization, "seed": seed,
                "feature_config": data.feature_config.to_dict() if data.feature_config is not None else None,
                "fold": {"index": int(data.fold.index), "test_speakers": list(data.fold.test_speakers)},
                "extra": extra}, run_dir / "config.json")
    joblib.dump(model, run_dir / "model.joblib")
    buffer = io.BytesIO()
    np.savez(buffer, mean=mean, scale=scale)
    atomic_write_bytes(run_dir / STANDARDISER, buffer.getvalue())
    figure = confusion_matrix_figure(np.asarray(metrics["confusion"]), data.classes)
    figure.savefig(run_dir / "confusion.png", dpi=110)
    write_json(metrics, run_dir / "metrics.json")  # last: marks the run finished
    return read_json(run_dir / "metrics.json")
