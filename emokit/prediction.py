"""Emotion predictions for new audio files with a trained run folder.

The run's own feature settings and normaliser (from its ``config.json``) turn
each file into the map the network was trained on.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from emokit.features import FeatureConfig, Normalizer, checked_map, speaker_standardize
from emokit.train import load_trained, predict_logits

__all__ = ["predict"]


MIN_SPEAKER_FILES = 5  # fewer utterances give poor speaker statistics


def predict(run_dir: str | Path, wav_paths: str | Path | Iterable[str | Path], device="cpu",
            batch_size: int = 64, speakers: Iterable | None = None) -> pd.DataFrame:
    """Classify audio files with the best weights of a finished training run.

    Parameters
    ----------
    run_dir : folder written by :func:`emokit.train.train_model` with a ``feature_config``
    wav_paths : one path or several
    device : "cpu", "cuda" or "auto"
    batch_size : maps per forward pass
    speakers : one speaker key per file, for runs trained with
        ``normalization="speaker"``: each speaker's files are standardised
        with their own statistics, as in training (None: all files are one
        speaker). Ignored by runs with the default normalisation.

    Returns
    -------
    pandas.DataFrame
        One row per file, in the given order: ``path``, ``label`` (predicted
        class), ``p_<class>`` (softmax probability, one column per class) and
        ``error`` (None, or why the file could not be scored; then ``label``
        is None and the probabilities NaN).
    """
    import torch

    model, config = load_trained(run_dir, device)
    if not config.get("feature_config"):
        raise ValueError(f"{run_dir} was trained without a feature_config; pass feature_config to train_model "
                         "so that new audio can be turned into the same maps")
    features = FeatureConfig.from_dict(config["feature_config"])
    normalizer = Normalizer.from_dict(config["normalizer"])
    classes = list(config["classes"])
    paths = [wav_paths] if isinstance(wav_paths, (str, Path)) else list(wav_paths)
    keys = ["speaker"] * len(paths) if speakers is None else [str(s) for s in speakers]
    if len(keys) != len(paths):
        raise ValueError(f"{len(keys)} speakers given for {len(paths)} files; give one speaker key per file")

    maps, errors = {}, {}
    for i, path in enumerate(paths):
        try:
            maps[i] = checked_map(path, features)
        except Exception as exc:  # one bad file must not stop the others; AudioError already names the file
            message = str(exc)
            errors[i] = message if str(path) in message else f"{path}: {type(exc).__name__}: {message}"

    probabilities = np.full((len(paths), len(classes)), np.nan)
    if maps:
        batch = np.stack(list(maps.values()))[:, None]  # (n_ok, 1, rows, columns)
        if config.get("normalization", "train") == "speaker":
            batch = _speaker_standardize(batch, [keys[i] for i in maps], run_dir)
        batch = normalizer(batch)
        logits = predict_logits(model, batch, device, batch_size)
        probabilities[list(maps)] = torch.softmax(logits, dim=1).numpy()
        for i in maps:  # never a NaN probability as a result
            if not np.isfinite(probabilities[i]).all():
                errors[i] = f"{paths[i]}: the model gave non-finite scores for this file"
                probabilities[i] = np.nan
    table = pd.DataFrame({"path": [str(p) for p in paths]})
    table["label"] = pd.Series([classes[int(np.argmax(p))] if i not in errors else None
                                for i, p in enumerate(probabilities)],
                               dtype=object)
    for k, name in enumerate(classes):
        table[f"p_{name}"] = probabilities[:, k]
    table["error"] = pd.Series([errors.get(i) for i in range(len(paths))], dtype=object)
    return table


def _speaker_standardize(batch: np.ndarray, keys: list[str], run_dir) -> np.ndarray:
    """Each speaker's maps standardised as in training, warning about speakers with few files."""
    counts = pd.Series(keys).value_counts()
    few = counts[counts < MIN_SPEAKER_FILES]
    if len(few):
        warnings.warn(f"{run_dir} normalises each speaker with their own statistics; speaker(s) "
                      f"{', '.join(map(str, few.index))} have fewer than {MIN_SPEAKER_FILES} readable files, so the "
                      "predictions are less reliable. Pass more utterances per speaker.", stacklevel=3)
    return speaker_standardize(batch, keys)
