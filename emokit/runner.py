"""Execute a grid (:mod:`emokit.experiments`): notebook 01 once per corpus,
notebooks 02-04 per run, notebook 05 at the end, each with papermill.

Finished runs are skipped, an interrupted run resumes from its checkpoints,
and a failed run is recorded in its run.json while the grid goes on. A run
folder is owned by one process at a time (:class:`emokit.locks.FolderLock`):
a second runner skips a run another process holds, so two runners on one
results folder never execute a run twice or mix their settings in it.

Runs execute one after another in this process (``workers=1``), or as Dask
tasks (:func:`emokit.cluster.run_on_dask`) when the grid names workers, a
scheduler or a cluster.
"""
from __future__ import annotations

import contextlib
import os
import time
import traceback
import warnings
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import pandas as pd

from emokit.cluster import run_on_dask, thread_env
from emokit.diagnosis import risky_settings, speaker_confound
from emokit.experiments import Grid, Run, control_space, corpus_manifest, data_fingerprint, plan, run_settings
from emokit.locks import FolderLock
from emokit.utils import environment, read_json, write_json

__all__ = ["notebook_path", "execute_notebook", "run_features", "run_one", "run_grid", "grid_results", "compare",
           "describe_failure", "report_skipped", "mark_lost"]


def notebook_path(name: str) -> Path:
    """A notebook of the sequence (``"02_search.ipynb"``), shipped with the package."""
    path = Path(str(resources.files("emokit.notebooks") / name))
    if not path.is_file():
        known = sorted(p.name for p in path.parent.glob("*.ipynb"))
        raise FileNotFoundError(f"no notebook {name!r} in {path.parent}; known: {', '.join(known)}")
    return path


def _ipc_kernel_manager():
    """A kernel manager whose kernels talk over Unix sockets, not TCP ports:
    many kernels starting at once on one host cannot collide on a port
    (nteract/papermill#511), and ipykernel does not warn about unencrypted TCP."""
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            # A socket path of its own: jupyter_client's default can be the
            # relative "kernel-ipc", on which two processes starting kernels in
            # one folder would collide.
            path = Path(tempfile.gettempdir()) / f"emokit-kernel-{uuid.uuid4().hex}"
            super().__init__(transport="ipc", ip=str(path), **kwargs)

    return IPCKernelManager


def execute_notebook(notebook: str, output: Path, parameters: dict, timeout: int | None = None) -> None:
    """Run ``notebook`` of the sequence with ``parameters`` into ``output`` (papermill)."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(notebook_path(notebook)), str(output), parameters=parameters,
                                   kernel_name="python3", cwd=str(output.parent), progress_bar=False,
                                   execution_timeout=timeout, kernel_manager_class=_ipc_kernel_manager(),
                                   # Every cell has finished and written its files; a graceful shutdown
                                   # only waits 1-2 s for the interpreter to tear down torch & co.
                                   shutdown_kernel="immediate")
    except papermill.PapermillExecutionError as exc:
        exc.notebook = notebook  # for describe_failure: which notebook the cell belongs to
        raise


@contextlib.contextmanager
def _environment(env: dict[str, str] | None):
    """``os.environ`` updated by ``env`` (inherited by the kernels started meanwhile), then restored."""
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _common(grid: Grid, corpus: str) -> dict:
    # preset None: the grid's dicts are complete (its preset is already merged in).
    return {"corpus": corpus, "preset": None, "data_root": grid.data_root,
            "feature_dir": str(Path(grid.results_dir, "features").resolve()), "features": grid.features,
            "normalization": grid.normalization, "val_speakers": grid.val_speakers}


def run_features(grid: Grid, corpus: str, env: dict[str, str] | None = None) -> list[str]:
    """Notebook 01 of ``corpus`` (the feature cache); returns the lines
    that say how many files were used and which were skipped, and why."""
    results = Path(grid.results_dir)
    with _environment(env):
        execute_notebook("01_features.ipynb", results / "runs" / corpus / "01_features.ipynb",
                         {"corpus": corpus, "preset": None, "data_root": grid.data_root,
                          "output_dir": str((results / "features").resolve()), "features": grid.features},
                         grid.cell_timeout)
    lines: list[str] = []
    report_skipped(grid, corpus, say=lines.append)
    return lines


def _finished(grid: Grid, run: Run, info: dict) -> bool:
    return info.get("status") == "done" and info.get("settings") == run_settings(grid, run)


def run_one(grid: Grid, run: Run, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Execute one run's notebooks unless another process holds its folder.

    Returns ``(status, note)``: status is ``done``, ``failed``, or ``held``
    (another process owns the folder; the note says which). A run folder
    left by other settings is moved aside (``<folder>.stale-<time>``) so that
    its checkpoints are not resumed with the new settings; only the process
    holding the folder's lock may do so. ``env``: environment variables for
    the run's kernels (threads, the GPU).
    """
    lock = FolderLock(run.folder)
    if not lock.acquire():
        return "held", f"{run.folder} is being executed by {lock.holder()}; skipping"
    try:
        previous = run.info  # read under the lock: another process may have finished it meanwhile
        if _finished(grid, run, previous):
            return "done", "finished by another process"
        with _environment(env):
            return _execute_run(grid, run, previous), ""
    finally:
        lock.release()


def _execute_run(grid: Grid, run: Run, previous: dict) -> str:
    folder = run.folder.resolve()
    settings = run_settings(grid, run)
    attempt = 1
    if previous and previous.get("settings") != settings:
        stale = folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        folder.rename(stale)
        print(f"{folder} was run {_what_changed(previous.get('settings') or {}, settings)}; "
              f"moved to {stale.name} and run again")
    elif previous:
        attempt = previous.get("attempt", 1) + 1  # resumes from the checkpoints of the earlier attempt
    info = {"corpus": run.corpus, "kind": run.kind, "name": run.name, "fold": run.fold, "seed": run.seed,
            "status": "running", "attempt": attempt, "settings": settings,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "environment": environment()}
    write_json(info, folder / "run.json")
    common = dict(_common(grid, run.corpus), fold=run.fold, live=False)
    started = time.perf_counter()
    try:
        if run.kind == "transfer":
            search_dir = run.source.folder.resolve() / "search"
            if not (search_dir / "genome.json").exists():
                raise FileNotFoundError(f"the genome this run retrains, {search_dir / 'genome.json'}, is not there: "
                                        f"its search run ({run.source.folder}) failed or has not run; run the grid "
                                        "again once it has")
            model = {"model": "genome", "search_dir": str(search_dir)}
        elif run.kind == "darts":
            search_dir = folder / "search"
            execute_notebook("02_search.ipynb", folder / "02_search.ipynb",
                             dict(common, run_dir=str(search_dir), space={**grid.space, "scope": run.name},
                                  search={**grid.search, "seed": run.seed, "device": grid.device}, estimate=False),
                             grid.cell_timeout)
            execute_notebook("03_genome.ipynb", folder / "03_genome.ipynb", {"run_dirs": [str(search_dir)]},
                             grid.cell_timeout)
            model = {"model": "genome", "search_dir": str(search_dir)}
        else:
            model = {"model": run.name, "space": control_space(grid), "classical": grid.classical}
        execute_notebook("04_retrain.ipynb", folder / "04_retrain.ipynb",
                         dict(common, run_dir=str(folder / "retrain"), **model, net=grid.net,
                              train={**grid.train, "seed": run.seed, "device": grid.device}), grid.cell_timeout)
        info.update(status="done", error=None)
        metrics = folder / "retrain" / "metrics.json"
        suspect = read_json(metrics).get("suspect") if metrics.exists() else None
        if suspect:  # below chance: said in run.json, the grid's table and notebook 05
            info["suspect"] = suspect
            print(f"SUSPECT {folder}: " + "; ".join(suspect))
        from emokit.viz.cells import dot_available

        if run.kind == "darts" and not dot_available():
            info["warnings"] = ["Graphviz 'dot' is missing: the cell graphs were not drawn (the run is complete)"]
    except KeyboardInterrupt:
        info.update(status="interrupted")
        write_json(info, folder / "run.json")
        raise
    except Exception as exc:  # one failed run must not stop the grid
        info.update(status="failed", error=describe_failure(exc), traceback=traceback.format_exc()[-4000:])
    info.update(seconds=time.perf_counter() - started, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    write_json(info, folder / "run.json")
    return info["status"]


def _what_changed(before: dict, now: dict) -> str:
    """``"on other data (...)"`` or ``"with other settings (...)"``, naming the keys that differ."""
    keys = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if "data" in keys and "data" not in before:
        return "before emokit recorded the data under a run (no fingerprint of the corpus's files)"
    if keys == ["data"]:
        return "on other data (the corpus's files changed since)"
    return f"with other settings ({', '.join(keys)})"


def mark_lost(run: Run, reason: str) -> None:
    """Record a run whose process died (a killed Dask worker) as failed, unless
    a live process holds it; the next ``emokit run`` resumes it."""
    lock = FolderLock(run.folder)
    if not lock.acquire():
        return
    try:
        info = run.info
        if info.get("status") == "running":
            info.update(status="failed", error=f"the process running it died: {reason}",
                        finished=time.strftime("%Y-%m-%d %H:%M:%S"))
            write_json(info, run.folder / "run.json")
    finally:
        lock.release()


def describe_failure(exc: BaseException) -> str:
    """One line: which notebook and cell failed, and the exception's own message."""
    import papermill

    if isinstance(exc, papermill.PapermillExecutionError):
        notebook = getattr(exc, "notebook", "a notebook")
        message = f"{notebook}, cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    message = " ".join(message.split())
    return message if len(message) <= 1000 else message[:997] + "..."


def report_skipped(grid: Grid, corpus: str, say=print) -> list[dict]:
    """Say how many audio files of ``corpus`` were left out and why (read
    from notebook 01's feature cache); returns the skip records."""
    from emokit.pipeline import corpus_features

    _, manifest = corpus_features(corpus, grid.data_root, grid.features, Path(grid.results_dir) / "features",
                                  progress=False)
    skipped = manifest.attrs.get("skipped", [])
    say(f"{corpus}: {len(manifest)} audio files used, {len(skipped)} skipped")
    for record in skipped:
        say(f"  skipped {record['reason']}")
    return skipped


def _distributed(grid: Grid) -> bool:
    return grid.workers > 1 or bool(grid.scheduler) or bool(grid.cluster)


def run_grid(grid: Grid, progress: bool = True) -> pd.DataFrame:
    """Run the whole grid (features first, then every unfinished run);
    returns :func:`grid_results`."""
    from tqdm.auto import tqdm

    say = print if progress else (lambda *a: None)
    results = Path(grid.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    risky = risky_settings(grid.normalization, grid.val_speakers)
    grid.fingerprints.clear()  # the corpora are read afresh by every call: their files may have changed since
    grid.fold_schemes.clear()
    for corpus in grid.corpora:
        manifest = corpus_manifest(grid, corpus)
        data_fingerprint(grid, corpus, manifest)  # read once here; Dask workers get them with the grid
        confound = speaker_confound(manifest)
        if confound.confounded and risky:
            warnings.warn(f"{confound.describe(corpus)} This grid runs with {' and '.join(risky)}.", stacklevel=2)
    for corpus in grid.test_corpora:
        data_fingerprint(grid, corpus)
    write_json(asdict(grid), results / "grid.json")
    runs = plan(grid)
    todo = [run for run in runs if not _finished(grid, run, run.info)]
    corpora = list(dict.fromkeys(run.corpus for run in todo))
    if _distributed(grid):
        run_on_dask(grid, corpora, todo, run_features=run_features, run_one=run_one, mark_lost=mark_lost,
                    progress=progress, say=say)
    else:
        env = thread_env(grid.threads)
        for corpus in corpora:
            for line in run_features(grid, corpus, env):
                say(line)
        bar = tqdm(todo, desc="runs", unit="run", disable=not progress)
        for run in bar:
            bar.set_postfix_str(f"{run.corpus} {run.name} fold {run.fold} seed {run.seed}")
            status, note = run_one(grid, run, env)
            if status == "held":
                bar.write(note)
            elif status == "failed":
                bar.write(f"FAILED {run.folder}: {read_json(run.folder / 'run.json')['error']}")
    if grid.test_corpora:
        score_across_corpora(grid, runs, progress)
    return grid_results(grid, runs)


def score_across_corpora(grid: Grid, runs: list[Run], progress: bool = True) -> int:
    """Score every finished model of the grid (the classical control too) on
    each test corpus other than its own
    (:func:`emokit.cross_corpus.score_run_folder`; kept scores are reused
    while neither side changed). A score that fails is reported and the
    others go on. Returns how many were scored."""
    from tqdm.auto import tqdm

    from emokit.cross_corpus import fitted_without_standardiser, needs_scoring, score_run_folder

    unkept = [run.folder for run in runs if run.name == "classical" and _finished(grid, run, run.info)
              and fitted_without_standardiser(run.folder / "retrain")]
    if unkept:
        print(f"{len(unkept)} classical run(s) were fitted before emokit kept their standardiser and are not scored "
              f"on other corpora; delete them (e.g. {unkept[0]}) and run again (seconds each)")

    pairs = [(run, corpus) for run in runs if run.kind != "transfer" for corpus in grid.test_corpora
             if corpus != run.corpus and _finished(grid, run, run.info)
             and needs_scoring(run.folder, corpus, data_fingerprint(grid, corpus))]
    feature_dir = Path(grid.results_dir) / "features"
    for corpus in dict.fromkeys(corpus for _, corpus in pairs):  # its maps first, in notebook 01's cache
        run_features(grid, corpus, thread_env(grid.threads))
    scored = 0
    for run, corpus in tqdm(pairs, desc="cross-corpus scores", unit="run", disable=not progress):
        lock = FolderLock(run.folder)
        if not lock.acquire():  # another runner is redoing it; the next call scores it
            continue
        try:
            scores = score_run_folder(run.folder, corpus, data_fingerprint(grid, corpus), data_root=grid.data_root,
                                      feature_dir=feature_dir)
        except Exception as exc:  # one run's score must not stop the others
            print(f"FAILED scoring {run.folder} on {corpus}: {describe_failure(exc)}")
            continue
        finally:
            lock.release()
        scored += scores is not None
    return scored


def grid_results(grid: Grid, runs: list[Run] | None = None) -> pd.DataFrame:
    """:func:`emokit.results.collect` of the grid's own runs. A run finished
    with other settings (by another runner) gets status ``other settings``,
    so no table mixes it with this grid's runs; a run another process is
    executing gets status ``held``."""
    from emokit.results import collect

    runs = plan(grid) if runs is None else runs
    by_folder = {str(run.folder.resolve()): run for run in runs}
    while True:  # again only if another runner finished a run while the table was read
        table = collect(grid.results_dir)
        table = table[table["run_dir"].map(lambda d: str(Path(d).resolve())).isin(by_folder)].reset_index(drop=True)
        if not _mark_runs_elsewhere(grid, table, by_folder):
            return table


def _mark_runs_elsewhere(grid: Grid, table: pd.DataFrame, by_folder: dict[str, Run]) -> bool:
    """Mark, in place, the rows run with other settings and those another
    process is executing. Returns True if a row read as running was
    finished meanwhile (the table is stale)."""
    finished_meanwhile = False
    for i, folder in enumerate(table["run_dir"]):
        run = by_folder[str(Path(folder).resolve())]
        settings = run.info.get("settings")
        if settings is not None and settings != run_settings(grid, run):
            table.loc[i, "status"] = "other settings"
            table.loc[i, "error"] = "run with other settings by another runner; not part of this grid's results"
        elif table.loc[i, "status"] == "running":
            lock = FolderLock(run.folder)
            if lock.acquire():
                # No one holds it: its process died while running it (the next call resumes it),
                # or its runner finished it after the table was read.
                finished_meanwhile |= run.info.get("status") != "running"
                lock.release()
            else:
                table.loc[i, "status"] = "held"
                table.loc[i, "error"] = f"being executed by {lock.holder()}"
    return finished_meanwhile


def compare(results_dir: str | Path, html: bool = True, timeout: int | None = None) -> Path:
    """Execute notebook 05 on a results folder (and save an HTML copy)."""
    results_dir = Path(results_dir).resolve()
    output = results_dir / "05_compare.ipynb"
    execute_notebook("05_compare.ipynb", output, {"results_dir": str(results_dir)}, timeout)
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(output))
        output.with_suffix(".html").write_text(body)
    return output
