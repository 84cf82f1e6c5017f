"""Speaker-independent folds: grouping, roles, reproducibility, leakage check."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emokit.data import load_corpus
from emokit.splits import ROLES, Fold, check_fold, describe_folds, fold_table, make_folds, speaker_keys


def assert_sound_folds(folds, manifest):
    """Roles partition the manifest, test speakers never leak, each speaker tested once."""
    keys = speaker_keys(manifest)
    tested = []
    for fold in folds:
        assert sum(len(fold.indices(role)) for role in ROLES) == len(manifest)
        test_rows = fold.indices("test")
        assert sorted(set(keys.iloc[test_rows])) == list(fold.test_speakers) == list(fold.speakers("test"))
        # every row of a test speaker is in the test set
        assert set(np.flatnonzero(keys.isin(fold.test_speakers))) == set(test_rows)
        for role in ("search", "train", "val"):
            assert not set(fold.speakers(role)) & set(fold.test_speakers)
        tested += fold.test_speakers
    assert sorted(tested) == sorted(keys.unique())


def test_emodb_gender_pairs(emodb_manifest):
    folds = make_folds(emodb_manifest)
    assert len(folds) == 5
    assert_sound_folds(folds, emodb_manifest)
    genders = emodb_manifest.groupby("speaker")["gender"].first()
    for fold in folds:
        assert sorted(genders[list(fold.test_speakers)]) == ["female", "male"]
    assert [f.test_speakers for f in folds] == [("03", "08"), ("09", "10"), ("11", "13"), ("12", "14"), ("15", "16")]


def test_emodb_role_fractions(emodb_manifest):
    for fold in make_folds(emodb_manifest):
        n = {role: len(fold.indices(role)) for role in ROLES}
        assert abs(n["search"] / (n["search"] + n["train"]) - 0.7) <= 0.05
        assert abs(n["val"] / (len(emodb_manifest) - n["test"]) - 0.15) <= 0.05
        # stratified: every class is in every training role
        for role in ("search", "train", "val"):
            assert set(emodb_manifest["label"].iloc[fold.indices(role)]) == set(emodb_manifest["label"])


def test_seed_reproducible(emodb_manifest):
    first, again, other = (make_folds(emodb_manifest, seed=s) for s in (0, 0, 1))
    for a, b, c in zip(first, again, other):
        assert a.roles.equals(b.roles)
        assert a.test_speakers == c.test_speakers  # test groups are fixed by the scheme
        assert not np.array_equal(a.indices("search"), c.indices("search"))


def test_val_speakers_hold_out_whole_training_speakers(emodb_manifest):
    """With val_speakers, val is every row of that many training speakers,
    none of whom trains; drawn per fold from the seed."""
    keys = speaker_keys(emodb_manifest)
    folds = make_folds(emodb_manifest, val_speakers=1)
    assert_sound_folds(folds, emodb_manifest)
    for fold, utterance_split in zip(folds, make_folds(emodb_manifest)):
        assert fold.test_speakers == utterance_split.test_speakers
        (speaker,) = fold.speakers("val")
        assert speaker not in fold.test_speakers
        assert set(fold.indices("val")) == set(np.flatnonzero(keys == speaker))
        assert speaker not in fold.speakers("search") + fold.speakers("train")
        rest = len(fold.indices("search")) + len(fold.indices("train"))
        assert abs(len(fold.indices("search")) / rest - 0.7) <= 0.05
    assert len({f.speakers("val") for f in folds}) > 1  # not one speaker for every fold
    assert [f.roles.equals(g.roles) for f, g in zip(folds, make_folds(emodb_manifest, val_speakers=1))] == [True] * 5
    two = make_folds(emodb_manifest, val_speakers=2)
    assert all(len(f.speakers("val")) == 2 for f in two)
    with pytest.raises(ValueError, match="leaves no training speaker"):
        make_folds(emodb_manifest, val_speakers=8)  # EmoDB folds have 8 training speakers
    with pytest.raises(ValueError, match="val_speakers"):
        make_folds(emodb_manifest, val_speakers=-1)


def test_emovo_three_folds(datasets_root):
    manifest = load_corpus("emovo", datasets_root / "emovo")
    folds = make_folds(manifest)
    assert [f.test_speakers for f in folds] == [("f1", "m1"), ("f2", "m2"), ("f3", "m3")]
    assert_sound_folds(folds, manifest)


def test_iemocap_one_session_per_fold(iemocap_root):
    manifest = load_corpus("iemocap", iemocap_root)
    folds = make_folds(manifest)
    assert len(folds) == 5
    assert_sound_folds(folds, manifest)
    for n, fold in enumerate(folds, start=1):
        assert fold.test_speakers == (f"Ses0{n}F", f"Ses0{n}M")
        assert set(manifest["session"].iloc[fold.indices("test")]) == {f"Session{n}"}


def test_groups_scheme(datasets_root):
    manifest = load_corpus("emovo", datasets_root / "emovo")
    folds = make_folds(manifest, n_folds=4, scheme="groups", seed=3)
    assert len(folds) == 4
    assert_sound_folds(folds, manifest)
    assert [f.test_speakers for f in folds] == [f.test_speakers for f in make_folds(manifest, n_folds=4, scheme="groups", seed=3)]
    assert len(make_folds(manifest, n_folds=50, scheme="groups")) == 6  # capped at the number of speakers


def test_mixed_corpora_use_prefixed_speakers(emodb_manifest, datasets_root):
    both = pd.concat([emodb_manifest, load_corpus("emovo", datasets_root / "emovo")], ignore_index=True)
    folds = make_folds(both, n_folds=4, scheme="groups")
    assert_sound_folds(folds, both)
    assert all("/" in s for f in folds for s in f.test_speakers)


def test_leakage_check_fires_on_hand_made_fold(emodb_manifest):
    good = make_folds(emodb_manifest)[0]
    roles = good.roles.copy()
    leaked_row = good.indices("test")[0]
    roles.iloc[leaked_row] = "search"
    bad = Fold(index=0, test_speakers=good.test_speakers, roles=roles)
    leaked_speaker = emodb_manifest["speaker"].iloc[leaked_row]
    with pytest.raises(ValueError, match=f"leak.*'{leaked_speaker}'"):
        check_fold(bad, emodb_manifest)
    # test rows of a speaker who is not listed as a test speaker
    unlisted = Fold(index=0, test_speakers=good.test_speakers[:1], roles=good.roles)
    with pytest.raises(ValueError, match=good.test_speakers[1]):
        check_fold(unlisted, emodb_manifest)
    with pytest.raises(ValueError, match="indexed like the manifest"):
        check_fold(good, emodb_manifest.iloc[:-1])


def test_bad_arguments(emodb_manifest):
    with pytest.raises(ValueError, match="session.*gender_pairs.*groups"):
        make_folds(emodb_manifest, scheme="leave_one_out")
    with pytest.raises(ValueError, match="scheme='groups'"):
        make_folds(emodb_manifest, n_folds=3)
    with pytest.raises(ValueError, match="session"):
        make_folds(emodb_manifest, scheme="session")
    with pytest.raises(ValueError, match="unknown role"):
        make_folds(emodb_manifest)[0].indices("dev")


def test_fold_table(emodb_manifest):
    folds = make_folds(emodb_manifest)
    table = fold_table(folds, emodb_manifest)
    assert list(table["test_speakers"]) == ["03, 08", "09, 10", "11, 13", "12, 14", "15, 16"]
    assert (table[[f"n_{r}" for r in ROLES]].sum(axis=1) == len(emodb_manifest)).all()
    assert table[["test_anger", "test_happiness", "test_sadness", "test_neutral"]].to_numpy().sum() == len(emodb_manifest)
    assert "test_speakers" in describe_folds(folds, emodb_manifest)


def test_speaker_keys_prefix_the_corpus_only_when_corpora_mix():
    one = pd.DataFrame({"corpus": "emodb", "speaker": [3, 8]})
    assert list(speaker_keys(one)) == ["3", "8"]
    assert list(speaker_keys(one.drop(columns="corpus"))) == ["3", "8"]  # no corpus column: one corpus
    mixed = pd.DataFrame({"corpus": ["emodb", "ravdess"], "speaker": ["03", "03"]})
    assert list(speaker_keys(mixed)) == ["emodb/03", "ravdess/03"]
