"""Cross-corpus: models scored on another corpus, and genomes searched on
one corpus retrained on another (emokit.cross_corpus, the grid's test_corpora)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile

from emokit.data import PAPER_CLASSES


def _corpus(data: Path, name: str, speakers: int, shift: float = 1.0, audio: bool = True) -> Path:
    """A named corpus of tones: each emotion its own pitch (times ``shift``), each speaker a little higher."""
    folder = data / name
    folder.mkdir(parents=True)
    rows = []
    t = np.arange(8000) / 16000
    for s in range(speakers):
        for k, label in enumerate(PAPER_CLASSES):
            for take in range(3):
                path = f"{name}_s{s}_{label}_{take}.wav"
                if audio:
                    noise = 0.01 * np.random.default_rng(100 * s + take).standard_normal(len(t))
                    tone = 0.3 * np.sin(2 * np.pi * 200 * (k + 1) * shift * (1 + 0.03 * s) * t)
                    soundfile.write(folder / path, (tone + noise).astype(np.float32), 16000)
                rows.append({"path": path, "speaker": f"s{s}", "label": label})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


def test_transfer_runs_take_the_source_search_of_their_fold_and_seed(tmp_path):
    from emokit.experiments import Grid, plan, run_settings

    data = tmp_path / "data"
    _corpus(data, "a", speakers=3, audio=False)  # 3 folds
    _corpus(data, "b", speakers=5, audio=False)  # 5 folds
    grid = Grid(corpora=["a", "b"], test_corpora=["b"], scopes=["emodarts"], baselines=["random"], seeds=[0, 1],
                data_root=str(data), results_dir=str(tmp_path / "results"))
    runs = plan(grid)
    transfers = [r for r in runs if r.kind == "transfer"]
    assert {r.name for r in transfers} == {"emodarts_from_a"} and {r.corpus for r in transfers} == {"b"}
    assert len(transfers) == 5 * 2 and runs[-len(transfers):] == transfers  # last: they need their sources
    for run in transfers:
        assert (run.source.corpus, run.source.name, run.source.fold, run.source.seed) == ("a", "emodarts", run.fold % 3, run.seed)
        assert run.folder == tmp_path / "results" / "runs" / "b" / "emodarts_from_a" / f"fold{run.fold}-seed{run.seed}"
    settings = run_settings(grid, transfers[0])
    assert settings["source"]["corpus"] == "a" and settings["source"]["data"] == run_settings(grid, runs[0])["data"]
    assert settings["search"] == grid.search and settings["data"] != settings["source"]["data"]
    both = Grid(corpora=["a", "b"], test_corpora=["a", "b"], scopes=["emodarts"], data_root=str(data),
                results_dir=str(tmp_path / "results"))
    assert {(r.corpus, r.name) for r in plan(both) if r.kind == "transfer"} == {("a", "emodarts_from_b"),
                                                                              ("b", "emodarts_from_a")}
    only_scores = Grid(corpora=["a"], test_corpora=["b"], data_root=str(data), results_dir=str(tmp_path / "results"))
    assert not [r for r in plan(only_scores) if r.kind == "transfer"]  # b has no folds of its own here


@pytest.mark.slow
def test_a_grid_scores_across_corpora_and_retrains_transferred_genomes(tmp_path):
    from test_experiments import TINY

    from emokit.cross_corpus import cross_matrix, cross_table, transfer_comparisons, transfer_sentence
    from emokit.experiments import make_grid
    from emokit.runner import run_grid
    from emokit.search.genotype import Genome

    data = tmp_path / "data"
    _corpus(data, "a", speakers=4)
    _corpus(data, "b", speakers=4, shift=1.05)
    results_dir = tmp_path / "results"
    grid = make_grid("quick", corpora=["a", "b"], test_corpora=["a", "b"], baselines=["random", "classical"], folds=[0],
                     data_root=str(data), results_dir=str(results_dir), cell_timeout=300, **TINY)
    results = run_grid(grid, progress=False)
    assert (results["status"] == "done").all(), results[["corpus", "name", "error"]]
    assert sorted(zip(results["corpus"], results["name"])) == [
        ("a", "classical"), ("a", "emodarts"), ("a", "emodarts_from_b"), ("a", "random"),
        ("b", "classical"), ("b", "emodarts"), ("b", "emodarts_from_a"), ("b", "random")]
    runs = results_dir / "runs"
    # the transferred genome is the source corpus's searched genome, retrained on the target's fold
    config = json.loads((runs / "b" / "emodarts_from_a" / "fold0-seed0" / "retrain" / "config.json").read_text())
    assert Genome.from_dict(config["genome"]) == Genome.load(runs / "a" / "emodarts" / "fold0-seed0" / "search")
    cross = cross_table(results_dir)
    assert sorted(zip(cross["train_corpus"], cross["test_corpus"], cross["name"])) == [
        ("a", "b", "classical"), ("a", "b", "emodarts"), ("a", "b", "random"),
        ("b", "a", "classical"), ("b", "a", "emodarts"), ("b", "a", "random")]
    classical = json.loads((runs / "a" / "classical" / "fold0-seed0" / "cross" / "b.json").read_text())
    assert classical["n"] == 48 and classical["ua"] > 0.5  # b's tones are a's, 5 % higher: functionals carry over
    scores = json.loads((runs / "a" / "random" / "fold0-seed0" / "cross" / "b.json").read_text())
    assert scores["n"] == 48 and sum(map(sum, scores["confusion"])) == 48  # all of b: 4 speakers x 4 x 3
    assert 0 <= scores["ua"] <= 1 and np.isfinite(scores["ua"])
    matrix = cross_matrix(results, cross, "emodarts")
    assert matrix.shape == (2, 2) and matrix.notna().all().all()
    assert matrix.loc["a", "a"] == pytest.approx(100 * results.query("corpus == 'a' and name == 'emodarts'")["ua"].iloc[0])
    comparisons = transfer_comparisons(results)
    assert set(comparisons["against"]) == {"random", "emodarts"} and set(comparisons["n"]) == {1}
    assert "a -> b: the emodarts genomes searched on a cannot be judged yet" in transfer_sentence(
        comparisons, "emodarts_from_a", "b")

    from emokit.runner import compare

    executed = compare(results_dir, html=False, timeout=300).read_text()
    assert "trained on (rows) x tested on (columns)" in executed and "a -> b: the emodarts genomes" in executed
    assert (results_dir / "tables" / "genome_transfer.csv").exists()

    # scored with the run's own standardiser: its test speakers, as a corpus of their own, score as in training
    from emokit.cross_corpus import score_run

    fitted = runs / "a" / "classical" / "fold0-seed0" / "retrain"
    test_speakers = json.loads((fitted / "config.json").read_text())["fold"]["test_speakers"]
    manifest = pd.read_csv(data / "a" / "manifest.csv")
    (data / "a_test").mkdir()
    manifest[manifest["speaker"].isin([k.split(":")[-1] for k in test_speakers])].assign(
        path=lambda m: [str(data / "a" / p) for p in m["path"]]).to_csv(data / "a_test" / "manifest.csv", index=False)
    again = score_run(fitted, "a_test", data_root=data, feature_dir=results_dir / "features")
    trained = json.loads((fitted / "metrics.json").read_text())
    assert again["confusion"] == trained["confusion"] and again["ua"] == trained["ua"]

    # nothing changed: nothing is retrained or rescored
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("*.json") if "01_features" not in p.name}
    run_grid(grid, progress=False)
    assert stamps == {p: p.stat().st_mtime_ns for p in runs.rglob("*.json") if "01_features" not in p.name}

    # b's files change: b's runs, the genome searched on b retrained on a, and the scores on b are stale
    from emokit.cross_corpus import needs_scoring
    from emokit.experiments import data_fingerprint, plan
    from emokit.runner import _finished

    wav = sorted((data / "b").glob("*.wav"))[0]
    audio, rate = soundfile.read(wav)
    soundfile.write(wav, audio[:-160], rate)
    grid.fingerprints.clear()  # as run_grid does first
    stale = {(run.corpus, run.name) for run in plan(grid) if not _finished(grid, run, run.info)}
    assert stale == {("b", "emodarts"), ("b", "random"), ("b", "classical"), ("b", "emodarts_from_a"),
                     ("a", "emodarts_from_b")}
    changed = data_fingerprint(grid, "b")
    assert needs_scoring(runs / "a" / "random" / "fold0-seed0", "b", changed)
    assert not needs_scoring(runs / "b" / "random" / "fold0-seed0", "a", data_fingerprint(grid, "a"))


def test_test_corpora_must_be_a_list_of_names():
    from emokit.experiments import Grid

    with pytest.raises(ValueError, match="test_corpora must be a list of corpus names, got 'emovo'"):
        Grid(test_corpora="emovo")


def test_a_failed_score_is_reported_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    """score_across_corpora: one run's score raising does not stop the next; a
    classical run fitted before emokit kept its standardiser is named, not scored."""
    import emokit.cross_corpus as cross_corpus
    import emokit.runner as runner
    from emokit.experiments import Grid, Run

    grid = Grid(corpora=["a"], test_corpora=["a", "b"], results_dir=str(tmp_path))
    runs = [Run("a", "baseline", name, 0, 0, tmp_path / name) for name in ("cnn", "random", "classical")]
    for run in runs:
        (run.folder / "retrain").mkdir(parents=True)
    (runs[2].folder / "retrain" / "model.joblib").write_bytes(b"")  # fitted, but no standardiser.npz beside it
    monkeypatch.setattr(runner, "_finished", lambda grid, run, info: True)
    monkeypatch.setattr(runner, "run_features", lambda *args: [])
    monkeypatch.setattr(runner, "data_fingerprint", lambda grid, corpus: "fingerprint")
    monkeypatch.setattr(cross_corpus, "needs_scoring", lambda folder, corpus, fingerprint: folder.name != "classical")
    scored_folders = []

    def score(folder, corpus, fingerprint, **kwargs):
        if folder.name == "cnn":
            raise RuntimeError("model.pt is damaged")
        scored_folders.append((folder.name, corpus))
        return {"ua": 0.5}

    monkeypatch.setattr(cross_corpus, "score_run_folder", score)
    assert runner.score_across_corpora(grid, runs, progress=False) == 1
    assert scored_folders == [("random", "b")]
    printed = capsys.readouterr().out
    assert f"FAILED scoring {tmp_path / 'cnn'} on b: RuntimeError: model.pt is damaged" in printed
    assert "1 classical run(s) were fitted before emokit kept their standardiser" in printed
    assert str(tmp_path / "classical") in printed
