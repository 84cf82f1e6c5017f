"""Bad input never gives a silent wrong result: a wav with a sample of 1e30
(or NaN, or silence) is reported and skipped, never a NaN map, model or
probability."""
import numpy as np
import pandas as pd
import pytest
import soundfile

from emokit.features import FeatureConfig, Normalizer, extract

FEATURES = FeatureConfig(duration=0.5, n_mfcc=16, n_mels=16, hop_length=125, time_pool=2)


def _wav(path, samples, rate=16000):
    soundfile.write(path, np.asarray(samples, dtype=np.float32), rate, subtype="FLOAT")
    return str(path)


@pytest.fixture
def bad_wavs(tmp_path):
    rng = np.random.default_rng(0)
    good = [_wav(tmp_path / f"good{i}.wav", 0.1 * rng.standard_normal(8000)) for i in range(2)]
    huge = 0.1 * rng.standard_normal(8000)
    huge[100] = 1e30
    nan = 0.1 * rng.standard_normal(8000)
    nan[5] = np.nan
    bad = {"huge": _wav(tmp_path / "huge.wav", huge), "nan": _wav(tmp_path / "nan.wav", nan),
           "silent": _wav(tmp_path / "silent.wav", np.zeros(8000))}
    return good, bad


def test_extract_reports_and_skips_non_finite_and_silent_files(bad_wavs):
    good, bad = bad_wavs
    manifest = pd.DataFrame({"path": good + list(bad.values())})
    with pytest.warns(UserWarning, match="skipped 3 unreadable files"):
        features, kept = extract(manifest, FEATURES, cache_dir=None, n_jobs=1, progress=False)
    assert list(kept["path"]) == good and np.isfinite(features).all()
    reasons = {r["path"]: r["reason"] for r in kept.attrs["skipped"]}
    assert "feature map is not finite" in reasons[bad["huge"]] and "1e+30" in reasons[bad["huge"]]
    assert "non-finite samples" in reasons[bad["nan"]]
    assert "silent" in reasons[bad["silent"]]


def test_normalisers_refuse_non_finite_maps_and_name_the_file(tiny_fold_factory):
    from emokit.features import speaker_standardize

    maps = np.random.default_rng(0).standard_normal((48, 1, 8, 8)).astype(np.float32)
    maps[7, 0, 3, 3] = np.nan
    paths = [f"utt{i:03d}.wav" for i in range(48)]
    with pytest.raises(ValueError, match=r"1 feature maps are not finite: utt007.wav"):
        tiny_fold_factory(maps, paths=paths)
    with pytest.raises(ValueError, match="not finite"):
        Normalizer.fit(maps)
    with pytest.raises(ValueError, match="not finite"):
        speaker_standardize(maps, ["a"] * 48)


def test_a_nan_loss_stops_training_with_a_clear_error(tiny_fold_data, tmp_path):
    from emokit.train import TrainConfig, train_model

    huge_lr = TrainConfig(epochs=3, batch_size=8, lr=1e30, grad_clip=1e30, device="cpu", num_threads=1)
    with pytest.raises(FloatingPointError, match="training loss of epoch"):
        train_model("cnn", tiny_fold_data, tmp_path, huge_lr, model_kwargs={"input_shape": (32, 32)}, progress=False)
    assert not (tmp_path / "metrics.json").exists()


def test_predict_never_returns_nan_probabilities(bad_wavs, tiny_fold_factory, tmp_path):
    from emokit.prediction import predict
    from emokit.train import TrainConfig, train_model

    good, bad = bad_wavs
    rng = np.random.default_rng(1)
    paths = [_wav(tmp_path / f"t{i}.wav", 0.1 * rng.standard_normal(8000)) for i in range(48)]
    features, _ = extract(pd.DataFrame({"path": paths}), FEATURES, cache_dir=None, n_jobs=1, progress=False)
    data = tiny_fold_factory(features, paths=paths, feature_config=FEATURES)
    train_model("cnn", data, tmp_path / "run", TrainConfig(epochs=1, batch_size=8, device="cpu", num_threads=1),
                model_kwargs={"input_shape": FEATURES.shape}, progress=False)
    table = predict(tmp_path / "run", [good[0], bad["huge"], good[1]])
    probabilities = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
    assert table["error"].isna().tolist() == [True, False, True]
    assert table["label"].isna().tolist() == [False, True, False]
    assert np.isfinite(probabilities[[0, 2]]).all() and np.isnan(probabilities[1]).all()
    assert "not finite" in table.loc[1, "error"]


def test_atomically_written_files_respect_the_umask(tmp_path):
    import os

    from emokit.utils import _umask, atomic_write_bytes, write_json

    write_json({"a": 1}, tmp_path / "x.json")
    atomic_write_bytes(tmp_path / "y.bin", b"1")
    expected = 0o666 & ~_umask()
    assert expected != 0o600 or _umask() == 0o066  # the check can tell the two apart under a usual umask
    for name in ("x.json", "y.bin"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == expected


def test_cli_user_errors_are_one_line_and_debug_shows_the_traceback(capsys, tmp_path):
    from emokit.cli import main

    assert main(["run", "--preset", "huge", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown preset 'huge'; known presets: paper, quick" in err
    config = tmp_path / "grid.yaml"
    config.write_text("search: {alpha_rl: 0.1}\n")
    assert main(["run", "--config", str(config), "--results", str(tmp_path)]) == 2
    assert "unknown SearchConfig settings ['alpha_rl']" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nowhere"), "a.wav"]) == 2
    assert "not a finished training run" in capsys.readouterr().err
    with pytest.raises(KeyError):
        main(["--debug", "run", "--preset", "huge", "--results", str(tmp_path)])


def test_a_failed_notebook_cell_is_named_with_its_own_message():
    import papermill

    from emokit.runner import describe_failure

    exc = papermill.PapermillExecutionError(3, 9, "x = 1/0", "ZeroDivisionError", "division by zero", [])
    exc.notebook = "04_retrain.ipynb"
    assert describe_failure(exc) == "04_retrain.ipynb, cell 9: ZeroDivisionError: division by zero"
    assert describe_failure(ValueError("x" * 2000)).endswith("...")


def _tone(path, frequency, seed):
    t = np.arange(8000) / 16000
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * frequency * t) + noise).astype(np.float32), 16000)
    return path


def _csv_corpus(folder, labels=("anger", "happiness", "sadness", "neutral"), speakers=6):
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(speakers):
        for take in range(3):
            for k, label in enumerate(labels):
                name = f"s{s}_{label}_{take}.wav"
                _tone(folder / name, 200 * (k + 1) * (1 + 0.03 * s), seed=s * 10 + take)
                rows.append({"path": name, "speaker": f"s{s}", "label": label, "gender": "fm"[s % 2]})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def test_csv_labels_outside_the_class_list_are_reported_and_typos_refused(tmp_path):
    from emokit.data import load_corpus

    root = _csv_corpus(tmp_path / "csv", labels=("anger", "happiness", "sadness", "neutral", "fear"), speakers=2)
    manifest = load_corpus("csv", root)
    assert manifest.attrs["left_out_by_class"] == {"fear": 6} and len(manifest) == 24
    table = pd.read_csv(root / "manifest.csv")
    table.loc[0, "label"] = "angr"
    table.to_csv(root / "manifest.csv", index=False)
    with pytest.raises(ValueError, match=r"'angr' \(1 rows\).*corpus.yaml \(label_map: \{angr: anger\}\)"):
        load_corpus("csv", root)
    assert load_corpus("csv", root, label_map={"angr": "anger"})["label"].value_counts()["anger"] == 6


@pytest.mark.slow
def test_a_csv_corpus_laid_out_as_the_readme_says_runs_through_emokit_run(tmp_path, capsys):
    """DATA/csv/manifest.csv is the corpus for the folds, the summary and every
    notebook; a decoy DATA/manifest.csv is never read."""
    from emokit.cli import main

    data = tmp_path / "data"
    _csv_corpus(data / "csv")
    pd.DataFrame({"path": ["nowhere.wav"], "speaker": ["x"], "label": ["anger"]}).to_csv(data / "manifest.csv",
                                                                                        index=False)
    assert main(["summary", "--data", str(data), "--corpora", "csv"]) == 0
    assert "== csv: 72 files, 6 speakers" in capsys.readouterr().out
    config = tmp_path / "grid.yaml"
    config.write_text("corpora: [csv]\nscopes: []\nbaselines: [classical]\nfolds: [0]\n"
                      "features: {duration: 0.5, n_mfcc: 16, n_mels: 16}\n")
    results = tmp_path / "results"
    assert main(["run", "--config", str(config), "--data", str(data), "--results", str(results), "--no-compare"]) == 0
    out = capsys.readouterr().out
    assert "csv: 72 audio files used, 0 skipped" in out and "1 runs done, 0 left to another runner, 0 not done" in out
    import json

    metrics = json.loads((results / "runs" / "csv" / "classical" / "fold0-seed0" / "retrain" / "metrics.json").read_text())
    assert metrics["n"] == 24 and metrics["ua"] > 0.5  # fold 0 tests 2 of the 6 speakers: 2 x 12 files


def test_hand_edited_genomes_get_messages_naming_cell_and_node(tmp_path):
    import json

    from emokit.models import GenomeNet
    from emokit.search.genotype import Genome

    good = {"normal": [[["sep_conv_3x3", 0], ["skip_connect", 1]]], "reduce": [[["max_pool_3x3", 0]]],
            "seq": [[["lstm_1", 0]]]}
    cases = {
        "no index": ({**good, "normal": [[["sep_conv_3x3"], ["skip_connect", 1]]]}, r"normal node 0: edge \['sep_conv_3x3'\]"),
        "string index": ({**good, "seq": [[["lstm_1", "0"]]]}, r"seq node 0: edge \['lstm_1', '0'\].*integer"),
        "empty node": ({**good, "reduce": [[]]}, "reduce node 0 has no edges"),
    }
    for name, (genome, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(genome))
        with pytest.raises(ValueError, match=message):
            Genome.load(path)
    (tmp_path / "broken.json").write_text('{"normal": [')
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        Genome.load(tmp_path / "broken.json")
    empty = Genome.from_dict({**good, "normal": []})
    with pytest.raises(ValueError, match="normal cell has no nodes"):
        GenomeNet(empty, cnn_cells=3, seq_cells=1)


@pytest.mark.parametrize("damage", ["truncate_npy", "truncate_csv", "drop_csv_rows"])
def test_a_damaged_feature_cache_is_extracted_again_with_a_warning(tmp_path, damage):
    rng = np.random.default_rng(0)
    paths = [_wav(tmp_path / f"a{i}.wav", 0.1 * rng.standard_normal(8000)) for i in range(4)]
    manifest = pd.DataFrame({"path": paths, "corpus": "toy"})
    first, _ = extract(manifest, FEATURES, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    (npy,) = (tmp_path / "cache").glob("*.npy")
    csv = npy.with_suffix(".csv")
    if damage == "truncate_npy":
        npy.write_bytes(npy.read_bytes()[:200])
    elif damage == "truncate_csv":
        csv.write_bytes(csv.read_bytes()[:10])
    else:
        csv.write_text("\n".join(csv.read_text().splitlines()[:3]) + "\n")
    with pytest.warns(UserWarning, match=r"feature cache .*toy-mfcc-.* is damaged"):
        again, kept = extract(manifest, FEATURES, cache_dir=tmp_path / "cache", n_jobs=1, progress=False)
    np.testing.assert_array_equal(again, first)
    assert len(kept) == 4
    np.testing.assert_array_equal(np.load(npy), first)  # the cache is whole again
    assert not [p for p in (tmp_path / "cache").iterdir() if "tmp" in p.name]
