"""Notebooks 02-05 run under papermill with tiny parameters, in sequence,
on real EmoDB maps made small (32 x 32) so the whole chain takes seconds."""
from pathlib import Path

import papermill
import pytest

from emokit.search.genotype import Genome

ROOT = Path(__file__).resolve().parents[1]
TINY_FEATURES = {"duration": 2.0, "n_mfcc": 32, "n_mels": 32}
TINY_SPACE = dict(cnn_cells=2, cnn_nodes=2, seq_cells=1, seq_nodes=2, channels=4, seq_hidden=8)
TINY_NET = dict(cnn_cells=2, seq_cells=1, channels=4, seq_hidden=8)

pytestmark = pytest.mark.slow


def images(notebook: Path) -> int:
    """PNG or SVG pictures among an executed notebook's outputs."""
    import nbformat

    return sum(1 for cell in nbformat.read(notebook, as_version=4).cells for out in cell.get("outputs", [])
               if {"image/png", "image/svg+xml"} & set(out.get("data", {})))


def run_notebook(name: str, out_dir: Path, **parameters) -> Path:
    """``name`` under papermill; notebooks 01, 02 and 04 without a preset
    (``preset=None``: the tiny dicts below change the paper's defaults)
    unless ``preset`` is given."""
    if name[:2] in ("01", "02", "04"):
        parameters.setdefault("preset", None)
    output = out_dir / name
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(output), parameters=parameters,
                               kernel_name="python3", cwd=str(ROOT), progress_bar=False,
                               execution_timeout=300)  # a hung kernel fails the test, not the CI run
    return output


@pytest.fixture(scope="module")
def search_run(tmp_path_factory, datasets_root):
    """Notebook 02 on fold 0 of EmoDB: 2 epochs of a tiny supernet."""
    base = tmp_path_factory.mktemp("nb")
    run_dir = base / "runs" / "search"
    run_notebook("02_search.ipynb", base, corpus="emodb", data_root=str(datasets_root),
                 feature_dir=str(base / "features"), features=TINY_FEATURES, fold=0, space=TINY_SPACE,
                 search={"epochs": 2, "batch_size": 32}, run_dir=str(run_dir))  # live=True: widgets under papermill
    return base, run_dir


def test_search_notebook_writes_genome_history_and_frames(search_run):
    _, run_dir = search_run
    genome = Genome.load(run_dir)
    assert len(genome.normal) == 2 and len(genome.seq) == 2
    assert (run_dir / "alpha_history.npz").exists()
    frames = sorted(p.name for p in (run_dir / "frames").glob("*.png"))
    assert frames == ["alphas_epoch001.png", "alphas_epoch002.png", "curves_epoch001.png", "curves_epoch002.png"]
    # two epochs at the paper's alpha learning rate leave the alphas near uniform: the notebook says so
    executed = (search_run[0] / "02_search.ipynb").read_text()
    assert "**Undecided:** seq cell undecided" in executed
    assert "projected:" in executed  # the cost estimate, on by default
    import nbformat

    (cell,) = [c for c in nbformat.read(search_run[0] / "02_search.ipynb", as_version=4).cells
               if "one_shot_losses(" in c.source]
    table = cell.outputs[0]["data"]["text/plain"]  # the discretisation gap: the supernet, its genome, 5 random ones
    assert "(supernet)" in table and "found genome" in table and "random genome 4" in table


def test_genome_notebook_saves_cell_graphs(search_run):
    base, run_dir = search_run
    executed = run_notebook("03_genome.ipynb", base, run_dirs=[str(run_dir)])
    assert images(executed) == 7  # genome, seq cell, heatmaps, 3 evolutions, op frequency
    figures = run_dir / "figures"
    for name in ("cell_normal.svg", "cell_reduce.svg", "cell_seq.svg", "genome.svg", "alpha_heatmaps.png",
                 "alpha_evolution_seq.png", "op_frequency.png"):
        assert (figures / name).stat().st_size > 0, name
    assert "<svg" in (figures / "genome.svg").read_text()


def test_retrain_notebook_trains_the_genome_and_scores_the_test_speakers(search_run, datasets_root):
    base, run_dir = search_run
    retrain_dir = base / "runs" / "retrain"
    run_notebook("04_retrain.ipynb", base, corpus="emodb", data_root=str(datasets_root),
                 feature_dir=str(base / "features"), features=TINY_FEATURES, fold=0, model="genome",
                 search_dir=str(run_dir), train={"epochs": 2, "batch_size": 32}, net=TINY_NET,
                 run_dir=str(retrain_dir), live=False)
    import json

    metrics = json.loads((retrain_dir / "metrics.json").read_text())
    config = json.loads((retrain_dir / "config.json").read_text())
    assert 0.0 <= metrics["ua"] <= 1.0 and metrics["parameters"] > 0
    assert sum(map(sum, metrics["confusion"])) == metrics["n"] > 0
    assert Genome.from_dict(config["genome"]) == Genome.load(run_dir)
    assert config["fold"]["test_speakers"] == ["03", "08"]


def test_genome_notebook_without_dot_draws_everything_but_the_cell_graphs(search_run, monkeypatch, tmp_path):
    import os
    import shutil

    base, run_dir = search_run
    copy = tmp_path / "search"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("figures", "frames"))
    bin_dir = tmp_path / "bin"  # PATH with python but without dot
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    assert shutil.which("dot") is None
    executed = run_notebook("03_genome.ipynb", tmp_path, run_dirs=[str(copy)])
    assert "No cell graphs" in executed.read_text()
    assert images(executed) == 5  # heatmaps, 3 evolutions, op frequency; no graphs
    assert (copy / "figures" / "alpha_heatmaps.png").exists() and not list((copy / "figures").glob("*.svg"))
    assert os.environ["PATH"] == str(bin_dir)


def test_notebooks_01_to_05_by_hand_leave_what_05_needs(tmp_path, monkeypatch, datasets_root):
    """No runner, no run.json: each notebook with its default folders (under
    $EMOKIT_RESULTS), and notebook 05 finds the runs."""
    import json

    results = tmp_path / "results"
    monkeypatch.setenv("EMOKIT_RESULTS", str(results))
    common = dict(corpus="emodb", data_root=str(datasets_root), features=TINY_FEATURES)
    run_notebook("01_features.ipynb", tmp_path, **common, n_jobs=1)
    searched = run_notebook("02_search.ipynb", tmp_path, **common, fold=0, space=TINY_SPACE,
                            search={"epochs": 1, "batch_size": 32, "selection": "perturbation"}, live=False)
    search_dir = results / "runs" / "emodb" / "emodarts" / "fold0-seed0" / "search"
    assert (search_dir / "genome.json").exists() and (search_dir / "selection.npz").exists()
    import nbformat

    (cell,) = [c for c in nbformat.read(searched, as_version=4).cells if "selection_heatmaps(" in c.source]
    assert any("image/png" in out.get("data", {}) for out in cell.outputs)  # the scores' heatmap
    run_notebook("03_genome.ipynb", tmp_path)  # its default: the search above
    for model in ("genome", "classical"):
        run_notebook("04_retrain.ipynb", tmp_path, **common, fold=0, model=model, net=TINY_NET,
                     train={"epochs": 1, "batch_size": 32}, live=False)
    executed = run_notebook("05_compare.ipynb", tmp_path)
    table = (results / "tables" / "table4_emodarts_vs_baselines.csv").read_text()
    assert "emodarts" in table and "classical" in table
    assert images(executed) == 4  # UA per fold, Figure 7, confusions and the op frequency of the search
    config = json.loads((results / "runs" / "emodb" / "emodarts" / "fold0-seed0" / "retrain" / "config.json").read_text())
    assert config["extra"]["search_dir"] == str(search_dir)


def test_a_genome_json_is_recorded_as_the_source(search_run, datasets_root, tmp_path):
    import json
    import shutil

    base, run_dir = search_run
    genome_json = shutil.copy(run_dir / "genome.json", tmp_path / "mine.json")
    retrain_dir = tmp_path / "retrain"
    run_notebook("04_retrain.ipynb", base, corpus="emodb", data_root=str(datasets_root),
                 feature_dir=str(base / "features"), features=TINY_FEATURES, fold=0, model="genome",
                 genome_json=str(genome_json), train={"epochs": 1, "batch_size": 32}, net=TINY_NET,
                 run_dir=str(retrain_dir), live=False)
    extra = json.loads((retrain_dir / "config.json").read_text())["extra"]
    assert extra["genome_json"] == str(genome_json) and "search_dir" not in extra


def test_data_and_results_root_rule_whatever_the_working_folder(tmp_path, monkeypatch):
    from emokit import paths
    from emokit.data import corpus_root

    monkeypatch.delenv("EMOKIT_RESULTS", raising=False)
    monkeypatch.delenv("EMOKIT_DATA", raising=False)
    for folder in (ROOT / "notebooks", tmp_path):  # JupyterLab's working folder, and any other
        monkeypatch.chdir(folder)
        assert paths.results_root() == ROOT / "results" and paths.data_root() == ROOT / "data"
        assert corpus_root("emodb") == ROOT / "data" / "emodb"
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site-packages" / "emokit" / "paths.py"))  # a wheel
    assert paths.results_root() == tmp_path / "results" and paths.data_root() == tmp_path / "data"
    monkeypatch.setenv("EMOKIT_RESULTS", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("EMOKIT_DATA", str(tmp_path / "corpora"))
    assert paths.results_root() == tmp_path / "elsewhere" and corpus_root("emovo") == tmp_path / "corpora" / "emovo"
    with pytest.raises(FileNotFoundError, match=r"corpus 'emodb'.*does not exist.*emokit download emodb"):
        from emokit.data import load_corpus

        load_corpus("emodb")
