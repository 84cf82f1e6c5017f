"""A user's own corpora: named corpora under the data root, with a
corpus.yaml, and folds balanced by class on uneven, confounded corpora."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from emokit.data import PAPER_CLASSES


def _named_corpus(data, name, rows, settings: str | None = None):
    folder = data / name
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    if settings is not None:
        (folder / "corpus.yaml").write_text(settings)
    return folder


def _rows(labels, speakers=4, takes=2, audio=None):
    """Manifest rows; with ``audio`` (a folder) each row gets a 0.1 s wav there."""
    rows = [{"path": f"s{s}_{label}_{t}.wav", "speaker": f"s{s}", "label": label}
            for s in range(speakers) for label in labels for t in range(takes)]
    if audio is not None:
        import soundfile

        audio.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(0).standard_normal(1600).astype(np.float32) * 0.1
        for row in rows:
            soundfile.write(audio / row["path"], noise, 16000)
    return rows


def test_any_folder_with_a_manifest_is_a_corpus_of_that_name(tmp_path, capsys):
    from emokit.cli import main
    from emokit.data import available_corpora, corpus_classes, load_corpus

    data = tmp_path / "data"
    _named_corpus(data, "mine", _rows(["ang", "hap", "sad", "neu", "fru"], audio=data / "mine"),
                  "label_map: {ang: anger, hap: happiness, sad: sadness, neu: neutral, fru: frustration}\n"
                  "classes: [anger, sadness, neutral]\n")
    _named_corpus(data, "other", _rows(list(PAPER_CLASSES), audio=data / "other"))
    (data / "notes").mkdir()  # a folder without a manifest is not a corpus
    assert available_corpora(data) == ["mine", "other"]
    manifest = load_corpus("mine", data / "mine", check_audio=False)
    assert set(manifest["corpus"]) == {"mine"} and sorted(manifest["label"].unique()) == ["anger", "neutral", "sadness"]
    assert manifest.attrs["left_out_by_class"] == {"frustration": 8, "happiness": 8}
    assert corpus_classes("mine", data) == ("anger", "sadness", "neutral")
    assert corpus_classes("other", data) == PAPER_CLASSES
    assert len(load_corpus("mine", data / "mine", classes=None, check_audio=False)) == 40  # an explicit choice wins
    assert main(["summary", "--data", str(data)]) == 0  # no --corpora: every corpus there
    out = capsys.readouterr().out
    assert "== mine: 24 files, 4 speakers (classes: anger, sadness, neutral)" in out and "== other: 32 files" in out


def test_an_unknown_corpus_lists_what_the_data_root_holds(tmp_path):
    from emokit.data import load_corpus

    data = tmp_path / "data"
    _named_corpus(data, "mine", _rows(list(PAPER_CLASSES)))
    with pytest.raises(KeyError) as caught:
        load_corpus("mien", data / "mien")
    message = str(caught.value)
    assert f"Corpora under {data}: mine" in message and "loaders: emodb, emovo" in message
    assert "manifest.csv with columns path, speaker, label" in message and "corpuss" not in message


def test_a_corpus_yaml_with_a_mistake_names_the_file(tmp_path):
    from emokit.data import load_corpus

    data = tmp_path / "data"
    root = _named_corpus(data, "mine", _rows(list(PAPER_CLASSES)), "label_mapping: {ang: anger}\n")
    with pytest.raises(ValueError, match=r"corpus.yaml: unknown key\(s\) \['label_mapping'\]; known: label_map, classes"):
        load_corpus("mine", root, check_audio=False)
    (root / "corpus.yaml").write_text("classes: [anger, joy]\n")
    with pytest.raises(ValueError, match="corpus.yaml: classes must be a list of canonical labels"):
        load_corpus("mine", root, check_audio=False)


# Files per speaker and class of studies/confounded_corpus.py's corpus (EmoDB and
# EMOVO speakers, 13 of 16 keeping one emotion): anger, happiness, sadness, neutral.
CONFOUNDED = [(14, 7, 7, 11), (11, 0, 0, 0), (10, 0, 0, 0), (0, 2, 0, 0), (0, 0, 5, 0), (0, 0, 0, 3), (0, 8, 0, 0),
              (0, 0, 6, 0), (0, 0, 0, 5), (14, 11, 9, 5), (14, 14, 14, 14), (7, 0, 0, 0), (0, 0, 13, 0), (0, 8, 0, 0),
              (0, 0, 0, 9), (14, 0, 0, 0)]


def _uneven_confounded() -> pd.DataFrame:
    """A manifest (no audio) of 16 speakers holding 2 to 56 files, 13 of them one emotion each."""
    rows = [{"path": f"/x/s{s}_{label}_{i}.wav", "speaker": f"s{s:02d}", "label": label}
            for s, counts in enumerate(CONFOUNDED) for label, n in zip(PAPER_CLASSES, counts) for i in range(n)]
    table = pd.DataFrame(rows)
    return table.assign(corpus="uneven", gender="unknown", session="", raw_label=table["label"])


def test_folds_of_an_uneven_confounded_corpus_hold_every_class(recwarn):
    from sklearn.model_selection import StratifiedGroupKFold

    from emokit.splits import fold_imbalance, fold_table, make_folds, missing_classes, speaker_keys

    manifest = _uneven_confounded()
    keys = speaker_keys(manifest)
    # The rule before: a single StratifiedGroupKFold draw leaves classes out of test folds here.
    draw = list(StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(manifest, manifest["label"], keys))
    assert any(manifest["label"].iloc[test].nunique() < 4 for _, test in draw)
    labels = manifest["label"].to_numpy()
    before = fold_imbalance([labels[test] for _, test in draw], labels)
    after = fold_imbalance([labels[f.indices("test")] for f in make_folds(manifest)], labels)
    assert before[0] >= 1 and after[0] == 0  # (fold, class) pairs without a test utterance
    for seed in (0, 1, 2):
        folds = make_folds(manifest, seed=seed)
        assert len(folds) == 5 and missing_classes(folds, manifest) == {}
        table = fold_table(folds, manifest)
        assert (table[[f"test_{c}" for c in PAPER_CLASSES]] > 0).all().all()
        tested = sorted(s for fold in folds for s in fold.test_speakers)
        assert tested == sorted(keys.unique())  # every speaker tested once, none twice
    assert not [w for w in recwarn if "has no" in str(w.message)]
    assert [f.test_speakers for f in make_folds(manifest, seed=1)] == [f.test_speakers for f in make_folds(manifest, seed=1)]


def test_a_fold_that_cannot_hold_a_class_is_named_in_a_warning():
    from emokit.splits import make_folds, missing_classes

    manifest = _uneven_confounded()
    manifest = manifest[~((manifest["label"] == "sadness") & ~manifest["speaker"].isin(["s00", "s04"]))]
    with pytest.warns(UserWarning, match=r"fold \d has no sadness.*mean recall over the classes it holds"):
        folds = make_folds(manifest.reset_index(drop=True))
    assert sorted(c for lacking in missing_classes(folds, manifest.reset_index(drop=True)).values() for c in lacking) \
        == ["sadness"] * 3  # two sad speakers, five folds


def test_emodb_and_emovo_keep_their_gender_pair_folds(emodb_manifest, datasets_root):
    from emokit.data import load_corpus
    from emokit.splits import fold_scheme, make_folds

    emovo = load_corpus("emovo", datasets_root / "emovo", check_audio=False)
    assert fold_scheme(emodb_manifest) == fold_scheme(emovo) == "gender_pairs"
    assert [f.test_speakers for f in make_folds(emodb_manifest)] == [("03", "08"), ("09", "10"), ("11", "13"),
                                                                     ("12", "14"), ("15", "16")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [f.test_speakers for f in make_folds(emovo)] == [("f1", "m1"), ("f2", "m2"), ("f3", "m3")]


def test_only_runs_on_balanced_folds_record_the_fold_rule(tmp_path, datasets_root):
    from emokit.experiments import Grid, Run, run_settings

    data = tmp_path / "data"
    _named_corpus(data, "mine", _rows(list(PAPER_CLASSES)))
    (data / "emodb").symlink_to(datasets_root / "emodb")
    grid = Grid(corpora=["mine", "emodb"], data_root=str(data), results_dir=str(tmp_path / "r"))
    mine = run_settings(grid, Run("mine", "baseline", "cnn", 0, 0, tmp_path / "a"))
    emodb = run_settings(grid, Run("emodb", "baseline", "cnn", 0, 0, tmp_path / "b"))
    assert mine["folds"] == "balanced by class" and "folds" not in emodb


def test_a_named_corpus_with_its_own_classes_reaches_a_fold(tmp_path):
    """corpus.yaml's classes are the classes of the fold's arrays (and so of the networks)."""
    from emokit.pipeline import prepare_fold

    data = tmp_path / "data"
    _named_corpus(data, "mine", _rows(["ang", "sad", "neu", "hap"], speakers=4, takes=3, audio=data / "mine"),
                  "label_map: {ang: anger, sad: sadness, neu: neutral, hap: happiness}\n"
                  "classes: [anger, sadness, neutral]\n")
    fold = prepare_fold("mine", 0, data_root=data, features={"duration": 0.1, "n_mfcc": 8, "n_mels": 8},
                        feature_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert fold.classes == ("anger", "sadness", "neutral")
    assert sorted(set(fold.manifest["label"])) == ["anger", "neutral", "sadness"]
    assert set(np.concatenate([fold.y[role] for role in fold.y])) == {0, 1, 2}


def test_a_29_speaker_corpus_like_the_issues_holds_every_class_in_every_test_fold():
    """About 350 files of 29 speakers: one speaker with 80 files, eleven with 2,
    26 of them speaking one emotion, 3 all four."""
    from emokit.splits import make_folds, missing_classes

    rng = np.random.default_rng(0)
    sizes = [80] + [2] * 11 + list(rng.integers(3, 25, size=14))
    rows = [{"path": f"/x/s{s}_{i}.wav", "speaker": f"s{s:02d}", "label": PAPER_CLASSES[s % 4]}
            for s, size in enumerate(sizes) for i in range(size)]
    rows += [{"path": f"/x/s{s}_{label}_{i}.wav", "speaker": f"s{s:02d}", "label": label}
             for s in range(26, 29) for label in PAPER_CLASSES for i in range(6)]
    table = pd.DataFrame(rows)
    manifest = table.assign(corpus="uneven29", gender="unknown", session="", raw_label=table["label"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fold may lack a class here
        folds = make_folds(manifest)
    assert len(folds) == 5 and missing_classes(folds, manifest) == {}
    assert manifest["speaker"].nunique() == 29 and 300 <= len(manifest) <= 450


def test_a_corpus_of_many_speakers_keeps_one_stratified_draw():
    """Above BALANCE_MAX_SPEAKERS a draw is balanced and a search slow: the folds are one draw's."""
    from sklearn.model_selection import StratifiedGroupKFold

    from emokit.splits import BALANCE_MAX_SPEAKERS, make_folds

    n = BALANCE_MAX_SPEAKERS + 50
    rows = [{"path": f"/x/{s}_{k}.wav", "speaker": f"s{s:03d}", "label": PAPER_CLASSES[(s + k) % 4]}
            for s in range(n) for k in range(3)]
    table = pd.DataFrame(rows)
    manifest = table.assign(corpus="many", gender="unknown", session="", raw_label=table["label"])
    draw = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(manifest, manifest["label"],
                                                                                 manifest["speaker"])
    expected = sorted(tuple(sorted(set(manifest["speaker"].iloc[test]))) for _, test in draw)
    assert sorted(f.test_speakers for f in make_folds(manifest)) == expected
