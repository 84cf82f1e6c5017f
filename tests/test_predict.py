"""emokit.predict on real (tiny) wav files, and the ``emokit`` command line."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile

from emokit.cli import COMMANDS, build_parser, main
from emokit.features import FeatureConfig, extract
from emokit.prediction import predict
from emokit.train import TrainConfig, train_model

# 0.5 s at 16 kHz, hop 125 -> 64 frames, pooled by 2 -> 32 x 32 maps
FEATURES = FeatureConfig(duration=0.5, n_mfcc=32, n_mels=32, hop_length=125, time_pool=2)
FAST = TrainConfig(epochs=2, batch_size=8, device="cpu", num_threads=1)


def write_tone(path, frequency: float, seconds: float = 0.5, sample_rate: int = 16000, seed: int = 0):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = 0.005 * np.random.default_rng(seed).standard_normal(len(t))
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency * t) + noise, sample_rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_fold_factory):
    """A 'cnn' run trained 2 epochs on MFCCs of 48 tones (one pitch range per class)."""
    import pandas as pd

    root = tmp_path_factory.mktemp("predict")
    labels = tiny_fold_factory.labels
    paths = [str(write_tone(root / f"utt{i:02d}.wav", 220 * (k + 1) * (1 + 0.02 * (i % 3)), seed=i))
             for i, k in enumerate(labels)]
    features, _ = extract(pd.DataFrame({"path": paths}), FEATURES, cache_dir=None, n_jobs=1, progress=False)
    data = tiny_fold_factory(features, paths=paths, feature_config=FEATURES)
    run_dir = root / "run"
    train_model("cnn", data, run_dir, FAST, model_kwargs={"input_shape": FEATURES.shape}, progress=False)
    return run_dir


@pytest.fixture
def audio_files(tmp_path, write_wav):
    """Two good files (one at 22.05 kHz and short, to be resampled and padded) and a corrupt one."""
    good = [write_wav(tmp_path / "noise.wav", seconds=0.5),
            write_tone(tmp_path / "tone.wav", 440, seconds=0.3, sample_rate=22050)]
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF this is not really a wav file")
    return good, bad


def test_predict_scores_good_files_and_names_bad_ones(tiny_run, audio_files, tiny_fold_data):
    (noise, tone), bad = audio_files
    classes = tiny_fold_data.classes
    table = predict(tiny_run, [noise, bad, tone])
    assert list(table["path"]) == [str(noise), str(bad), str(tone)]
    prob_columns = [f"p_{c}" for c in classes]
    assert list(table.columns) == ["path", "label", *prob_columns, "error"]

    ok = table.iloc[[0, 2]]
    np.testing.assert_allclose(ok[prob_columns].sum(axis=1), 1.0, rtol=1e-5)
    assert ok["error"].isna().all() and set(ok["label"]) <= set(classes)
    assert list(ok["label"]) == [classes[int(np.argmax(r))] for r in ok[prob_columns].to_numpy()]

    failed = table.iloc[1]
    assert str(bad) in failed["error"] and failed["label"] is None
    assert np.isnan(failed[prob_columns].to_numpy(dtype=float)).all()


def test_predict_missing_file_and_single_path(tiny_run, audio_files, tmp_path):
    missing = tmp_path / "nowhere.wav"
    table = predict(tiny_run, [missing])
    assert len(table) == 1 and str(missing) in table["error"].iloc[0]
    single = predict(tiny_run, audio_files[0][0])
    assert len(single) == 1 and single["error"].iloc[0] is None


def test_speaker_normalised_run_predicts_each_speaker_with_their_own_statistics(tiny_fold_factory, tmp_path):
    import pandas as pd
    import torch

    from conftest import make_fold_data, tiny_layout
    from emokit.features import Normalizer, speaker_standardize
    from emokit.train import load_trained, predict_logits

    labels, speakers, roles = tiny_layout()
    paths = [str(write_tone(tmp_path / f"u{i:02d}.wav", 220 * (k + 1) * (1 + 0.1 * int(s[1])), seed=i))
             for i, (k, s) in enumerate(zip(labels, speakers))]
    features, _ = extract(pd.DataFrame({"path": paths}), FEATURES, cache_dir=None, n_jobs=1, progress=False)
    data = make_fold_data(features, labels, speakers, roles, paths=paths, normalization="speaker",
                          feature_config=FEATURES)
    run_dir = tmp_path / "run"
    train_model("cnn", data, run_dir, FAST, model_kwargs={"input_shape": FEATURES.shape}, progress=False)

    new = paths[:8] + paths[-8:]  # two speakers, 8 files each
    keys = ["a"] * 8 + ["b"] * 8
    table = predict(run_dir, new, speakers=keys)
    model, config = load_trained(run_dir)
    assert config["normalization"] == "speaker"
    chosen = np.concatenate([features[:8], features[-8:]])
    expected = Normalizer.from_dict(config["normalizer"])(speaker_standardize(chosen, keys))
    probabilities = torch.softmax(predict_logits(model, expected), 1).numpy()
    np.testing.assert_allclose(table[[c for c in table.columns if c.startswith("p_")]].to_numpy(), probabilities,
                               rtol=1e-4, atol=1e-5)
    with pytest.warns(UserWarning, match="fewer than 5"):
        predict(run_dir, new[:2])
    with pytest.raises(ValueError, match="one speaker key per file"):
        predict(run_dir, new, speakers=["a"])


def test_predict_needs_a_feature_config(tiny_fold_data, tmp_path):
    run_dir = tmp_path / "no_features"
    train_model("cnn", tiny_fold_data, run_dir, TrainConfig(epochs=1, batch_size=8, device="cpu", num_threads=1),
                model_kwargs={"input_shape": (32, 32)}, progress=False)
    with pytest.raises(ValueError, match="feature_config"):
        predict(run_dir, [tmp_path / "x.wav"])


# --------------------------------------------------------------------------
# command line


def test_parser_has_the_subcommands():
    assert {"predict", "summary"} <= set(COMMANDS)
    assert build_parser().parse_args(["summary"]).corpora is None  # every corpus under the data folder


def test_cli_predict(tiny_run, audio_files, capsys):
    (noise, tone), bad = audio_files
    assert main(["predict", str(tiny_run), str(noise), str(tone)]) == 0
    assert main(["predict", str(tiny_run), str(noise), str(tone), str(bad)]) == 1  # one file failed: not 0
    out = capsys.readouterr().out
    assert str(bad) in out and "p_anger" in out and out.count("\n") == 3 + 4  # two tables: header + rows
    assert main(["predict", str(tiny_run), str(bad)]) == 1
    assert main(["predict", str(tiny_run), str(noise), "missing.wav"]) == 1
    assert "missing.wav: no such file" in capsys.readouterr().out


def test_cli_summary_emodb(datasets_root, capsys):
    assert main(["summary", "--data", str(datasets_root), "--corpora", "emodb"]) == 0
    out = capsys.readouterr().out
    assert "emodb: 339 files, 10 speakers" in out
    assert "5 folds: one man and one woman per fold" in out
    fold_rows = out.split("5 folds:")[1].strip().splitlines()[1:]
    assert len(fold_rows) == 1 + 5  # header + one row per fold


def test_cli_summary_missing_corpus(tmp_path, capsys):
    assert main(["summary", "--data", str(tmp_path), "--corpora", "emodb"]) == 1
    assert "emodb" in capsys.readouterr().err


def test_emokit_predict_is_the_package_level_entry_point():
    import emokit

    assert emokit.predict is predict
