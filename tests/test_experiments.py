"""The experiment grid through papermill, and the results tables."""
import json
from pathlib import Path

import pytest

from emokit.experiments import PRESETS, make_grid, plan, run_settings
from emokit.runner import compare, run_grid
from emokit.results import export_table, per_fold_table, summary_table

TINY = dict(
    features={"duration": 2.0, "n_mfcc": 32, "n_mels": 32},
    space={"cnn_cells": 2, "cnn_nodes": 2, "seq_cells": 1, "seq_nodes": 2, "channels": 4, "seq_hidden": 8,
           "stem_stride": 1},
    search={"epochs": 1, "batch_size": 32},
    net={"cnn_cells": 2, "seq_cells": 1, "channels": 4, "seq_hidden": 8, "stem_stride": 1},
    train={"epochs": 1, "batch_size": 32, "train_roles": ["search", "train"]},
)


def test_presets_and_overrides():
    grid = make_grid("paper")
    assert grid.search["epochs"] == 300 and grid.train["epochs"] == 300 and grid.search["batch_size"] == 64
    assert (grid.space["cnn_cells"], grid.space["seq_cells"]) == (4, 2)
    assert grid.normalization == "train" and grid.features == {}  # the paper's MFCC maps and normaliser
    quick = make_grid("quick", search={"epochs": 2}, folds=[0])
    assert quick.normalization == "speaker" and quick.features["kind"] == "logmel"
    assert make_grid("quick", normalization="train").normalization == "train"
    assert quick.search["epochs"] == 2 and quick.search["batch_size"] == PRESETS["quick"]["search"]["batch_size"]
    with pytest.raises(KeyError, match="quick"):
        make_grid("huge")
    with pytest.raises(KeyError, match="unknown grid settings"):
        make_grid("quick", epochz=3)
    assert make_grid("quick", search={"alpha_lr": 3e-3}).search["alpha_lr"] == 3e-3  # notebook 02 takes it
    with pytest.raises(KeyError, match=r"grid 'search': unknown SearchConfig settings \['alpha_rl'\].*alpha_lr"):
        make_grid("quick", search={"alpha_rl": 3e-3})
    with pytest.raises(KeyError, match=r"grid 'train': unknown TrainConfig settings \['epoch'\]"):
        make_grid("paper", train={"epoch": 3})
    with pytest.raises(KeyError, match=r"grid 'features': unknown FeatureConfig settings \['fmaxx'\].*fmax"):
        make_grid("paper", features={"fmaxx": 4000})
    with pytest.raises(KeyError, match=r"grid 'space'.*\['cnn_cell'\]"):
        make_grid("paper", space={"cnn_cell": 2})


def test_notebook_settings_fill_the_dicts_from_a_preset_key_by_key():
    from emokit.config import UnknownSettingError
    from emokit.experiments import notebook_settings

    quick = notebook_settings("quick", search={"epochs": 3}, normalization=None)
    assert quick["search"] == {**PRESETS["quick"]["search"], "epochs": 3}
    assert quick["space"] == PRESETS["quick"]["space"] and quick["normalization"] == "speaker"
    assert quick["val_speakers"] == 0 and quick["classical"] == {}
    assert notebook_settings("paper", train={"epochs": 2})["train"] == {**PRESETS["paper"]["train"], "epochs": 2}
    bare = notebook_settings(None, features={"n_mfcc": 40}, normalization="speaker", val_speakers=1)
    assert bare["features"] == {"n_mfcc": 40} and bare["search"] == {} and bare["normalization"] == "speaker"
    assert bare["val_speakers"] == 1
    # The grid makes the same dicts from the same preset and overrides.
    grid = make_grid("quick", search={"epochs": 3})
    assert all(quick[key] == getattr(grid, key) for key in ("features", "space", "search", "net", "train"))
    with pytest.raises(KeyError, match="unknown preset 'fast'; known presets: paper, quick"):
        notebook_settings("fast")
    with pytest.raises(UnknownSettingError, match=r"'search': unknown SearchConfig settings \['epoch'\]"):
        notebook_settings("quick", search={"epoch": 3})


def test_grid_from_yaml(tmp_path):
    config = tmp_path / "grid.yaml"
    config.write_text("corpora: [emovo]\nscopes: [lstm, rnn]\nsearch:\n  epochs: 3\n")
    grid = make_grid("quick", config_file=config, seeds=[1, 2])
    assert grid.corpora == ["emovo"] and grid.scopes == ["lstm", "rnn"] and grid.search["epochs"] == 3
    assert grid.seeds == [1, 2]


def test_plan_covers_every_fold_of_emodb_longest_runs_first(datasets_root, tmp_path):
    grid = make_grid("quick", data_root=str(datasets_root), results_dir=str(tmp_path),
                     baselines=["cnn", "random", "random_search"])
    runs = plan(grid)
    assert len(runs) == 5 + 5 + 5 + 5
    assert {r.fold for r in runs} == set(range(5))
    assert [r.name for r in runs] == ["emodarts"] * 5 + ["random_search"] * 5 + ["random"] * 5 + ["cnn"] * 5
    # Both random controls depend on the network and the space they draw from, as the searched genome does.
    for run in runs[5:15]:
        settings = run_settings(grid, run)
        assert settings["net"] == grid.net and settings["space"]["scope"] == "emodarts"
    # Speaker-held-out validation makes other runs; unset, it leaves earlier runs current.
    assert "val_speakers" not in run_settings(grid, runs[0])
    held_out = make_grid("quick", data_root=str(datasets_root), results_dir=str(tmp_path), val_speakers=1)
    assert run_settings(held_out, plan(held_out)[0])["val_speakers"] == 1


@pytest.mark.slow
def test_tiny_grid_runs_resumes_and_makes_tables(datasets_root, tmp_path):
    grid = make_grid("quick", data_root=str(datasets_root), results_dir=str(tmp_path), folds=[0, 1],
                     scopes=["emodarts", "lstm"], baselines=["cnn", "random", "random_search", "classical"],
                     cell_timeout=300, **TINY)
    results = run_grid(grid, progress=False)
    assert len(results) == 12
    assert (results["status"] == "done").all(), results[["name", "fold", "error"]]
    for folder in results["run_dir"]:
        names = {p.name for p in Path(folder).iterdir()}
        assert "04_retrain.ipynb" in names
    darts = results[results["kind"] == "darts"]
    assert darts["genome"].notna().all()
    for folder in darts["run_dir"]:  # a grid's search skips the cost estimate (about 10 s a run)
        executed = (tmp_path / folder / "02_search.ipynb").read_text()
        assert "estimate = False" in executed and "projected:" not in executed
    from emokit.search.genotype import Genome

    random_genomes = [Genome.load(tmp_path / f / "retrain") for f in results[results["name"] == "random"]["run_dir"]]
    assert len(random_genomes) == 2 and random_genomes[0] != random_genomes[1]  # one per fold
    assert len(random_genomes[0].seq) == TINY["space"]["seq_nodes"]  # drawn from the emodarts space of the grid
    for folder in results[results["name"] == "random_search"]["run_dir"]:  # 4 candidates, the best kept
        metrics = json.loads((tmp_path / folder / "retrain" / "metrics.json").read_text())
        assert len(metrics["candidates"]) == 4 and (tmp_path / folder / "retrain" / "candidates" / "3").is_dir()
    classical = results[results["name"] == "classical"]
    assert classical["ua"].notna().all() and (classical["parameters"] == 4 * 80 + 4).all()

    # a second call skips finished runs: nothing is re-executed
    stamps = {f: (tmp_path / f / "run.json").stat().st_mtime_ns for f in results["run_dir"]}
    run_grid(grid, progress=False)
    assert stamps == {f: (tmp_path / f / "run.json").stat().st_mtime_ns for f in results["run_dir"]}

    table = summary_table(results, names=["emodarts", "lstm", "cnn"])
    assert list(table["model"]) == ["emodarts", "lstm", "cnn"]
    assert (table["runs"] == 2).all()
    ua = results[results["name"] == "cnn"]["ua"] * 100
    assert table.loc[2, "UA %"] == f"{ua.mean():.2f} ± {ua.std(ddof=0):.2f}"
    assert per_fold_table(results).shape == (6, 2)
    paths = export_table(table, tmp_path / "tables" / "t4")
    assert "emodarts" in paths["md"].read_text() and "\\begin{tabular}" in paths["tex"].read_text()

    notebook = compare(tmp_path, timeout=300)
    assert notebook.with_suffix(".html").stat().st_size > 10_000
    from test_notebooks import images

    assert images(notebook) == 4  # UA per fold, Figure 7, confusions, op frequency
    assert (tmp_path / "tables" / "table4_emodarts_vs_baselines.csv").exists()
    text = notebook.read_text()
    assert "too few paired runs" in text and "emodarts vs random" in text  # 2 folds x 1 seed: no verdict
    assert (tmp_path / "tables" / "paired_differences.csv").exists()


def test_a_failed_run_is_recorded_and_the_grid_goes_on(datasets_root, tmp_path, monkeypatch):
    import emokit.runner as runner

    calls = []

    def fake_execute(notebook, output, parameters, timeout=None):
        calls.append(notebook)
        if notebook == "02_search.ipynb" and parameters["fold"] == 0:
            raise RuntimeError("simulated failure")
        output.parent.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    grid = make_grid("quick", data_root=str(datasets_root), results_dir=str(tmp_path), folds=[0, 1], baselines=[])
    results = run_grid(grid, progress=False)
    status = dict(zip(results["fold"], results["status"]))
    assert status == {0: "failed", 1: "done"}
    assert "simulated failure" in results.set_index("fold").loc[0, "error"]
    assert calls.count("04_retrain.ipynb") == 1


def test_changed_settings_rerun_and_keep_the_old_folder_aside(datasets_root, tmp_path, monkeypatch):
    import emokit.runner as runner

    calls = []

    def fake_execute(notebook, output, parameters, timeout=None):
        calls.append((notebook, parameters.get("train", {}).get("epochs")))
        output.parent.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    options = dict(data_root=str(datasets_root), results_dir=str(tmp_path), folds=[0], baselines=["cnn"], scopes=[])
    run_grid(make_grid("quick", **options), progress=False)
    run_grid(make_grid("quick", **options), progress=False)
    assert [c for c in calls if c[0] == "04_retrain.ipynb"] == [("04_retrain.ipynb", PRESETS["quick"]["train"]["epochs"])]
    results = run_grid(make_grid("quick", train={"epochs": 3}, **options), progress=False)
    assert [c for c in calls if c[0] == "04_retrain.ipynb"][-1] == ("04_retrain.ipynb", 3)
    assert len(results) == 1 and results["status"].tolist() == ["done"]
    assert len(list((tmp_path / "runs" / "emodb" / "cnn").glob("fold0-seed0.stale-*"))) == 1


def test_runs_are_redone_when_a_file_of_their_corpus_changes(datasets_root, tmp_path, monkeypatch, capsys):
    """After one EmoDB file changes, every EmoDB run (its features and
    normaliser saw that file) is run again, the old folder kept aside; an
    EMOVO run stays finished."""
    import shutil

    import emokit.runner as runner

    data = tmp_path / "data"
    for corpus, sub in (("emodb", "wav"), ("emovo", "")):
        for wav in sorted((datasets_root / corpus / sub).rglob("*.wav")):
            link = data / corpus / wav.relative_to(datasets_root / corpus)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(wav)
    executed = []
    monkeypatch.setattr(runner, "execute_notebook", lambda notebook, output, parameters, timeout=None:
                        (executed.append(str(output.parent)), output.parent.mkdir(parents=True, exist_ok=True)))
    grid = dict(data_root=str(data), results_dir=str(tmp_path / "results"), folds=[0], scopes=[],
                baselines=["cnn", "classical"], corpora=["emodb", "emovo"])
    first = run_grid(make_grid("quick", **grid), progress=False)
    assert (first["status"] == "done").all() and len(first) == 4
    executed.clear()
    run_grid(make_grid("quick", **grid), progress=False)
    assert not any("fold0" in folder for folder in executed)  # nothing changed: nothing redone

    victim = sorted((data / "emodb" / "wav").iterdir())[7]
    audio = victim.read_bytes()
    victim.unlink()
    victim.write_bytes(audio[:-320])  # the same file, 10 ms shorter
    capsys.readouterr()
    again = run_grid(make_grid("quick", **grid), progress=False)
    redone = {Path(folder).parent.name for folder in executed if "fold0" in folder}
    assert redone == {"cnn", "classical"} and all("/emodb/" in f for f in executed if "fold0" in f)
    assert (again["status"] == "done").all() and len(again) == 4
    for name in ("cnn", "classical"):
        assert len(list((tmp_path / "results" / "runs" / "emodb" / name).glob("fold0-seed0.stale-*"))) == 1
    assert not list((tmp_path / "results" / "runs" / "emovo").rglob("*.stale-*"))
    assert "on other data (the corpus's files changed since)" in capsys.readouterr().out
    info = json.loads((tmp_path / "results" / "runs" / "emodb" / "cnn" / "fold0-seed0" / "run.json").read_text())
    assert info["settings"]["data"] != first_fingerprint(first) and len(info["settings"]["data"]) == 16


def first_fingerprint(results) -> str:
    """The data fingerprint the EmoDB cnn run of ``results`` recorded, from its moved-aside folder."""
    folder = Path(results[results["name"] == "cnn"]["run_dir"].iloc[0])
    (stale,) = folder.parent.glob(folder.name + ".stale-*")
    return json.loads((stale / "run.json").read_text())["settings"]["data"]


def test_a_missing_dot_costs_only_the_pictures(datasets_root, tmp_path, monkeypatch):
    import emokit.runner as runner
    import emokit.viz.cells

    monkeypatch.setattr(runner, "execute_notebook", lambda notebook, output, parameters, timeout=None:
                        output.parent.mkdir(parents=True, exist_ok=True))
    monkeypatch.setattr(emokit.viz.cells, "dot_available", lambda: False)
    grid = make_grid("quick", data_root=str(datasets_root), results_dir=str(tmp_path), folds=[0], baselines=[])
    results = run_grid(grid, progress=False)
    assert results["status"].tolist() == ["done"]
    import json

    info = json.loads((tmp_path / "runs" / "emodb" / "emodarts" / "fold0-seed0" / "run.json").read_text())
    assert "cell graphs were not drawn" in info["warnings"][0]
    import torch

    assert info["environment"]["torch_threads"] == torch.get_num_threads()  # what results depend on
    assert info["environment"]["torch"] == torch.__version__
