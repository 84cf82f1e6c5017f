"""Shared pytest fixtures. Keep each section small and say who uses it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

# ---------------------------------------------------------------------------
# Real corpora (tests/test_data.py, tests/test_splits.py)


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    """Folder holding the read-only real corpora ``emodb/`` and ``emovo/``.

    ``$EMOKIT_DATA`` when it holds them, else the shared copy beside the
    repository. They are always there in CI, so a missing copy fails loudly.
    """
    candidates = [Path(os.environ["EMOKIT_DATA"])] if os.environ.get("EMOKIT_DATA") else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    for folder in candidates:
        if (folder / "emodb" / "wav").is_dir() and (folder / "emovo").is_dir():
            return folder
    pytest.fail(f"real corpora not found: none of {[str(c) for c in candidates]} holds emodb/wav and emovo/")


@pytest.fixture(scope="session")
def emodb_manifest(datasets_root):
    """EmoDB, the paper's four classes (339 rows)."""
    from emokit.data import load_corpus

    return load_corpus("emodb", datasets_root / "emodb")


# ---------------------------------------------------------------------------
# Synthetic corpora in published layouts (tests/test_data.py, tests/test_splits.py)


def write_noise_wav(path: Path, seconds: float = 0.2, sample_rate: int = 16000, seed: int = 0) -> Path:
    """A short mono 16-bit wav of quiet noise; parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.01 * np.random.default_rng(seed).standard_normal(int(seconds * sample_rate))
    soundfile.write(path, noise, sample_rate, subtype="PCM_16")
    return path


@pytest.fixture
def write_wav():
    """``write_wav(path, seconds=0.2)`` -> path of a fresh noise wav."""
    return write_noise_wav


# IEMOCAP codes cycled through each dialog: 4-class ones, plus exc/fru/xxx.
IEMOCAP_CODES = ["ang", "hap", "sad", "neu", "exc", "fru", "xxx", "neu"]


def _iemocap_dialog(session_dir: Path, dialog: str, n_per_speaker: int) -> None:
    labels_dir = session_dir / "dialog" / "EmoEvaluation"
    labels_dir.mkdir(parents=True, exist_ok=True)
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for gender in "FM":
        for i in range(n_per_speaker):
            utterance = f"{dialog}_{gender}{i:03d}"
            write_noise_wav(session_dir / "sentences" / "wav" / dialog / f"{utterance}.wav", seed=i)
            code = IEMOCAP_CODES[i % len(IEMOCAP_CODES)]
            lines += [f"[{i}.0000 - {i}.5000]\t{utterance}\t{code}\t[2.5000, 2.5000, 2.5000]",
                      "C-E1:\tNeutral;\t()", ""]
    (labels_dir / f"{dialog}.txt").write_text("\n".join(lines))


@pytest.fixture
def iemocap_root(tmp_path) -> Path:
    """Tiny IEMOCAP: ``tmp/IEMOCAP_full_release/Session1..5``; returns the release folder.

    Per session: ``Ses0NF_impro01`` and ``Ses0NM_impro02`` (8 utterances per
    speaker each, codes :data:`IEMOCAP_CODES`) and ``Ses0NF_script01_1`` (2 per
    speaker). Each session has 2 speakers, ``Ses0NF`` and ``Ses0NM``.
    """
    release = tmp_path / "IEMOCAP_full_release"
    for n in range(1, 6):
        session_dir = release / f"Session{n}"
        _iemocap_dialog(session_dir, f"Ses0{n}F_impro01", 8)
        _iemocap_dialog(session_dir, f"Ses0{n}M_impro02", 8)
        _iemocap_dialog(session_dir, f"Ses0{n}F_script01_1", 2)
    return release


# ---------------------------------------------------------------------------
# Synthetic fold data for training (tests/test_train.py, tests/test_predict.py)

TINY_CLASSES = ("anger", "happiness", "sadness", "neutral")
TINY_TEST_SPEAKERS = ("s4", "s5")


def tiny_layout() -> tuple[np.ndarray, list[str], list[str]]:
    """Labels, speakers and roles of 48 utterances: 6 speakers x 2 takes x 4 classes.

    Speakers s4, s5 are the test speakers (16 rows); of s0..s3, 16 rows are
    ``train``, 8 ``val`` and 8 ``search``, every class in each role.
    """
    labels, speakers, roles = [], [], []
    take_roles = {"s0": ("train", "search"), "s1": ("train", "search"), "s2": ("train", "val"), "s3": ("val", "train")}
    for s in range(6):
        speaker = f"s{s}"
        for take in range(2):
            for label in range(4):
                labels.append(label)
                speakers.append(speaker)
                roles.append("test" if speaker in TINY_TEST_SPEAKERS else take_roles[speaker][take])
    return np.array(labels), speakers, roles


def make_fold_data(features: np.ndarray, labels, speakers, roles, paths=None, classes=TINY_CLASSES,
                   normalization="train", feature_config=None):
    """A FoldData from hand-made arrays: features (n, 1, rows, columns), labels as class indices."""
    import pandas as pd

    from emokit.fold_data import fold_data
    from emokit.splits import Fold

    n = len(labels)
    manifest = pd.DataFrame({
        "path": paths if paths is not None else [f"utt{i:03d}.wav" for i in range(n)],
        "corpus": "synthetic", "speaker": speakers, "gender": "unknown", "session": "",
        "label": [classes[k] for k in labels], "raw_label": [classes[k] for k in labels],
    })
    test_speakers = tuple(sorted({s for s, r in zip(speakers, roles) if r == "test"}))
    fold = Fold(index=0, test_speakers=test_speakers, roles=pd.Series(roles, index=manifest.index, name="role"),
                row_speakers=pd.Series(speakers, index=manifest.index))
    return fold_data(features, manifest, fold, classes, normalization, feature_config)


@pytest.fixture(scope="session")
def tiny_fold_factory():
    """``tiny_fold_factory(features, paths=None)`` -> FoldData of 48 maps laid
    out as in :func:`tiny_layout`; ``tiny_fold_factory.labels`` are their classes."""
    labels, speakers, roles = tiny_layout()

    def build(features: np.ndarray, paths=None, feature_config=None):
        return make_fold_data(features, labels, speakers, roles, paths, feature_config=feature_config)

    build.labels = labels
    return build


@pytest.fixture(scope="session")
def tiny_fold_data(tiny_fold_factory):
    """48 random (1, 32, 32) maps, learnable: class k adds 1.5 to rows 8k..8k+7."""
    labels = tiny_fold_factory.labels
    features = np.random.default_rng(0).standard_normal((len(labels), 1, 32, 32)).astype(np.float32)
    for i, k in enumerate(labels):
        features[i, 0, 8 * k : 8 * k + 8] += 1.5
    return tiny_fold_factory(features)
