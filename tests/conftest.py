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
                      f"C-E1:\tNeutral;\t()", ""]
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
