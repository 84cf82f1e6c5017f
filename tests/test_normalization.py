"""Speaker normalisation: each speaker standardised with their own statistics,
never with labels; runs trained with it predict the same way."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_fold_data, tiny_layout
from emokit.features import speaker_standardize
from emokit.fold_data import fold_data


def voices(seed=0):
    """Maps of 6 speakers whose voices differ by an offset and a scale per row."""
    labels, speakers, roles = tiny_layout()
    rng = np.random.default_rng(seed)
    maps = rng.standard_normal((len(labels), 1, 8, 10)).astype(np.float32)
    for s in sorted(set(speakers)):
        rows = [i for i, k in enumerate(speakers) if k == s]
        maps[rows] = maps[rows] * rng.uniform(0.5, 3, (8, 1)) + rng.normal(0, 5, (8, 1))
    return maps, labels, speakers, roles


def test_each_speaker_gets_zero_mean_and_unit_std_per_row():
    maps, _, speakers, _ = voices()
    out = speaker_standardize(maps, speakers)
    for s in set(speakers):
        block = out[[i for i, k in enumerate(speakers) if k == s]]
        np.testing.assert_allclose(block.mean(axis=(0, 1, 3)), 0, atol=1e-5)
        np.testing.assert_allclose(block.std(axis=(0, 1, 3)), 1, atol=1e-4)
    # a speaker's result depends on that speaker's maps only
    changed = maps.copy()
    changed[[i for i, k in enumerate(speakers) if k == "s0"]] += 100.0
    again = speaker_standardize(changed, speakers)
    others = [i for i, k in enumerate(speakers) if k != "s0"]
    np.testing.assert_array_equal(again[others], out[others])
    with pytest.raises(ValueError, match="speaker keys"):
        speaker_standardize(maps, speakers[:-1])


def test_speaker_normalised_folds_use_no_test_label():
    maps, labels, speakers, roles = voices()
    data = make_fold_data(maps, labels, speakers, roles, normalization="speaker")
    assert data.normalization == "speaker"
    relabelled = labels.copy()
    test = np.array(roles) == "test"
    relabelled[test] = (relabelled[test] + 1) % 4
    other = make_fold_data(maps, relabelled, speakers, roles, normalization="speaker")
    for role in data.x:
        np.testing.assert_array_equal(data.x[role], other.x[role])
    # speakers' offsets are gone: every speaker's normalised maps now share one mean per row
    plain = make_fold_data(maps, labels, speakers, roles)
    spread = lambda d: np.std([d.x["test"][np.array(speakers)[test] == s].mean() for s in ("s4", "s5")])
    assert spread(data) < 0.05 < spread(plain)


def test_unknown_normalization_names_the_known_ones(tiny_fold_data):
    with pytest.raises(ValueError, match="train, speaker"):
        fold_data(np.zeros((48, 1, 32, 32), np.float32), tiny_fold_data.manifest.drop(columns="role"),
                  tiny_fold_data.fold, normalization="global")
