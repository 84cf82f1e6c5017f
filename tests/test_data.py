"""Corpus loaders: real EmoDB / EMOVO, tiny synthetic corpora, bad input."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from emokit.data import (
    CANONICAL_LABELS, CORPORA, MANIFEST_COLUMNS, PAPER_CLASSES, corpus_root, load_corpus,
    normalize_label, skipped_files, summarize,
)

# ---------------------------------------------------------------------------
# real corpora


def test_emodb_all_classes(datasets_root):
    manifest = load_corpus("emodb", datasets_root / "emodb", classes=None)
    assert list(manifest.columns[: len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    assert len(manifest) == 535
    assert manifest["speaker"].nunique() == 10
    assert manifest["raw_label"].value_counts().to_dict() == {"W": 127, "L": 81, "N": 79, "F": 71, "A": 69, "T": 62, "E": 46}
    assert manifest["path"].is_monotonic_increasing
    assert all(os.path.isabs(p) for p in manifest["path"])
    genders = manifest.groupby("speaker")["gender"].first()
    assert genders["03"] == "male" and genders["08"] == "female"
    assert (genders == "male").sum() == 5
    assert manifest.attrs["skipped"] == []


def test_emodb_four_classes(emodb_manifest):
    assert len(emodb_manifest) == 339
    assert set(emodb_manifest["label"]) == set(PAPER_CLASSES)
    assert emodb_manifest.index.equals(pd.RangeIndex(339))


def test_emovo(datasets_root):
    everything = load_corpus("emovo", datasets_root / "emovo", classes=None)
    assert len(everything) == 588
    assert sorted(everything["speaker"].unique()) == ["f1", "f2", "f3", "m1", "m2", "m3"]
    assert set(everything["label"].value_counts()) == {84}
    assert set(everything["label"]) == {"anger", "happiness", "sadness", "neutral", "fear", "disgust", "surprise"}
    four = load_corpus("emovo", datasets_root / "emovo")
    assert len(four) == 336


def test_default_root_comes_from_emokit_data(datasets_root, monkeypatch):
    monkeypatch.setenv("EMOKIT_DATA", str(datasets_root))
    assert corpus_root("emodb") == datasets_root / "emodb"
    assert len(load_corpus("emodb", check_audio=False)) == 339


def test_summarize(emodb_manifest):
    table = summarize(emodb_manifest)
    assert table.loc["emodb", "files"] == 339
    assert table.loc["emodb", "speakers"] == 10
    assert table.loc["emodb", "anger"] == 127
    assert list(table.columns[2:]) == list(PAPER_CLASSES)


def test_registry_names():
    assert set(CORPORA.names()) == {"emodb", "emovo", "ravdess", "iemocap", "msp_improv", "msp_podcast", "csv"}


# ---------------------------------------------------------------------------
# IEMOCAP (fixture in conftest.py)


def test_iemocap_improvised_by_default(iemocap_root):
    manifest = load_corpus("iemocap", iemocap_root, classes=None)
    assert len(manifest) == 5 * 2 * 2 * 8  # sessions x impro dialogs x speakers x utterances
    assert not manifest["path"].str.contains("script").any()
    assert sorted(manifest["session"].unique()) == [f"Session{n}" for n in range(1, 6)]
    assert manifest["speaker"].nunique() == 10
    # The speaker is the utterance's gender letter, not the dialog's.
    row = manifest[manifest["path"].str.endswith("Ses01M_impro02_F000.wav")].iloc[0]
    assert (row["speaker"], row["gender"], row["session"], row["label"]) == ("Ses01F", "female", "Session1", "anger")
    labels = dict(zip(manifest["raw_label"], manifest["label"]))
    assert labels == {"ang": "anger", "hap": "happiness", "sad": "sadness", "neu": "neutral",
                      "exc": "excitement", "fru": "frustration", "xxx": "other"}


def test_iemocap_options_and_parent_root(iemocap_root):
    four = load_corpus("iemocap", iemocap_root.parent)  # the parent of IEMOCAP_full_release works too
    assert len(four) == 5 * 2 * 2 * 5
    merged = load_corpus("iemocap", iemocap_root, merge_excitement=True)
    assert len(merged) == 5 * 2 * 2 * 6
    assert set(merged.loc[merged["raw_label"] == "exc", "label"]) == {"happiness"}
    with_scripts = load_corpus("iemocap", iemocap_root, classes=None, scripted=True)
    assert with_scripts["path"].str.contains("script01_1").sum() == 5 * 2 * 2


# ---------------------------------------------------------------------------
# other synthetic corpora


MSP_IMPROV_LABELS = """UTD-IMPROV-S01A-F01-P-FM01.avi; A; A:3.0; V:2.5; D:2.5; N:5
['Female-Evaluator-1'; Angry; ; A:3.0; V:2.0; D:3.0; N:5]

UTD-IMPROV-S01H-M01-R-MF02.avi; H; A:3.5; V:4.0; D:3.0; N:5
UTD-IMPROV-S02S-F02-S-FM01.avi; S; A:2.0; V:1.5; D:2.0; N:6
UTD-IMPROV-S02N-M02-T-MF03.avi; X; A:3.0; V:3.0; D:3.0; N:5
"""


@pytest.mark.parametrize("label_name, audio_dir", [("Evalution.txt", "Audio"), ("Evaluation.txt", ".")])
def test_msp_improv(tmp_path, write_wav, label_name, audio_dir):
    (tmp_path / label_name).write_text(MSP_IMPROV_LABELS)
    for line in MSP_IMPROV_LABELS.splitlines():
        if line.startswith("UTD"):
            utt = line.split(".avi")[0].removeprefix("UTD-IMPROV-")
            scenario, speaker, kind = utt.split("-")[:3]
            write_wav(tmp_path / audio_dir / f"session{int(speaker[1:])}" / scenario / kind / f"MSP-IMPROV-{utt}.wav")
    manifest = load_corpus("msp_improv", tmp_path, classes=None)
    assert sorted(manifest["speaker"]) == ["F01", "F02", "M01", "M02"]
    by_speaker = manifest.set_index("speaker")
    assert by_speaker.loc["F01", "label"] == "anger" and by_speaker.loc["F01", "session"] == "session1"
    assert by_speaker.loc["M01", "label"] == "happiness" and by_speaker.loc["M01", "gender"] == "male"
    assert by_speaker.loc["F02", "label"] == "sadness" and by_speaker.loc["F02", "session"] == "session2"
    assert by_speaker.loc["M02", "label"] == "other"
    assert len(load_corpus("msp_improv", tmp_path)) == 3


def test_msp_podcast(tmp_path, write_wav):
    (tmp_path / "Labels").mkdir()
    pd.DataFrame({
        "FileName": ["MSP-PODCAST_0001_0001.wav", "MSP-PODCAST_0001_0002.wav", "MSP-PODCAST_0002_0001.wav",
                     "MSP-PODCAST_0003_0001.wav", "MSP-PODCAST_0003_0002.wav"],
        "EmoClass": ["A", "H", "U", "X", "N"],
        "EmoAct": [5.0, 4.0, 3.0, 4.0, 3.0], "EmoVal": [2.0, 6.0, 4.0, 4.0, 4.0], "EmoDom": [5.0, 4.0, 4.0, 4.0, 4.0],
        "SpkrID": ["127", "127", "Unknown", "Unknown", "0042"],
        "Gender": ["Male", "Male", "Unknown", "Unknown", "Female"],
        "Split_Set": ["Train", "Train", "Development", "Test1", "Train"],
    }).to_csv(tmp_path / "Labels" / "labels_consensus.csv", index=False)
    for i, name in enumerate(pd.read_csv(tmp_path / "Labels" / "labels_consensus.csv")["FileName"]):
        write_wav(tmp_path / "Audios" / name, seed=i)
    manifest = load_corpus("msp_podcast", tmp_path, classes=None)
    assert list(manifest["label"]) == ["anger", "happiness", "surprise", "other", "neutral"]
    assert list(manifest["speaker"]) == ["127", "127", "unknown_MSP-PODCAST_0002_0001", "unknown_MSP-PODCAST_0003_0001", "0042"]
    assert list(manifest["gender"]) == ["male", "male", "unknown", "unknown", "female"]
    assert list(manifest["session"]) == ["Train", "Train", "Development", "Test1", "Train"]
    assert manifest["arousal"].iloc[0] == 5.0
    assert len(load_corpus("msp_podcast", tmp_path)) == 3


def test_ravdess(tmp_path, write_wav):
    names = {
        "Actor_01": ["03-01-05-01-01-01-01.wav", "03-01-02-02-01-02-01.wav", "03-02-03-01-01-01-01.wav"],
        "Actor_02": ["03-01-04-01-02-01-02.wav", "03-01-01-01-01-01-02.wav"],
    }
    for actor, files in names.items():
        for name in files:
            write_wav(tmp_path / actor / name)
    manifest = load_corpus("ravdess", tmp_path, classes=None)
    assert len(manifest) == 4  # the song file (vocal channel 02) is left out by default
    assert dict(zip(manifest["raw_label"], manifest["label"])) == {"05": "anger", "02": "calm", "04": "sadness", "01": "neutral"}
    assert dict(zip(manifest["speaker"], manifest["gender"])) == {"Actor_01": "male", "Actor_02": "female"}
    assert len(load_corpus("ravdess", tmp_path, classes=None, song=True)) == 5
    assert len(load_corpus("ravdess", tmp_path)) == 3


def test_csv(tmp_path, write_wav):
    for name in ["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]:
        write_wav(tmp_path / "audio" / name)
    outside = write_wav(tmp_path / "elsewhere" / "f.wav")
    pd.DataFrame({
        "path": ["audio/a.wav", "audio/b.wav", "audio/c.wav", "audio/d.wav", "audio/e.wav", str(outside)],
        "speaker": ["s1", "s1", "s2", "s2", "s3", "s3"],
        "label": ["Angry", "joy", "sad", "NEU", "Weird", "hap"],
        "gender": ["M", "m", "female", "F", "", "x"],
    }).to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ValueError, match=r"'Weird' \(1 rows\) are not emotion names"):
        load_corpus("csv", tmp_path, classes=None)  # an unknown label is refused, not kept or dropped silently
    manifest = load_corpus("csv", tmp_path, classes=None, label_map={"weird": "other"})  # a folder with manifest.csv
    assert list(manifest["label"]) == ["anger", "happiness", "sadness", "neutral", "other", "happiness"]
    assert list(manifest["raw_label"])[:2] == ["Angry", "joy"]
    assert list(manifest["gender"]) == ["male", "male", "female", "female", "unknown", "unknown"]
    assert manifest["path"].iloc[0] == str(tmp_path / "audio" / "a.wav")
    assert manifest["path"].iloc[-1] == str(outside)
    assert set(manifest["session"]) == {""} and set(manifest["corpus"]) == {"csv"}
    four = load_corpus("csv", tmp_path / "manifest.csv", label_map={"weird": "other"})  # the file itself
    assert len(four) == 5 and four.attrs["left_out_by_class"] == {"other": 1}


def test_normalize_label():
    assert [normalize_label(x) for x in ["ANGRY", " happy ", "joy", "neu", "Surprised", "Mystery"]] == [
        "anger", "happiness", "happiness", "neutral", "surprise", "mystery"]


# ---------------------------------------------------------------------------
# bad input


def test_missing_folder_names_folder_and_layout(tmp_path):
    missing = tmp_path / "no_such_corpus"
    with pytest.raises(FileNotFoundError, match="no_such_corpus") as info:
        load_corpus("emodb", missing)
    assert "NNtTTEv.wav" in str(info.value)


@pytest.mark.parametrize("name, hint", [("emodb", "NNtTTEv"), ("emovo", "EEE-SS-TT"), ("ravdess", "Actor_XX"),
                                        ("iemocap", "EmoEvaluation"), ("msp_improv", "Evalution.txt"),
                                        ("msp_podcast", "labels_consensus.csv"), ("csv", "manifest.csv")])
def test_wrong_layout_says_what_is_expected(tmp_path, name, hint):
    with pytest.raises(FileNotFoundError, match=hint):
        load_corpus(name, tmp_path)


def test_unknown_corpus_lists_known():
    with pytest.raises(KeyError, match="emodb.*iemocap|iemocap.*emodb"):
        load_corpus("emodbb", "/nowhere")


def test_unknown_class_lists_canonical(datasets_root):
    with pytest.raises(ValueError, match="boredom") as info:
        load_corpus("emodb", datasets_root / "emodb", classes=("angry", "sadness"))
    assert "'angry'" in str(info.value)
    assert all(label in str(info.value) for label in CANONICAL_LABELS)


def test_bad_audio_is_reported_and_left_out(tmp_path, write_wav):
    wav = tmp_path / "wav"
    for name in ["03a01Wa.wav", "08a01Na.wav", "09a01Fa.wav"]:
        write_wav(wav / name)
    (wav / "10a01Wb.wav").write_bytes(np.random.default_rng(0).bytes(2000))  # corrupt
    soundfile.write(wav / "11a01Ta.wav", np.zeros(0), 16000)  # header only, no frames
    with pytest.warns(UserWarning, match="10a01Wb.wav") as record:
        manifest = load_corpus("emodb", tmp_path)
    message = str(record[0].message)
    assert "11a01Ta.wav" in message and "no audio frames" in message and "unreadable" in message
    assert [Path(p).name for p in manifest["path"]] == ["03a01Wa.wav", "08a01Na.wav", "09a01Fa.wav"]
    skipped = skipped_files(manifest)
    assert list(skipped.columns) == ["path", "reason"]
    assert sorted(Path(p).name for p in skipped["path"]) == ["10a01Wb.wav", "11a01Ta.wav"]
    assert len(manifest.attrs["skipped"]) == 2
    # Without the check every file is listed.
    assert len(load_corpus("emodb", tmp_path, check_audio=False)) == 5


def test_manifests_with_skipped_files_concatenate(tmp_path, write_wav):
    """attrs hold plain records, so pd.concat (which compares attrs) still works."""
    write_wav(tmp_path / "wav" / "03a01Wa.wav")
    (tmp_path / "wav" / "08a01Wa.wav").write_bytes(b"not audio")
    with pytest.warns(UserWarning):
        first = load_corpus("emodb", tmp_path)
        second = load_corpus("emodb", tmp_path)
    assert len(pd.concat([first, second])) == 2


def test_missing_labelled_wav_is_reported(iemocap_root):
    gone = iemocap_root / "Session2" / "sentences" / "wav" / "Ses02F_impro01" / "Ses02F_impro01_M000.wav"
    gone.unlink()
    with pytest.warns(UserWarning, match="Ses02F_impro01_M000.wav"):
        manifest = load_corpus("iemocap", iemocap_root)
    assert len(manifest) == 5 * 2 * 2 * 5 - 1
    assert skipped_files(manifest)["reason"].tolist() == ["missing file"]
