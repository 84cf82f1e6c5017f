"""Cross-corpus questions: does a trained model, or a searched genome, carry
over to another corpus?

Two answers, both driven by a grid's ``test_corpora``:

- **scores on another corpus**: every model trained on a fold of corpus A
  (the classical control too) is scored once on *all* of corpus B
  (:func:`score_run`), with A's feature settings and normaliser; where A's
  runs standardised each speaker on their own data (``normalization:
  speaker``), B's speakers are too.
  Kept as ``<run>/cross/<B>.json`` and gathered by :func:`cross_table`.
- **genome transfer**: the genome searched on A, retrained from scratch on
  B's folds (run kind ``transfer``, named :func:`transfer_name`), against
  random genomes of the same space retrained on B (the ``random`` control)
  and B's own searched genomes: :func:`transfer_comparisons`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emokit.utils import read_json, write_json

__all__ = ["transfer_name", "score_run", "fitted_without_standardiser", "score_run_folder", "needs_scoring",
           "cross_table", "cross_matrix", "transfer_comparisons", "transfer_sentence"]

TRANSFER_SEPARATOR = "_from_"


def transfer_name(scope: str, source: str) -> str:
    """The model name of ``scope``'s genomes searched on corpus ``source`` and retrained elsewhere."""
    return f"{scope}{TRANSFER_SEPARATOR}{source}"


def score_run(retrain_dir: str | Path, corpus: str, data_root=None, feature_dir="cache", device="cpu",
              progress: bool = False) -> dict:
    """Test UA / WA of a finished training run on the whole of another corpus.

    Parameters
    ----------
    retrain_dir : a folder written by :func:`emokit.train.train_model` or
        :func:`emokit.classical.fit_classical` (the run's ``retrain/``)
    corpus : the corpus to score on; only its utterances of the run's
        classes are used
    data_root, feature_dir : where the corpus and the feature cache are

    Returns
    -------
    dict: ``ua``, ``wa``, ``per_class_recall``, ``confusion``, ``n``,
    ``suspect`` (:func:`emokit.metrics.below_chance`), ``corpus`` and
    ``data`` (the fingerprint of the corpus's files it was scored on).
    """
    from emokit.features import FeatureConfig, data_fingerprint
    from emokit.fold_data import label_indices
    from emokit.metrics import below_chance, evaluate
    from emokit.pipeline import corpus_features

    retrain_dir = Path(retrain_dir)
    classical = (retrain_dir / "model.joblib").exists()
    if classical and fitted_without_standardiser(retrain_dir):
        raise ValueError(f"{retrain_dir} was fitted before emokit kept its standardisation, so it cannot be scored "
                         "on another corpus; delete its run folder and run the grid again (seconds)")
    config = read_json(retrain_dir / "config.json")
    if not config.get("feature_config"):
        raise ValueError(f"{retrain_dir} was trained without a feature_config; it cannot be scored on another corpus")
    classes = tuple(config["classes"])
    # the files notebook 01 could read, as the run's own corpus was
    maps, manifest = corpus_features(corpus, data_root, FeatureConfig.from_dict(config["feature_config"]),
                                     feature_dir, classes, progress=progress)
    if classical:
        predictions = _classical_predictions(retrain_dir, config, manifest, feature_dir, progress)
    else:
        predictions = _network_predictions(retrain_dir, config, maps, manifest, device)
    metrics = evaluate(label_indices(manifest["label"], classes), predictions, classes)
    metrics.update(suspect=below_chance(metrics), corpus=corpus, data=data_fingerprint(manifest))
    return metrics


def _network_predictions(retrain_dir: Path, config: dict, maps: np.ndarray, manifest: pd.DataFrame,
                         device) -> np.ndarray:
    """Class indices from a trained network, its maps normalised as in training."""
    from emokit.features import Normalizer, speaker_standardize
    from emokit.splits import speaker_keys
    from emokit.train import load_trained, predict_logits

    model, _ = load_trained(retrain_dir, device)
    if config.get("normalization", "train") == "speaker":  # as in training: each speaker on their own data
        maps = speaker_standardize(maps, speaker_keys(manifest))
    x = Normalizer.from_dict(config["normalizer"])(maps)
    return predict_logits(model, x, device).argmax(dim=1).numpy()


def _classical_predictions(retrain_dir: Path, config: dict, manifest: pd.DataFrame, feature_dir,
                           progress: bool) -> np.ndarray:
    """Class indices from the classical control: the files' functionals,
    standardised with the run's training mean and scale (per speaker first
    where the run did), classified by the fitted model."""
    import joblib

    from emokit.classical import STANDARDISER, ClassicalConfig, functionals, speaker_standardise
    from emokit.splits import speaker_keys

    values = functionals(manifest["path"], ClassicalConfig.from_dict(config["classical"]), cache_dir=feature_dir,
                         progress=progress)
    if not np.isfinite(values).all():
        bad = manifest["path"][~np.isfinite(values).all(axis=1)].tolist()
        raise ValueError(f"functionals are not finite for {bad[:5]}; check these files")
    if config.get("normalization", "train") == "speaker":
        values = speaker_standardise(values, speaker_keys(manifest))
    standardiser = np.load(retrain_dir / STANDARDISER)
    x = (values.astype(np.float64) - standardiser["mean"]) / standardiser["scale"]
    return joblib.load(retrain_dir / "model.joblib").predict(x)


def fitted_without_standardiser(retrain_dir: str | Path) -> bool:
    """A classical run fitted before emokit kept its standardiser: it cannot be scored on another corpus."""
    from emokit.classical import STANDARDISER

    retrain_dir = Path(retrain_dir)
    return (retrain_dir / "model.joblib").exists() and not (retrain_dir / STANDARDISER).exists()


def cross_file(run_dir: str | Path, corpus: str) -> Path:
    """Where a run's scores on ``corpus`` are kept."""
    return Path(run_dir) / "cross" / f"{corpus}.json"


def score_run_folder(run_dir: str | Path, corpus: str, data_fingerprint: str, **kwargs) -> dict | None:
    """:func:`score_run` of a grid run's ``retrain/`` on ``corpus``, kept in
    :func:`cross_file` and reused while neither the corpus's files
    (``data_fingerprint``) nor the run's training (its model file) changed.
    None for a run without a model to score (failed, or a classical run
    fitted before emokit kept its standardiser)."""
    run_dir = Path(run_dir)
    trained = _trained(run_dir)
    if trained is None:
        return None
    kept = _kept_scores(run_dir, corpus, data_fingerprint)
    if kept is not None:
        return kept
    scores = score_run(run_dir / "retrain", corpus, **kwargs)
    scores.update(trained=trained, data=data_fingerprint)  # the caller's key: its manifest may keep other rows
    write_json(scores, cross_file(run_dir, corpus))
    return scores


def needs_scoring(run_dir: str | Path, corpus: str, data_fingerprint: str) -> bool:
    """Whether :func:`score_run_folder` would score (a model without current scores on ``corpus``)."""
    return _trained(Path(run_dir)) is not None and _kept_scores(Path(run_dir), corpus, data_fingerprint) is None


def _trained(run_dir: Path) -> str | None:
    """Size and time of the run's model file: a retraining changes them; None
    without a model (a failed run, or a classical one fitted before emokit
    kept its standardiser)."""
    retrain = run_dir / "retrain"
    if fitted_without_standardiser(retrain):
        return None
    for model in (retrain / "model.pt", retrain / "model.joblib"):
        if model.exists():
            return f"{model.stat().st_size}:{model.stat().st_mtime_ns}"
    return None


def _kept_scores(run_dir: Path, corpus: str, data_fingerprint: str) -> dict | None:
    path = cross_file(run_dir, corpus)
    if not path.exists():
        return None
    kept = read_json(path)
    return kept if kept.get("data") == data_fingerprint and kept.get("trained") == _trained(run_dir) else None


def cross_table(results_dir: str | Path) -> pd.DataFrame:
    """One row per (run, other corpus) score under ``results_dir``.

    Columns: train_corpus, test_corpus, name, fold, seed, ua, wa, suspect, run_dir.
    """
    rows = []
    for path in sorted(Path(results_dir).rglob("cross/*.json")):
        folder = path.parent.parent
        if ".stale-" in folder.name or not (folder / "run.json").exists():
            continue
        run, scores = read_json(folder / "run.json"), read_json(path)
        rows.append({"train_corpus": run.get("corpus"), "test_corpus": scores.get("corpus", path.stem),
                     "name": run.get("name"), "fold": run.get("fold"), "seed": run.get("seed"),
                     "ua": scores.get("ua"), "wa": scores.get("wa"),
                     "suspect": "; ".join(scores.get("suspect") or []) or None, "run_dir": str(folder)})
    return pd.DataFrame(rows, columns=["train_corpus", "test_corpus", "name", "fold", "seed", "ua", "wa", "suspect",
                                       "run_dir"])


def cross_matrix(results: pd.DataFrame, cross: pd.DataFrame, name: str) -> pd.DataFrame:
    """Mean test UA (%) of model ``name``: rows the corpus it was trained on,
    columns the corpus it was tested on. The diagonal is the usual
    speaker-independent test within a corpus (from ``results``,
    :func:`emokit.results.collect`); the rest is :func:`cross_table`'s."""
    done = results[(results["status"] == "done") & (results["name"] == name)]
    within = done.groupby("corpus")["ua"].mean()
    across = cross[cross["name"] == name].groupby(["train_corpus", "test_corpus"])["ua"].mean()
    corpora = sorted(set(within.index) | set(cross["train_corpus"]) | set(cross["test_corpus"]))
    matrix = pd.DataFrame(np.nan, index=pd.Index(corpora, name="trained on"), columns=pd.Index(corpora, name="tested on"))
    for corpus, ua in within.items():
        matrix.loc[corpus, corpus] = ua
    for (a, b), ua in across.items():
        matrix.loc[a, b] = ua
    return matrix * 100


def transfer_comparisons(results: pd.DataFrame) -> pd.DataFrame:
    """Each transferred genome (``<scope>_from_<A>`` on corpus B) against
    random genomes retrained on B and against B's own searched genomes,
    paired over B's (fold, seed) runs (:func:`emokit.stats.paired_comparisons`)."""
    from emokit.stats import paired_comparisons

    done = results[results["status"] == "done"]
    frames = []
    for name in sorted(n for n in done["name"].dropna().unique() if TRANSFER_SEPARATOR in n):
        scope = name.split(TRANSFER_SEPARATOR)[0]
        frames.append(paired_comparisons(done, model=name, against=("random", scope)))
    if not frames:
        return paired_comparisons(done.iloc[:0])
    return pd.concat(frames, ignore_index=True)


def transfer_sentence(comparisons: pd.DataFrame, name: str, corpus: str) -> str:
    """Did the genome searched elsewhere transfer to ``corpus`` better than a random one?"""
    from emokit.stats import decision

    scope, source = name.split(TRANSFER_SEPARATOR)
    row = comparisons[(comparisons["corpus"] == corpus) & (comparisons["model"] == name)
                      & (comparisons["against"] == "random")]
    if row.empty:
        return f"{source} -> {corpus}: no random control on {corpus}, so nothing shows whether the genome transferred."
    row = row.iloc[0]
    outcome = {"better": "transferred better than random genomes of the same space",
               "worse": "transferred worse than random genomes of the same space",
               "suspect": "cannot be judged (runs below chance)",
               "too few": "cannot be judged yet (fewer than 5 paired runs)"}.get(
        decision(row), "did not transfer demonstrably better than random genomes of the same space")
    return f"{source} -> {corpus}: the {scope} genomes searched on {source} {outcome} ({row['verdict']})"
