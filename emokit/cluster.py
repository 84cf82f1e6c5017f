"""Run a grid's runs as Dask tasks: on a local cluster of worker processes,
on a running Dask scheduler, or on a batch-system cluster (dask-jobqueue).

One task per run, one per corpus for notebook 01, which the corpus's runs
wait for. A worker runs one task at a time (one thread per worker); a run
asks for the worker resource ``GPU=1`` when it runs on CUDA, so no worker
runs two GPU runs at once. A run holds its folder's lock
(:mod:`emokit.locks`), so a task retried after its worker died resumes the
run from its checkpoints and never overlaps a live one.

The functions that execute notebooks come from :mod:`emokit.runner` as
arguments, so this module does not import it.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable

from emokit.experiments import Grid, Run

__all__ = ["JOBQUEUE_CLUSTERS", "open_client", "jobqueue_cluster", "run_on_dask", "thread_env", "usable_cores"]

# grid.cluster["kind"] -> the dask_jobqueue class
JOBQUEUE_CLUSTERS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
                     "htcondor": "HTCondorCluster", "moab": "MoabCluster", "oar": "OARCluster"}


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment variables that give a kernel's torch, OpenMP and BLAS ``threads`` threads."""
    if not threads:
        return {}
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def jobqueue_cluster(settings: dict):
    """A dask-jobqueue cluster from a grid's ``cluster:`` section, not yet scaled.

    ``settings``: ``kind`` (slurm, pbs, sge, lsf, htcondor, moab, oar),
    ``jobs`` (how many batch jobs to start, one worker each; used by
    :func:`open_client`), and the cluster class's own arguments (``cores``,
    ``memory``, ``queue``, ``walltime``, ``job_extra_directives``, ...).
    """
    settings = dict(settings)
    kind = settings.pop("kind", None)
    settings.pop("jobs", None)
    if kind not in JOBQUEUE_CLUSTERS:
        raise ValueError(f"grid 'cluster': unknown kind {kind!r}; known: {', '.join(JOBQUEUE_CLUSTERS)}")
    import dask_jobqueue

    return getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[kind])(**settings)


def _local_cluster(grid: Grid, gpus: int):
    from dask.distributed import LocalCluster

    if gpus and grid.workers > gpus:
        raise ValueError(f"{grid.workers} workers for {gpus} GPUs: give at most one worker per GPU (--workers {gpus})")
    try:
        import bokeh  # noqa: F401  (the dashboard needs it)

        dashboard = ":0"
    except ImportError:
        dashboard = None
    return LocalCluster(n_workers=grid.workers, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                        resources={"GPU": 1} if gpus else None)


@contextlib.contextmanager
def open_client(grid: Grid, say=print):
    """A ``dask.distributed.Client`` for the grid's engine; closes what it started."""
    from dask.distributed import Client

    cluster = None
    if grid.scheduler:
        client = Client(grid.scheduler)
    elif grid.cluster:
        cluster = jobqueue_cluster(grid.cluster)
        cluster.scale(jobs=int(grid.cluster.get("jobs", 1)))
        client = Client(cluster)
    else:
        cluster = _local_cluster(grid, _local_gpus(grid))
        client = Client(cluster)
    if client.dashboard_link and (grid.scheduler or cluster is None or cluster.dashboard_link):
        say(f"Dask dashboard: {client.dashboard_link}")
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _local_gpus(grid: Grid) -> int:
    """GPUs a local cluster shares out, one per worker (0 on CPU)."""
    if grid.device == "cpu":
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _wants_gpu(grid: Grid, client) -> bool:
    """Whether each run should ask for ``GPU=1``: the device is CUDA, or
    ``auto`` with workers that offer a GPU."""
    if grid.device.startswith("cuda"):
        return True
    if grid.device != "auto":
        return False
    workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
    return any(w.get("resources", {}).get("GPU") for w in workers)


def _run_task(run_one, grid: Grid, run: Run, threads: int | None, pin_gpu: bool, _features_done,
              *_runs_before) -> tuple[str, str]:
    """A run on a Dask worker: its kernels get ``threads`` threads and, on a
    local cluster, the GPU of the worker's number. Dask starts it once the
    futures it is given (its corpus's features, a transfer's source search)
    are done."""
    from dask.distributed import get_worker

    env = thread_env(threads)
    if pin_gpu:
        import torch

        env["CUDA_VISIBLE_DEVICES"] = str(int(get_worker().name) % max(1, torch.cuda.device_count()))
    return run_one(grid, run, env)


def run_on_dask(grid: Grid, corpora: list[str], runs: list[Run], run_features: Callable, run_one: Callable,
                mark_lost: Callable, progress: bool = True, say=print) -> None:
    """Execute notebook 01 of ``corpora`` and then ``runs`` as Dask tasks
    (each run records its outcome in its run.json). A run whose worker died
    more often than Dask retries is recorded failed by ``mark_lost`` (the
    next ``emokit run`` resumes it from its checkpoints).
    """
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    local = not grid.scheduler and not grid.cluster
    threads = grid.threads or (max(1, usable_cores() // grid.workers) if local else None)
    with open_client(grid, say) as client:
        gpu = _wants_gpu(grid, client)
        resources = {"GPU": 1} if gpu else None
        features = {corpus: client.submit(run_features, grid, corpus, thread_env(threads),
                                          key=f"emokit-features-{corpus}-{os.getpid()}", pure=False,
                                          priority=len(runs) + 1)
                    for corpus in corpora}
        # Runs start in the order given (Dask's own order of tasks that become
        # ready together is not that): the plan puts the longest first.
        futures, by_folder = {}, {}
        for i, run in enumerate(runs):
            # A transfer run retrains its source search's genome: it waits for that run when it is in the batch.
            before = [by_folder[run.source.folder]] if run.source is not None and run.source.folder in by_folder else []
            future = client.submit(_run_task, run_one, grid, run, threads, gpu and local, features[run.corpus], *before,
                                   key=f"emokit-{run.corpus}-{run.name}-fold{run.fold}-seed{run.seed}-{os.getpid()}",
                                   pure=False, resources=resources, priority=len(runs) - i)
            futures[future], by_folder[run.folder] = run, future
        for future in features.values():
            for line in future.result():
                say(line)
        bar = tqdm(total=len(runs), desc="runs", unit="run", disable=not progress)
        for future in as_completed(futures):
            run = futures[future]
            try:
                status, note = future.result()
            except Exception as exc:  # the worker died (KilledWorker) or the task could not run
                mark_lost(run, f"{type(exc).__name__}: {exc}")
                status, note = "failed", f"{run.folder}: {type(exc).__name__}: {exc}"
            if status == "held":
                bar.write(note)
            elif status == "failed":
                info = run.info
                bar.write(f"FAILED {run.folder}: {info.get('error') or note}")
            bar.set_postfix_str(f"{run.corpus} {run.name} fold {run.fold} seed {run.seed}")
            bar.update(1)
        bar.close()
