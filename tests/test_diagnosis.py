"""Corpora where speaker and emotion are confounded: measured, and said
before anything runs (emokit.diagnosis)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile

from emokit.diagnosis import CONFOUND_THRESHOLD, risky_settings, speaker_confound

LABELS = ("anger", "happiness", "sadness", "neutral")


def manifest(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["speaker", "label"]).assign(corpus="csv")


def confounded_rows(speakers: int = 8, files: int = 6, first: int = 0) -> list[tuple[str, str]]:
    """Every speaker (numbered from ``first``) speaks one emotion only."""
    return [(f"s{first + s}", LABELS[s % 4]) for s in range(speakers) for _ in range(files)]


def balanced_rows(speakers: int = 6, takes: int = 3) -> list[tuple[str, str]]:
    """Every speaker speaks every emotion equally often."""
    return [(f"s{s}", label) for s in range(speakers) for label in LABELS for _ in range(takes)]


def write_corpus(folder, rows) -> None:
    """DATA/csv/manifest.csv with a short tone per row: its pitch says the emotion, a little of it the speaker."""
    folder.mkdir(parents=True, exist_ok=True)
    table = []
    for i, (speaker, label) in enumerate(rows):
        rate, t = 16000, np.arange(8000) / 16000
        pitch = 200.0 * (LABELS.index(label) + 1) * (1 + 0.02 * int(speaker[1:]))
        noise = 0.01 * np.random.default_rng(i).standard_normal(len(t))
        soundfile.write(folder / f"{i}.wav", 0.3 * np.sin(2 * np.pi * pitch * t) + noise, rate, subtype="PCM_16")
        table.append({"path": f"{i}.wav", "speaker": speaker, "label": label})
    pd.DataFrame(table).to_csv(folder / "manifest.csv", index=False)


def test_single_emotion_speakers_are_counted_and_the_confound_measured():
    confounded = speaker_confound(manifest(confounded_rows()))
    assert (confounded.speakers, confounded.single_emotion_speakers) == (8, 8)
    assert confounded.single_emotion_share == 1.0 and confounded.speaker_information == pytest.approx(1.0)
    assert confounded.confounded
    text = confounded.describe("mine")
    assert text.startswith("mine: 8 of 8 speakers (100 % of the utterances) speak a single emotion")
    assert "normalization: train and val_speakers >= 1" in text

    balanced = speaker_confound(manifest(balanced_rows()))
    assert balanced.single_emotion_speakers == 0 and balanced.speaker_information == pytest.approx(0.0, abs=1e-12)
    assert not balanced.confounded and balanced.describe().endswith("(no confound).")

    # A fifth of the utterances from single-emotion speakers, the rest balanced: at the threshold.
    mixed = manifest(balanced_rows(speakers=8, takes=3) + confounded_rows(speakers=4, files=6, first=8))
    report = speaker_confound(mixed)
    assert report.single_emotion_share == pytest.approx(24 / 120)
    assert 0.5 * CONFOUND_THRESHOLD < report.speaker_information < 2 * CONFOUND_THRESHOLD


def test_the_real_corpora_are_not_confounded(emodb_manifest):
    report = speaker_confound(emodb_manifest)
    assert report.single_emotion_speakers == 0 and report.speaker_information < 0.05 and not report.confounded


def test_risky_settings():
    assert risky_settings("speaker", 0) == ["normalization 'speaker'", "val_speakers 0"]
    assert risky_settings("train", 1) == []


def test_summary_and_grid_say_so_before_running(tmp_path, capsys, monkeypatch):
    import emokit.runner as runner
    from emokit.cli import main
    from emokit.experiments import make_grid

    write_corpus(tmp_path / "confounded" / "csv", confounded_rows())
    write_corpus(tmp_path / "balanced" / "csv", balanced_rows())
    assert main(["summary", "--data", str(tmp_path / "confounded"), "--corpora", "csv"]) == 0
    out = capsys.readouterr().out
    assert "csv: 8 of 8 speakers (100 % of the utterances) speak a single emotion" in out and "confounded" in out
    assert main(["summary", "--data", str(tmp_path / "balanced"), "--corpora", "csv"]) == 0
    assert "(no confound)." in capsys.readouterr().out

    monkeypatch.setattr(runner, "execute_notebook", lambda notebook, output, parameters, timeout=None:
                        output.parent.mkdir(parents=True, exist_ok=True))
    monkeypatch.setattr(runner, "report_skipped", lambda *args, **kwargs: [])

    def grid_warnings(data, **settings):
        grid = make_grid("quick", corpora=["csv"], scopes=[], baselines=["classical"], folds=[0],
                         data_root=str(tmp_path / data), results_dir=str(tmp_path / f"results-{data}-{len(settings)}"),
                         **settings)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runner.run_grid(grid, progress=False)
        return [str(w.message) for w in caught if "confounded" in str(w.message)]

    (message,) = grid_warnings("confounded")  # the quick preset: speaker normalisation, val_speakers 0
    assert message.endswith("This grid runs with normalization 'speaker' and val_speakers 0.")
    assert grid_warnings("confounded", normalization="train", val_speakers=1) == []
    assert grid_warnings("balanced") == []


def test_chance_test_on_counts():
    from emokit.metrics import below_chance, chance_test

    balanced_right = [[9, 1, 0, 0], [1, 9, 0, 0], [0, 0, 9, 1], [0, 0, 1, 9]]
    assert chance_test(balanced_right)["chance"] == pytest.approx(0.25) and chance_test(balanced_right)["p"] > 0.99
    always_anger = [[10, 0, 0, 0], [10, 0, 0, 0], [10, 0, 0, 0], [10, 0, 0, 0]]  # ignores its input: at chance
    assert chance_test(always_anger)["chance"] == pytest.approx(0.25) and below_chance({"confusion": always_anger}) == []
    wrong = [[0, 10, 0, 0], [0, 0, 10, 0], [0, 0, 0, 10], [10, 0, 0, 0]]  # systematically wrong
    (reason,) = below_chance({"confusion": balanced_right, "val_confusion": wrong})
    assert reason.startswith("validation: 0 of 40 right (0 %), below chance (25 %; binomial p")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["confounded", "balanced"])
def test_the_guard_fires_on_the_speaker_normalised_classical_control_only_where_speakers_hold_one_emotion(
        tmp_path, layout):
    """Speaker normalisation centres each speaker's functionals; where a
    speaker speaks one emotion, a held-out utterance of theirs then points
    away from their others, and validation lands below chance."""
    from emokit.pipeline import prepare_fold, retrain_fold

    rows = confounded_rows(speakers=8, files=40) if layout == "confounded" else balanced_rows(speakers=8, takes=10)
    write_corpus(tmp_path / "data" / "csv", rows)
    assert speaker_confound(manifest(rows)).confounded == (layout == "confounded")
    data = prepare_fold("csv", 0, tmp_path / "data", {"duration": 0.5, "n_mfcc": 16, "n_mels": 16},
                        tmp_path / "features", normalization="speaker", n_jobs=1, progress=False)
    metrics = retrain_fold(data, tmp_path / "run", model="classical", cache_dir=tmp_path / "functionals",
                           progress=False)
    if layout == "confounded":
        assert metrics["suspect"] and metrics["suspect"][0].startswith("validation: ")
    else:
        assert metrics["suspect"] == [] and metrics["best_val_ua"] > 0.9
