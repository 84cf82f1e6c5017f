"""One fold's arrays, cut by role and normalised, with the settings that made them.

:func:`fold_data` turns a corpus's feature maps and manifest into the
``search`` / ``train`` / ``val`` / ``test`` arrays of one speaker-independent
fold. The normaliser is fitted on the training speakers only, and the
returned :class:`FoldData` records the :class:`~emokit.features.FeatureConfig`
of its maps, so that every later step (search, training, prediction) reads
the feature settings from one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emokit.data import PAPER_CLASSES
from emokit.features import NORMALIZATIONS, FeatureConfig, Normalizer, array_fingerprint, check_finite, \
    speaker_standardize
from emokit.splits import ROLES, Fold, check_fold, speaker_keys


@dataclass
class FoldData:
    """One fold's arrays, per role (``search``, ``train``, ``val``, ``test``).

    ``x[role]``: (n, 1, rows, columns) float32, normalised with
    ``normalizer`` (fitted on the training speakers: search + train + val),
    after each speaker's own standardisation when ``normalization`` is
    ``"speaker"``. ``y[role]``: (n,) int64 class indices into ``classes``.
    ``feature_config``: how the maps were computed (None: hand-made arrays,
    which :func:`emokit.predict` cannot reproduce from audio).
    """

    fold: Fold
    classes: tuple[str, ...]
    normalizer: Normalizer
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    manifest: pd.DataFrame = field(repr=False)
    normalization: str = "train"
    feature_config: FeatureConfig | None = None

    def arrays(self, *roles: str) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of several roles concatenated."""
        return np.concatenate([self.x[r] for r in roles]), np.concatenate([self.y[r] for r in roles])

    def fingerprint(self) -> str:
        """Hash of every role's maps and labels (:func:`~emokit.features.array_fingerprint`)."""
        return array_fingerprint(*(a for r in ROLES for a in (self.x[r], self.y[r])))

    def speakers(self, role: str) -> np.ndarray:
        """Each row's speaker key in ``role``, shape (n,), in the order of ``x[role]``."""
        keys = speaker_keys(self.manifest)
        return keys.to_numpy()[self.fold.indices(role)]

    def check_no_test_speakers(self, roles=("search", "train")) -> None:
        """Raise ``ValueError`` if a test speaker has a row in ``roles`` or ``val``."""
        manifest = self.manifest
        if "speaker" not in manifest or "role" not in manifest:
            raise ValueError("FoldData.manifest needs 'speaker' and 'role' columns to check for test-speaker leakage")
        speakers = speaker_keys(manifest)
        test = set(speakers[manifest["role"] == "test"]) | set(self.fold.test_speakers)
        used = set(speakers[manifest["role"].isin([*roles, "val"])])
        leaked = sorted(test & used)
        if leaked:
            raise ValueError(f"fold {self.fold.index}: test speaker(s) {leaked} have rows among the training / "
                             f"validation roles {[*roles, 'val']}; rebuild the fold with emokit.splits.make_folds")


def label_indices(labels: pd.Series, classes: tuple[str, ...]) -> np.ndarray:
    """Class index of every label; a label outside ``classes`` is an error."""
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(classes)}; load the corpus with these classes")
    lookup = {c: i for i, c in enumerate(classes)}
    return labels.map(lookup).to_numpy(np.int64)


def fold_data(features: np.ndarray, manifest: pd.DataFrame, fold: Fold, classes: tuple[str, ...] = PAPER_CLASSES,
              normalization: str = "train", feature_config: FeatureConfig | None = None) -> FoldData:
    """Split features by the roles of ``fold`` and normalise them.

    ``normalization="train"`` (default): one normaliser fitted on the training
    speakers' utterances only, so nothing of the test speakers enters the
    statistics. ``"speaker"``: first each speaker's maps are standardised with
    that speaker's own statistics (:func:`emokit.features.speaker_standardize`;
    for the test speakers, from their unlabelled maps), then the same
    training-speaker normaliser is applied. No label of a test speaker is used
    either way. ``feature_config`` (how ``features`` were made) is recorded with the arrays.
    """
    if len(features) != len(manifest):
        raise ValueError(f"{len(features)} feature maps for {len(manifest)} manifest rows; extract them together")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; known: {', '.join(NORMALIZATIONS)}")
    check_fold(fold, manifest)
    check_finite(features, list(manifest["path"]) if "path" in manifest else None)
    if normalization == "speaker":
        keys = speaker_keys(manifest)
        features = speaker_standardize(features, keys)
    training = np.concatenate([fold.indices(r) for r in ROLES if r != "test"])
    normalizer = Normalizer.fit(features[training])
    y_all = label_indices(manifest["label"], tuple(classes))
    x = {r: normalizer(features[fold.indices(r)]) for r in ROLES}
    y = {r: y_all[fold.indices(r)] for r in ROLES}
    annotated = manifest.assign(role=fold.roles.to_numpy())
    return FoldData(fold, tuple(classes), normalizer, x, y, annotated, normalization, feature_config)
