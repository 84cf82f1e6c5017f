"""Tests of emokit.features: map shapes, padding, resampling, the cache,
bad files, parallel extraction and leak-free normalisation.

Most tests use a small config (0.5 s, 16 x 16 maps) on synthetic wavs in
``tmp_path``; a few use real EmoDB files with the paper's default config.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from emokit import features as F
from emokit.data import MANIFEST_COLUMNS, skipped_files
from emokit.features import (FEATURE_KINDS, FeatureConfig, Normalizer, cache_key, extract, feature_map, fix_length,
                             load_audio, read_cache)
from emokit.fold_data import fold_data
from emokit.splits import ROLES, make_folds

# 0.5 s at 16 kHz, hop 125 -> 64 frames, pooled by 4 -> 16 columns; 16 MFCCs.
SMALL = FeatureConfig(duration=0.5, n_mfcc=16, n_mels=32, n_fft=512, hop_length=125)


def tone(seconds: float, rate: int = 16000, freq: float = 440.0, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (amp * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int = 16000) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate, subtype="PCM_16")
    return str(path)


def manifest_of(paths: list[str], speakers: list[str] | None = None) -> pd.DataFrame:
    """A hand-made manifest (no header check, so bad files reach extract)."""
    speakers = speakers or [f"{i % 3 + 1:02d}" for i in range(len(paths))]
    labels = ["anger", "happiness", "sadness", "neutral"]
    return pd.DataFrame({
        "path": paths, "corpus": "synth", "speaker": speakers, "gender": "unknown", "session": "",
        "label": [labels[i % 4] for i in range(len(paths))], "raw_label": "x",
    })[MANIFEST_COLUMNS]


@pytest.fixture
def synth(tmp_path) -> pd.DataFrame:
    """Six tone wavs of different pitch and length (0.3 .. 1.0 s)."""
    paths = [write(tmp_path / "wav" / f"u{i}.wav", tone(0.3 + 0.14 * i, freq=200.0 + 150 * i, seed=i)) for i in range(6)]
    return manifest_of(paths)


@pytest.fixture(scope="module")
def emodb_files(datasets_root) -> pd.DataFrame:
    """Four real EmoDB files (16 kHz), one per paper class."""
    from emokit.data import load_corpus

    manifest = load_corpus("emodb", datasets_root / "emodb")
    return manifest.groupby("label", sort=False).head(1).reset_index(drop=True)


# ---------------------------------------------------------------------------
# shapes


def test_default_config_is_the_papers_128_by_128():
    config = FeatureConfig()
    assert (config.sample_rate, config.duration, config.hop_length, config.time_pool) == (16000, 8.0, 250, 4)
    assert config.n_samples == 128000 and config.n_frames == 512
    assert config.shape == (128, 128)
    fmap = feature_map(tone(8.0), config)
    assert fmap.shape == (128, 128) and fmap.dtype == np.float32


def test_extract_real_emodb_default_config(emodb_files):
    maps, manifest = extract(emodb_files, n_jobs=1, progress=False)
    assert maps.shape == (4, 1, 128, 128) and maps.dtype == np.float32
    assert list(manifest["path"]) == list(emodb_files["path"])
    assert manifest.attrs["skipped"] == []
    # Row i of the array is the map of manifest row i.
    for i in (0, 3):
        np.testing.assert_array_equal(maps[i, 0], feature_map(load_audio(manifest["path"][i])))
    assert not np.array_equal(maps[0], maps[1])


def test_extract_keeps_manifest_order_and_columns(synth):
    maps, manifest = extract(synth, SMALL, n_jobs=1, progress=False)
    assert maps.shape == (6, 1, 16, 16) and maps.dtype == np.float32
    pd.testing.assert_frame_equal(manifest, synth)
    for i in range(6):
        np.testing.assert_array_equal(maps[i, 0], feature_map(load_audio(synth["path"][i], SMALL), SMALL))


def test_logmel_kind(synth):
    config = FeatureConfig(kind="logmel", duration=0.5, n_mels=40, n_fft=512, hop_length=125)
    assert config.shape == (40, 16)
    audio = load_audio(synth["path"][0], config)
    logmel = feature_map(audio, config)
    assert logmel.shape == (40, 16) and logmel.dtype == np.float32
    # dB of power with amin 1e-10: never below -100 dB; a 0.3 amplitude tone is far above.
    assert logmel.min() >= -100.0 - 1e-3 and logmel.max() > 0.0
    maps, _ = extract(synth, config, n_jobs=1, progress=False)
    assert maps.shape == (6, 1, 40, 16)
    assert "logmel" in FEATURE_KINDS and "mfcc" in FEATURE_KINDS


# ---------------------------------------------------------------------------
# padding, truncation, resampling


def test_fix_length_pads_with_zeros_and_truncates():
    audio = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(fix_length(audio, 8), [1, 2, 3, 4, 5, 0, 0, 0])
    np.testing.assert_array_equal(fix_length(audio, 3), [1, 2, 3])
    assert fix_length(audio, 8).dtype == np.float32


def test_short_and_long_files_give_the_configured_duration(tmp_path):
    config = FeatureConfig(duration=1.0, n_mfcc=16, n_mels=32, n_fft=512, hop_length=125)
    short_audio, long_audio = tone(0.3), tone(3.0, freq=300.0)
    short = load_audio(write(tmp_path / "short.wav", short_audio), config)
    long = load_audio(write(tmp_path / "long.wav", long_audio), config)
    assert short.shape == long.shape == (16000,)
    assert short.dtype == long.dtype == np.float32
    # Padding: the recording, then exact zeros. Truncation: the first second.
    np.testing.assert_allclose(short[:4800], short_audio, atol=1e-4)  # 16-bit quantisation
    assert not short[4800:].any()
    np.testing.assert_allclose(long, long_audio[:16000], atol=1e-4)
    assert feature_map(short, config).shape == feature_map(long, config).shape == config.shape


def test_resampling_from_22050_keeps_the_pitch(tmp_path):
    config = FeatureConfig(duration=1.0, n_mfcc=16, n_mels=32, n_fft=512, hop_length=125)
    path = write(tmp_path / "at22050.wav", tone(1.0, rate=22050, freq=1000.0), rate=22050)
    audio = load_audio(path, config)
    assert audio.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * config.sample_rate / len(audio)
    assert abs(peak_hz - 1000.0) <= 2.0


def test_real_emodb_is_the_original_release_at_natural_lengths(emodb_manifest):
    """The shared EmoDB is the original release: 16 kHz, lengths 1.2-9 s (not
    a copy cut to 2 s). Its longest file is cut at the map's duration and a
    short one is zero-padded."""
    infos = [soundfile.info(p) for p in emodb_manifest["path"]]
    assert {info.samplerate for info in infos} == {16000}
    seconds = np.array([info.duration for info in infos])
    assert seconds.min() < 1.5 and seconds.max() > 8.0 and len(np.unique(np.round(seconds, 2))) > 100  # 4 classes: 1.43-8.98 s
    config = FeatureConfig()
    short = emodb_manifest["path"][int(np.argmin(seconds))]
    audio = load_audio(short, config)
    assert audio.shape == (config.n_samples,)
    n_real = int(round(seconds.min() * config.sample_rate))
    assert np.abs(audio[:n_real]).max() > 0.01  # speech survived
    assert not audio[n_real + 16:].any()        # then zero padding to 8 s


def test_stereo_is_mixed_to_mono(tmp_path):
    left = tone(0.5)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, np.zeros_like(left)], axis=1), 16000, subtype="PCM_16")
    np.testing.assert_allclose(load_audio(path, SMALL), left / 2, atol=1e-4)


# ---------------------------------------------------------------------------
# invalid configs and inputs


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown feature kind 'spectrogram'") as info:
        FeatureConfig(kind="spectrogram")
    for kind in FEATURE_KINDS:
        assert kind in str(info.value)


def test_more_mfccs_than_mel_bands_is_refused():
    with pytest.raises(ValueError, match="n_mfcc=64 cannot exceed n_mels=40"):
        FeatureConfig(n_mfcc=64, n_mels=40)
    FeatureConfig(kind="logmel", n_mfcc=128, n_mels=40)  # n_mfcc is unused for log-mel


def test_too_short_duration_is_refused():
    with pytest.raises(ValueError, match="fewer than time_pool"):
        FeatureConfig(duration=0.01, hop_length=250, time_pool=4)


def test_config_round_trips_through_a_dict():
    config = FeatureConfig(kind="logmel", n_mels=64, fmax=7600.0)
    assert FeatureConfig.from_dict(config.to_dict()) == config


def test_missing_file_is_an_error(synth):
    broken = synth.copy()
    broken.loc[2, "path"] = str(Path(synth["path"][2]).with_name("gone.wav"))
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        extract(broken, SMALL, n_jobs=1, progress=False)


# ---------------------------------------------------------------------------
# determinism and parallel extraction


def test_two_extractions_are_identical(synth):
    first, _ = extract(synth, SMALL, n_jobs=1, progress=False)
    second, _ = extract(synth, SMALL, n_jobs=1, progress=False)
    np.testing.assert_array_equal(first, second)


def test_two_processes_give_the_same_result_as_one(synth):
    one, manifest_one = extract(synth, SMALL, n_jobs=1, progress=False)
    two, manifest_two = extract(synth, SMALL, n_jobs=2, chunk_size=2, progress=False)
    np.testing.assert_array_equal(one, two)
    pd.testing.assert_frame_equal(manifest_one, manifest_two)


# ---------------------------------------------------------------------------
# silent and corrupt files


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_silence_gives_finite_features_and_a_silent_file_is_skipped(tmp_path, kind):
    config = FeatureConfig(kind=kind, duration=0.5, n_mfcc=16, n_mels=32, n_fft=512, hop_length=125)
    fmap = F.feature_map(np.zeros(config.n_samples, np.float32), config)  # padding is silence: finite
    assert fmap.shape == config.shape and np.isfinite(fmap).all()
    path = write(tmp_path / "silence.wav", np.zeros(8000, np.float32))
    with pytest.warns(UserWarning, match="silent"):
        maps, manifest = extract(manifest_of([path]), config, n_jobs=1, progress=False)
    assert maps.shape == (0, 1, *config.shape) and manifest.attrs["skipped"][0]["path"] == path


def test_corrupt_file_is_skipped_with_a_warning(synth, tmp_path):
    bad = tmp_path / "wav" / "corrupt.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    empty = write(tmp_path / "wav" / "empty.wav", np.zeros(0, np.float32))
    paths = list(synth["path"][:3]) + [str(bad)] + list(synth["path"][3:]) + [empty]
    manifest = manifest_of(paths)
    with pytest.warns(UserWarning, match="corrupt.wav") as record:
        maps, kept = extract(manifest, SMALL, n_jobs=1, progress=False)
    assert any("empty.wav" in str(w.message) for w in record)
    assert maps.shape == (6, 1, 16, 16)
    assert list(kept["path"]) == list(synth["path"])
    skipped = kept.attrs["skipped"]
    assert isinstance(skipped, list) and [s["path"] for s in skipped] == [str(bad), empty]
    assert all(isinstance(s["reason"], str) and s["path"] in s["reason"] for s in skipped)
    assert list(skipped_files(kept)["path"]) == [str(bad), empty]
    # The good files are unaffected by their bad neighbours.
    good, _ = extract(synth, SMALL, n_jobs=1, progress=False)
    np.testing.assert_array_equal(maps, good)


def test_all_files_corrupt_gives_an_empty_array(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.warns(UserWarning, match="bad.wav"):
        maps, kept = extract(manifest_of([str(bad)]), SMALL, n_jobs=1, progress=False)
    assert maps.shape == (0, 1, 16, 16) and maps.dtype == np.float32
    assert len(kept) == 0 and len(kept.attrs["skipped"]) == 1


def test_files_skipped_by_load_corpus_stay_listed(tmp_path):
    """load_corpus's header check and extract's decoding both report skips."""
    from emokit.data import load_corpus

    root = tmp_path / "emodb"
    for name in ("03a01Wa.wav", "03a01Fa.wav", "08a01Ta.wav", "08a01Na.wav"):
        write(root / "wav" / name, tone(0.5))
    (root / "wav" / "08a02Wa.wav").write_bytes(b"junk")
    with pytest.warns(UserWarning, match="08a02Wa.wav"):
        manifest = load_corpus("emodb", root)
    assert len(manifest) == 4
    maps, kept = extract(manifest, SMALL, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert [Path(s["path"]).name for s in kept.attrs["skipped"]] == ["08a02Wa.wav"]
    _, cached = extract(manifest, SMALL, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    assert cached.attrs["skipped"] == kept.attrs["skipped"]


# ---------------------------------------------------------------------------
# cache


def _no_extraction(*args, **kwargs):
    raise AssertionError("extracted again although the cache should have been used")


def test_second_call_loads_from_the_cache(synth, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    maps, manifest = extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    written = sorted(p.name for p in cache.iterdir())
    key = cache_key(synth, SMALL)
    # .lock: the lock one process holds while it extracts (emokit.locks.cache_lock)
    assert written == sorted(f"synth-mfcc-{key}{ext}" for ext in (".csv", ".npy", ".skipped.json", ".lock"))
    mtimes = {p: p.stat().st_mtime_ns for p in cache.iterdir() if p.suffix != ".lock"}

    monkeypatch.setattr(F, "_extract_chunk", _no_extraction)
    cached_maps, cached_manifest = extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    np.testing.assert_array_equal(cached_maps, maps)
    assert cached_maps.dtype == np.float32
    pd.testing.assert_frame_equal(cached_manifest, manifest)  # speaker "01" stays a string
    assert cached_manifest.attrs["skipped"] == []
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir() if p.suffix != ".lock"} == mtimes

    # read_cache: the same maps and manifest from the .npy path alone (what a
    # script on a machine without the audio reads), speakers still strings.
    read_maps, read_manifest = read_cache(cache / f"synth-mfcc-{key}.npy", SMALL)
    np.testing.assert_array_equal(read_maps, maps)
    pd.testing.assert_frame_equal(read_manifest, manifest)
    with pytest.raises(ValueError, match="expected"):
        read_cache(cache / f"synth-mfcc-{key}.npy", FeatureConfig())  # the paper's 128 x 128 maps are not these


def test_cache_survives_a_skipped_file(synth, tmp_path, monkeypatch):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"\x00" * 100)
    manifest = manifest_of(list(synth["path"]) + [str(bad)])
    with pytest.warns(UserWarning):
        maps, kept = extract(manifest, SMALL, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    monkeypatch.setattr(F, "_extract_chunk", _no_extraction)
    cached_maps, cached = extract(manifest, SMALL, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    np.testing.assert_array_equal(cached_maps, maps)
    assert cached.attrs["skipped"] == kept.attrs["skipped"]
    assert cached.attrs["skipped"][0]["path"] == str(bad)


def _counting(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = F._extract_chunk

    def counted(paths, config):
        calls.append(len(paths))
        return real(paths, config)

    monkeypatch.setattr(F, "_extract_chunk", counted)
    return calls


def test_touching_a_file_invalidates_the_cache(synth, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    key = cache_key(synth, SMALL)
    path = synth["path"][2]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert cache_key(synth, SMALL) != key

    calls = _counting(monkeypatch)
    extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    assert sum(calls) == 6
    assert len(list(cache.glob("*.npy"))) == 2


def test_rewriting_a_file_recomputes_its_map(synth, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    before, _ = extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    path = synth["path"][1]
    st = os.stat(path)
    write(Path(path), tone(0.3, freq=3000.0))  # other content and size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # coarse clocks

    calls = _counting(monkeypatch)
    after, _ = extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    assert sum(calls) == 6
    assert not np.array_equal(after[1], before[1])
    np.testing.assert_array_equal(np.delete(after, 1, axis=0), np.delete(before, 1, axis=0))


def test_changing_a_config_field_changes_the_key(synth, tmp_path, monkeypatch):
    keys = {cache_key(synth, SMALL)}
    for change in (dict(n_mfcc=12), dict(hop_length=100), dict(fmax=4000.0), dict(kind="logmel"), dict(sample_rate=8000)):
        keys.add(cache_key(synth, FeatureConfig(**{**SMALL.to_dict(), **change})))
    assert len(keys) == 6
    assert cache_key(synth, SMALL) == cache_key(synth.copy(), FeatureConfig(**SMALL.to_dict()))

    cache = tmp_path / "cache"
    extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    calls = _counting(monkeypatch)
    other = FeatureConfig(**{**SMALL.to_dict(), "n_mfcc": 12})
    maps, _ = extract(synth, other, cache_dir=cache, n_jobs=1, progress=False)
    assert sum(calls) == 6 and maps.shape == (6, 1, 12, 16)
    assert len(list(cache.glob("*.npy"))) == 2


def test_a_half_written_cache_entry_is_recomputed(synth, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    maps, _ = extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    next(cache.glob("*.skipped.json")).unlink()  # written last: marks a complete entry
    calls = _counting(monkeypatch)
    again, _ = extract(synth, SMALL, cache_dir=cache, n_jobs=1, progress=False)
    assert sum(calls) == 6
    np.testing.assert_array_equal(again, maps)


# ---------------------------------------------------------------------------
# normalisation


@pytest.fixture(scope="module")
def emodb_like(datasets_root):
    """The real EmoDB manifest (339 rows, 10 speakers) with random 'features'
    whose every coefficient has its own mean and spread."""
    from emokit.data import load_corpus

    manifest = load_corpus("emodb", datasets_root / "emodb")
    rng = np.random.default_rng(0)
    rows, columns = 8, 6
    offsets = rng.normal(0, 20, size=(1, 1, rows, 1))
    scales = rng.uniform(0.5, 5, size=(1, 1, rows, 1))
    maps = (offsets + scales * rng.standard_normal((len(manifest), 1, rows, columns))).astype(np.float32)
    return maps, manifest


def test_normalizer_sees_only_training_speakers(emodb_like):
    maps, manifest = emodb_like
    fold = make_folds(manifest, seed=0)[0]
    data = fold_data(maps, manifest, fold)
    test = fold.indices("test")
    assert len(test) > 0

    changed = maps.copy()
    changed[test] = changed[test] * 100 + 50
    data_changed = fold_data(changed, manifest, fold)
    np.testing.assert_array_equal(data_changed.normalizer.mean, data.normalizer.mean)
    np.testing.assert_array_equal(data_changed.normalizer.std, data.normalizer.std)
    for role in ("search", "train", "val"):
        np.testing.assert_array_equal(data_changed.x[role], data.x[role])
    assert not np.allclose(data_changed.x["test"], data.x["test"])

    # Fitted on the training speakers' rows, and only those.
    training = np.concatenate([fold.indices(r) for r in ROLES if r != "test"])
    expected = Normalizer.fit(maps[training])
    np.testing.assert_allclose(data.normalizer.mean, expected.mean)
    np.testing.assert_allclose(data.normalizer.mean, maps[training].mean(axis=(0, 1, 3)), rtol=1e-5)


def test_normalised_training_data_is_standard_per_coefficient(emodb_like):
    maps, manifest = emodb_like
    for fold in make_folds(manifest, seed=0)[:2]:
        data = fold_data(maps, manifest, fold)
        x, _ = data.arrays("search", "train", "val")
        assert x.dtype == np.float32 and x.shape[1:] == maps.shape[1:]
        np.testing.assert_allclose(x.mean(axis=(0, 1, 3)), 0.0, atol=1e-4)
        np.testing.assert_allclose(x.std(axis=(0, 1, 3)), 1.0, atol=1e-4)
        assert np.isfinite(data.x["test"]).all()


def test_normalizer_constant_coefficient_and_round_trip():
    maps = np.random.default_rng(1).standard_normal((5, 1, 3, 4)).astype(np.float32)
    maps[:, :, 1] = 7.0  # a constant row: std clipped, no division by zero
    norm = Normalizer.fit(maps)
    out = norm(maps)
    assert np.isfinite(out).all() and not out[:, :, 1].any()
    again = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again(maps), out)
    with pytest.raises(ValueError, match="zero utterances"):
        Normalizer.fit(maps[:0])


def test_the_data_fingerprint_follows_content_not_copies(tmp_path):
    """A corpus copied anew (new modification times) or moved keeps its
    fingerprint, so finished runs stay current; an edited or relabelled
    file changes it. The digest cache spares re-reading unchanged files."""
    import shutil

    from emokit.features import data_fingerprint, file_digests

    original = tmp_path / "a"
    original.mkdir()
    for i in range(3):
        (original / f"{i}.wav").write_bytes(bytes([i]) * 1000)

    def manifest(folder):
        return pd.DataFrame({"path": [str(folder / f"{i}.wav") for i in range(3)], "label": ["anger", "sadness", "neutral"]})

    cache = tmp_path / "digests.json"
    first = data_fingerprint(manifest(original), cache=cache)
    copy = tmp_path / "b"
    shutil.copytree(original, copy)  # new modification times
    for path in copy.iterdir():
        os.utime(path, ns=(1, 1))
    assert data_fingerprint(manifest(copy)) == first == data_fingerprint(manifest(original))
    assert data_fingerprint(manifest(original).assign(label=["anger", "sadness", "anger"])) != first
    (copy / "1.wav").write_bytes(bytes([9]) * 1000)  # same size, other bytes
    assert data_fingerprint(manifest(copy), cache=cache) != first
    # a cache entry whose size and time match is trusted: the file is not read again
    entries = json.loads(cache.read_text())
    path = str(original / "0.wav")
    entries[path][2] = "remembered"
    cache.write_text(json.dumps(entries))
    assert file_digests([path], cache)[path] == "remembered"
    assert file_digests([str(tmp_path / "gone.wav")], cache) == {str(tmp_path / "gone.wav"): "missing"}
