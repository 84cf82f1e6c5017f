"""The grid on Dask (a local cluster, a scheduler and workers started apart),
run-folder locks, concurrent runners and a killed worker."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emokit.experiments import make_grid
from emokit.locks import FolderLock
from emokit.runner import run_grid

from test_experiments import TINY

# One fold, a hand-designed baseline and a random genome, one thread per run:
# the same numbers wherever it runs. (Searches go through the same runner
# code; tests/test_experiments.py runs them.)
GRID = dict(folds=[0], scopes=[], baselines=["cnn", "random"], threads=1, cell_timeout=300, **TINY)
COMPARED = ["corpus", "name", "fold", "seed", "status", "ua", "wa", "parameters"]


def _grid(datasets_root, results, **overrides):
    return make_grid("quick", data_root=str(datasets_root), results_dir=str(results), **{**GRID, **overrides})


def _table(results: pd.DataFrame) -> pd.DataFrame:
    return results[COMPARED].sort_values(["name", "fold", "seed"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def serial_table(datasets_root, tmp_path_factory):
    """The tiny grid run in this process, the reference of the other engines."""
    results = run_grid(_grid(datasets_root, tmp_path_factory.mktemp("serial")), progress=False)
    assert (results["status"] == "done").all(), results[["name", "error"]]
    return _table(results)


def _dask(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _scheduler(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """A Dask scheduler on 127.0.0.1, started as its own process; returns it and its address."""
    file = tmp_path / "scheduler.json"
    process = _dask("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(file), log=tmp_path / "scheduler.log")
    for _ in range(300):
        if file.exists() and file.stat().st_size:
            return process, json.loads(file.read_text())["address"]
        time.sleep(0.1)
    process.kill()
    pytest.fail("the Dask scheduler did not start: " + (tmp_path / "scheduler.log").read_text()[-2000:])


def _worker(address: str, log: Path, nanny: bool = True) -> subprocess.Popen:
    return _dask("distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard",
                 *([] if nanny else ["--no-nanny"]), log=log)


def _stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_thread_settings_and_engine_choice_are_checked():
    with pytest.raises(ValueError, match="workers must be"):
        make_grid("quick", workers=0)
    with pytest.raises(ValueError, match="one of workers > 1, scheduler and cluster"):
        make_grid("quick", workers=2, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="threads"):
        make_grid("quick", threads=0)


def test_kernels_talk_over_ipc_without_the_tcp_warning(tmp_path, capfd, monkeypatch):
    import nbformat

    import emokit.runner as runner

    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                  "display_name": "Python 3"}})
    notebook.cells = [nbformat.v4.new_code_cell("answer = 0", metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell("import json\nfrom ipykernel.connect import get_connection_info\n"
                                                "print(json.loads(get_connection_info())['transport'], answer)")]
    nbformat.write(notebook, tmp_path / "probe.ipynb")
    monkeypatch.setattr(runner, "notebook_path", lambda name: tmp_path / name)
    runner.execute_notebook("probe.ipynb", tmp_path / "out" / "probe.ipynb", {"answer": 42}, timeout=120)
    output = nbformat.read(tmp_path / "out" / "probe.ipynb", as_version=4).cells[-1].outputs[0]["text"]
    assert output.strip() == "ipc 42"
    assert "without encryption" not in capfd.readouterr().err  # the kernel writes to this process's stderr


def test_the_documented_cluster_section_makes_a_slurm_job_with_one_gpu():
    import yaml

    from emokit.cluster import jobqueue_cluster

    readme = (Path(__file__).resolve().parents[1] / "docs" / "grids.md").read_text()
    block = next(b for b in readme.split("```yaml")[1:] if b.lstrip().startswith("cluster:"))
    section = yaml.safe_load(block.split("```")[0])["cluster"]
    cluster = jobqueue_cluster(section)  # builds the job script; submits nothing until scaled
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:1" in script and "--resources GPU=1" in script and "--nthreads" in script
    with pytest.raises(ValueError, match="unknown kind 'slurmm'; known: slurm"):
        jobqueue_cluster({"kind": "slurmm"})


def test_a_folder_lock_is_exclusive_and_says_who_holds_it(tmp_path):
    folder = tmp_path / "runs" / "emodb" / "cnn" / "fold0-seed0"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from emokit.locks import FolderLock; "
                               f"lock = FolderLock({str(folder)!r}); assert lock.acquire(); print('held', flush=True); "
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = FolderLock(folder)
        assert not lock.acquire()
        assert f"/{holder.pid} since " in lock.holder()
        folder.mkdir(parents=True)
        folder.rename(folder.with_name("moved"))  # the lock lives beside the folder, not in it
        assert not FolderLock(folder).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = FolderLock(folder)  # the OS released a dead holder's lock
    assert lock.acquire() and lock.held
    lock.release()
    assert not lock.owner_path.exists()


def test_the_feature_cache_is_extracted_once_by_concurrent_processes(emodb_manifest, tmp_path):
    script = ("import sys, pandas as pd; import emokit.features as F; "
              "real = F._extract; F._extract = lambda *a: (print('extracted', flush=True), real(*a))[1]; "
              "m = pd.read_csv(sys.argv[1]); "
              "f, kept = F.extract(m, F.FeatureConfig(duration=1.0, n_mfcc=16, n_mels=16), sys.argv[2], n_jobs=1, "
              "progress=False); print(f.shape, f.sum())")
    manifest = tmp_path / "manifest.csv"
    emodb_manifest.head(24).to_csv(manifest, index=False)
    cache = tmp_path / "cache"
    calls = [subprocess.Popen([sys.executable, "-c", script, str(manifest), str(cache)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(3)]
    outputs = [call.communicate(timeout=300)[0] for call in calls]
    assert sum(out.count("extracted") for out in outputs) == 1  # one process extracted, two read its cache
    maps = {out.replace("extracted\n", "") for out in outputs}
    assert len(maps) == 1 and "(24, 1, 16" in maps.pop()  # the same maps, read whole by every process
    assert sorted(p.suffix for p in cache.iterdir() if not p.name.startswith(".")) == [".csv", ".json", ".lock", ".npy"]


@pytest.mark.slow
def test_a_local_cluster_gives_the_serial_table(datasets_root, tmp_path, serial_table, capfd):
    results = run_grid(_grid(datasets_root, tmp_path, workers=2), progress=False)
    pd.testing.assert_frame_equal(_table(results), serial_table)
    info = json.loads((tmp_path / "runs" / "emodb" / "cnn" / "fold0-seed0" / "run.json").read_text())
    assert info["environment"]["torch_threads"] == 1 and info["attempt"] == 1
    assert "without encryption" not in capfd.readouterr().err  # kernels talk over IPC sockets


@pytest.mark.slow
def test_a_scheduler_and_workers_started_apart_give_the_serial_table(datasets_root, tmp_path, serial_table):
    scheduler, address = _scheduler(tmp_path)
    workers = [_worker(address, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        results = run_grid(_grid(datasets_root, tmp_path / "results", scheduler=address), progress=False)
    finally:
        _stop(*workers, scheduler)
    pd.testing.assert_frame_equal(_table(results), serial_table)


def _runner(datasets_root, results: Path, log: Path, train_epochs: int = 1) -> subprocess.Popen:
    """``emokit run`` of the cnn baseline on folds 0 and 1, in its own process."""
    grid = results.parent / f"{log.stem}.yaml"
    grid.write_text(json.dumps({**GRID, "folds": [0, 1], "baselines": ["cnn"],
                                "train": {**TINY["train"], "epochs": train_epochs}}))
    return subprocess.Popen([sys.executable, "-m", "emokit.cli", "run", "--config", str(grid), "--data",
                             str(datasets_root), "--results", str(results), "--no-compare"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_two_runners_on_one_folder_run_each_run_once(datasets_root, tmp_path):
    results = tmp_path / "results"
    # Started together, both reach the same runs at about the same time.
    first = _runner(datasets_root, results, tmp_path / "first.log")
    second = _runner(datasets_root, results, tmp_path / "second.log")
    assert first.wait(timeout=600) == 0 and second.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()
    infos = [json.loads(p.read_text()) for p in results.rglob("run.json")]
    assert len(infos) == 2 and all(i["status"] == "done" and i["attempt"] == 1 for i in infos)  # none ran twice
    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert "is being executed by" in logs  # one met a run the other held, and skipped it


def test_a_run_another_runner_finishes_while_the_table_is_read_counts_as_done(datasets_root, tmp_path, monkeypatch):
    """The race behind a flaky two-runner test: the table read run.json while
    the other runner was still on the run, and its lock was free by the time
    it was checked. The run is done, not "running" (which fails the grid)."""
    import emokit.results
    from emokit.experiments import plan, run_settings
    from emokit.runner import grid_results
    from emokit.utils import write_json

    grid = make_grid("quick", data_root=str(datasets_root), results_dir=str(tmp_path), folds=[0], scopes=[],
                     baselines=["cnn"], **TINY)
    (run,) = plan(grid)
    info = {"corpus": run.corpus, "kind": run.kind, "name": run.name, "fold": run.fold, "seed": run.seed,
            "status": "running", "settings": run_settings(grid, run)}
    write_json(info, run.folder / "run.json")
    real_collect = emokit.results.collect

    def collect_then_the_other_runner_finishes(results_dir):
        table = real_collect(results_dir)
        write_json({**info, "status": "done"}, run.folder / "run.json")
        return table

    monkeypatch.setattr(emokit.results, "collect", collect_then_the_other_runner_finishes)
    assert list(grid_results(grid)["status"]) == ["done"]


@pytest.mark.slow
def test_runners_with_other_settings_never_mix_them(datasets_root, tmp_path):
    results = tmp_path / "results"
    first = _runner(datasets_root, results, tmp_path / "one_epoch.log")
    second = _runner(datasets_root, results, tmp_path / "two_epochs.log", train_epochs=2)
    assert first.wait(timeout=600) == 0
    second.wait(timeout=600)
    from emokit.runner import grid_results

    mine = grid_results(make_grid("quick", config_file=tmp_path / "two_epochs.yaml", data_root=str(datasets_root),
                                  results_dir=str(results)))
    for fold in (0, 1):
        run = results / "runs" / "emodb" / "cnn" / f"fold{fold}-seed0"
        info = json.loads((run / "run.json").read_text())
        epochs = len(pd.read_csv(run / "retrain" / "log.csv"))
        assert info["status"] == "done" and info["settings"]["train"]["epochs"] == epochs  # files match run.json
        ran_with = {1: "other settings", 2: "done"}[epochs]
        assert mine.set_index("fold").loc[fold, "status"] == ran_with  # never counted under the wrong settings


@pytest.mark.slow
def test_a_killed_worker_s_run_is_retried_and_resumes(datasets_root, tmp_path):
    scheduler, address = _scheduler(tmp_path)
    doomed = _worker(address, tmp_path / "doomed.log", nanny=False)
    results = tmp_path / "results"
    grid = _grid(datasets_root, results, scheduler=address, baselines=["cnn"], train={**TINY["train"], "epochs": 4})
    import pickle

    (tmp_path / "grid.pickle").write_bytes(pickle.dumps(grid))
    runner = subprocess.Popen([sys.executable, "-c", "import sys, pickle; from emokit.runner import run_grid; "
                               "t = run_grid(pickle.load(open(sys.argv[1], 'rb')), progress=False); "
                               "print(t[['status']].to_json())", str(tmp_path / "grid.pickle")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    retrain = results / "runs" / "emodb" / "cnn" / "fold0-seed0" / "retrain"
    spare = None
    try:
        deadline = time.time() + 300
        while not (retrain / "log.csv").exists() and time.time() < deadline:
            time.sleep(0.05)
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its kernel, after the first epoch's checkpoint
        killed_after = len(pd.read_csv(retrain / "log.csv"))
        spare = _worker(address, tmp_path / "spare.log")
        output = runner.communicate(timeout=600)[0].decode()
    finally:
        _stop(*[p for p in (spare, scheduler) if p is not None])
    assert runner.returncode == 0, output
    info = json.loads((retrain.parent / "run.json").read_text())
    assert info["status"] == "done" and info["attempt"] == 2, info  # retried once, on the spare worker
    log = pd.read_csv(retrain / "log.csv")
    assert log["epoch"].tolist() == [1, 2, 3, 4] and 1 <= killed_after < 4  # resumed: no epoch twice


@pytest.mark.parametrize("cores, given, expected", [(2, None, 2), (1, None, 1), (64, None, 8), (2, 1, 1)])
def test_the_demo_runs_one_single_thread_worker_per_core(monkeypatch, tmp_path, cores, given, expected):
    import argparse

    from emokit import cli, cluster

    grids = []
    monkeypatch.setattr(cluster, "usable_cores", lambda: cores)
    monkeypatch.setattr(cli, "run_summary", lambda args: 0)
    monkeypatch.setattr(cli, "_run_and_report", lambda grid, compare_after: grids.append(grid) or 0)
    assert cli.run_demo(argparse.Namespace(data=str(tmp_path), out=str(tmp_path), workers=given)) == 0
    assert grids[0].workers == expected and grids[0].scopes == ["emodarts"] and grids[0].corpora == ["emodb"]
    assert {"random", "classical"} <= set(grids[0].baselines) and grids[0].seeds == [0]


def test_a_cluster_starts_the_runs_in_the_plan_s_order(datasets_root, tmp_path, monkeypatch):
    from dask.distributed import LocalCluster

    from emokit import cluster
    from emokit.experiments import plan

    grid = _grid(datasets_root, tmp_path, workers=2, folds=[0, 1, 2], scopes=["emodarts"],
                 baselines=["cnn", "classical", "random"])
    runs = plan(grid)
    started = tmp_path / "started.txt"

    def run_features(grid, corpus, env):  # as notebook 01 does, it finishes after every run is submitted
        time.sleep(1.0)
        return []

    def run_one(grid, run, env):  # Dask may pickle the task: it leaves its trace in a file
        with started.open("a") as fh:
            fh.write(f"{run.name} {run.fold}\n")
        return "done", ""

    # One worker thread: the runs start one by one, in the order the scheduler picks.
    monkeypatch.setattr(cluster, "_local_cluster", lambda grid, gpus: LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None))
    cluster.run_on_dask(grid, ["emodb"], runs, run_features=run_features, run_one=run_one,
                        mark_lost=None, progress=False, say=lambda *a: None)
    assert started.read_text().splitlines() == [f"{r.name} {r.fold}" for r in runs]
    assert [r.name for r in runs[:6]] == ["emodarts"] * 3 + ["random"] * 3


def test_on_dask_a_transfer_run_waits_for_its_source_search(tmp_path, monkeypatch):
    """Two worker threads would start both at once; the transfer run must
    start only once the search whose genome it retrains has finished."""
    from dask.distributed import LocalCluster

    from emokit import cluster
    from emokit.experiments import Grid, Run

    source = Run("a", "darts", "emodarts", 0, 0, tmp_path / "a" / "emodarts" / "fold0-seed0")
    transfer = Run("b", "transfer", "emodarts_from_a", 0, 0, tmp_path / "b" / "emodarts_from_a" / "fold0-seed0",
                   Run("a", "darts", "emodarts", 0, 0, source.folder))
    log = tmp_path / "log.txt"

    def run_one(grid, run, env):
        with log.open("a") as fh:
            fh.write(f"start {run.name}\n")
        if run.kind == "darts":
            time.sleep(1.5)
        with log.open("a") as fh:
            fh.write(f"end {run.name}\n")
        return "done", ""

    monkeypatch.setattr(cluster, "_local_cluster", lambda grid, gpus: LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None))
    cluster.run_on_dask(Grid(corpora=["a", "b"], workers=2, results_dir=str(tmp_path)), ["a", "b"], [source, transfer],
                        run_features=lambda grid, corpus, env: [], run_one=run_one, mark_lost=None, progress=False,
                        say=lambda *a: None)
    assert log.read_text().splitlines() == ["start emodarts", "end emodarts", "start emodarts_from_a",
                                            "end emodarts_from_a"]


def test_the_dashboard_link_a_local_grid_prints_answers(tmp_path):
    """`emokit run --workers 2` prints the Dask dashboard's address: the page
    must be there (it needs bokeh, a dependency)."""
    import urllib.request

    from emokit.cluster import open_client

    said = []
    grid = make_grid("quick", results_dir=str(tmp_path), workers=2, corpora=["emodb"])
    with open_client(grid, say=said.append):
        (line,) = [s for s in said if s.startswith("Dask dashboard: ")]
        link = line.removeprefix("Dask dashboard: ")
        with urllib.request.urlopen(link, timeout=30) as page:
            assert page.status == 200 and b"Dask" in page.read()
