"""Will a search fit? Parameter count, step time, peak memory and projected
time of a search configuration, measured on the chosen device before the
search starts (the paper's section VI-A: supernets run out of memory)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emokit.resume import epoch_batches, save_checkpoint
from emokit.search.architect import Architect, precision_context, resolve_precision
from emokit.search.graphed import GraphedStep, make_search_step
from emokit.search.loop import SearchConfig, split_halves
from emokit.search.memory import choose_recompute, step_bytes
from emokit.search.supernet import SearchSpace, Supernet, count_parameters
from emokit.utils import resolve_device, reuse_freed_memory


class PeakMemory:
    """Peak memory of a block of code, in bytes.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the process's peak
    resident set during the block (Linux VmHWM, reset through
    /proc/self/clear_refs; it includes the libraries and the model); None
    where the OS offers no reset.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak: int | None = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = _reset_hwm()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._base is not None:
            self.peak = _status_kb("VmHWM") * 1024
        return False


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_hwm() -> int | None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_kb("VmRSS") * 1024
    except (OSError, KeyError):
        return None


def weight_half_batches(n_search: int, config: SearchConfig) -> list[int]:
    """Sizes of one search epoch's batches, by the loop's own rules: the
    weight half of ``n_search`` rows (:func:`~emokit.search.loop.split_halves`)
    cut by :func:`~emokit.resume.epoch_batches` at ``config.batch_size``.
    A split by speakers is sized like one by utterances: its halves depend
    on how many utterances each speaker has."""
    weight_half, _ = split_halves(np.zeros(n_search, dtype=int), config.alpha_fraction, config.seed)
    return [len(b) for b in epoch_batches(len(weight_half), config.batch_size, torch.Generator())]


def checkpoints_written(epochs: int, epoch_seconds: float, every_s: float) -> int:
    """How many checkpoints a run of ``epochs`` epochs of ``epoch_seconds``
    each writes when it writes one every ``every_s`` seconds (0: every epoch),
    the last epoch's included (:class:`~emokit.resume.CheckpointTimer`)."""
    if every_s <= 0 or epoch_seconds <= 0:
        return epochs
    per = max(1, int(np.ceil(every_s / epoch_seconds)))  # epochs between two checkpoints
    return int(np.ceil(epochs / per))


CPU_PROBE_BATCH = 8  # on a CPU, steps are timed on this many maps and scaled: seconds, not minutes


def estimate_cost(space: SearchSpace, config: SearchConfig = SearchConfig(), n_search: int | None = None,
                  repeats: int = 1, fast: bool = True, probe_batch: int | None = CPU_PROBE_BATCH) -> dict:
    """Measure one search step of ``space`` under ``config`` (its batch size,
    order, precision, layout, edge recomputation and device) on random data.

    Parameters
    ----------
    n_search : rows of the search set; with it the epoch and total times
        (``config.epochs``) are projected
    repeats : timed steps (the median is reported) after one warm-up step
    fast : False times the plain DARTS reference (:mod:`emokit.search.cells`)
    probe_batch : on a CPU, time steps of at most this many maps and scale
        them to the batch (a CPU step's time grows about linearly with its
        maps; the paper's step at batch 64 takes minutes to time); None or a
        GPU: time the batch itself

    Returns
    -------
    dict with ``parameters`` (supernet weights), ``step_seconds``,
    ``forward_seconds``, ``peak_memory_bytes`` (None if unmeasurable or
    timed on fewer maps: then ``projected_memory_bytes``,
    :func:`~emokit.search.memory.step_bytes`), ``timed_batch_size`` (the
    maps a timed step had),
    ``checkpoint_seconds`` (writing one checkpoint),
    ``recompute_edges`` (as :func:`~emokit.search.memory.choose_recompute`
    decided; ``MemoryError`` when the step cannot fit), ``cuda_graphs``
    (whether the step replayed CUDA graphs, :mod:`emokit.search.graphed`), and
    ``steps_per_epoch``, ``epoch_seconds``, ``warmup_epoch_seconds`` (weight
    steps only; both without the checkpoint, as the search log's ``seconds``),
    ``checkpoints`` (how many the search writes, :func:`checkpoints_written`),
    ``recording_seconds`` (what recording the CUDA graphs of each batch size
    adds to the first epoch; 0 without graphs) and ``total_seconds``
    (checkpoints and recording included) when ``n_search`` is given.
    """
    device = resolve_device(config.device)
    reuse_freed_memory()
    batch_size, order = config.batch_size, config.order
    precision = resolve_precision(config.precision, device)
    recompute = choose_recompute(space, config, device, fast)
    model = Supernet(space, fast=fast, recompute_edges=recompute).to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=config.w_lr, momentum=config.w_momentum,
                            weight_decay=config.w_weight_decay)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=config.alpha_lr, betas=config.alpha_betas,
                             weight_decay=config.alpha_weight_decay)
    architect = Architect(model, a_opt, order, config.w_momentum, config.w_weight_decay)
    take_step = make_search_step(model, w_opt, architect, config, device, recompute)
    graphed = isinstance(take_step, GraphedStep)
    timed = batch_size if device.type == "cuda" or probe_batch is None else min(batch_size, probe_batch)
    x = torch.randn(timed, 1, *space.input_shape, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, space.n_classes, (timed,), device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step_seconds(rows: int, alphas_move: bool) -> float:
        xs, ys = x[:rows], y[:rows]
        sync()
        start = time.perf_counter()
        take_step(xs, ys, xs, ys, config.w_lr, alphas_move)
        sync()
        return time.perf_counter() - start

    # CUDA graphs: the first step of each batch size records its graphs (the
    # search's first epoch does the same), which takes many steps' time.
    recording: dict[int, float] = {}  # batch size -> seconds of its first, recording step

    def median_step_seconds(alphas_move: bool, rows: int = batch_size) -> float:
        """Median seconds of ``repeats`` search steps on ``rows`` maps
        (``alphas_move`` False: weights only), timed on at most ``timed``
        maps and scaled to ``rows``."""
        measured = min(rows, timed)
        if graphed and measured not in recording:
            recording[measured] = step_seconds(measured, alphas_move)
        seconds = sorted(step_seconds(measured, alphas_move) for _ in range(repeats))[repeats // 2]
        return seconds * rows / measured

    if not graphed:
        step_seconds(timed, True)  # warm-up: kernel selection, allocations
    with PeakMemory(device) as memory:  # graphs keep their memory: recording them counts
        step = median_step_seconds(True)
    # Warm-up epochs run weight steps only: cheaper.
    weight_step = median_step_seconds(False) if n_search is not None and config.warmup_epochs else None
    with tempfile.TemporaryDirectory() as folder:  # what the search writes after every epoch
        start = time.perf_counter()
        save_checkpoint(Path(folder) / "checkpoint.pt", {}, {"model": model, "w_opt": w_opt, "a_opt": a_opt}, {})
        checkpoint = time.perf_counter() - start
    model.eval()
    with torch.no_grad(), precision_context(device, precision):
        sync()
        start = time.perf_counter()
        model(x)
        sync()
        forward = (time.perf_counter() - start) * batch_size / timed
    projected = None if timed == batch_size else step_bytes(space, config, recompute, device, fast)[0]
    out = {"device": str(device), "batch_size": batch_size, "timed_batch_size": timed, "order": order,
           "precision": precision, "parameters": count_parameters(model), "step_seconds": step,
           "forward_seconds": forward, "samples_per_second": batch_size / step,
           "peak_memory_bytes": memory.peak if timed == batch_size else None, "projected_memory_bytes": projected,
           "recompute_edges": recompute,
           "checkpoint_seconds": checkpoint,
           "cuda_graphs": graphed and take_step.record}
    if n_search is not None:
        sizes = weight_half_batches(n_search, config)
        rest = sizes[-1] if sizes[-1] < batch_size else 0
        full = len(sizes) - (1 if rest else 0)
        # The last, smaller batch is timed on its own: its cost is neither a
        # full step's (CPU: nearly proportional to the rows) nor nothing (GPU:
        # nearly constant per step).
        model.train()
        last_step = median_step_seconds(True, rest) if rest else 0.0
        last_weight_step = median_step_seconds(False, rest) if rest and weight_step is not None else last_step
        out["steps_per_epoch"] = full + (1 if rest else 0)
        out["epoch_seconds"] = full * step + last_step
        warmup = min(config.warmup_epochs, config.epochs)
        out["warmup_epoch_seconds"] = (full * weight_step + last_weight_step if weight_step is not None
                                       else out["epoch_seconds"])
        out["checkpoints"] = checkpoints_written(config.epochs, out["epoch_seconds"], config.checkpoint_every_s)
        medians = {batch_size: step, rest: last_step}
        out["recording_seconds"] = sum((max(0.0, first - medians[rows]) for rows, first in recording.items()), 0.0)
        out["total_seconds"] = (out["warmup_epoch_seconds"] * warmup + out["epoch_seconds"] * (config.epochs - warmup)
                                + checkpoint * out["checkpoints"] + out["recording_seconds"])
    return out


def format_cost(cost: dict) -> str:
    """One readable paragraph of :func:`estimate_cost`'s figures."""
    mem, projected = cost["peak_memory_bytes"], cost.get("projected_memory_bytes")
    timed = cost.get("timed_batch_size", cost["batch_size"])
    scaled = f" (timed on {timed} maps, scaled)" if timed != cost["batch_size"] else ""
    lines = [
        f"supernet: {cost['parameters'] / 1e6:.2f} M weights on {cost['device']}",
        f"one {cost['order']}-order step at batch {cost['batch_size']}: {cost['step_seconds']:.2f} s{scaled} "
        f"({cost['samples_per_second']:.1f} samples/s), forward only {cost['forward_seconds']:.2f} s",
        (f"peak memory of the process during a step: {mem / 2**30:.2f} GiB" if mem is not None
         else f"projected memory of a step: {projected / 2**30:.2f} GiB" if projected is not None
         else "peak memory: not measurable here")
        + (", CNN edges recomputed in the backward pass" if cost.get("recompute_edges") else "")
        + (", the step replayed from CUDA graphs" if cost.get("cuda_graphs") else ""),
    ]
    if "epoch_seconds" in cost:
        lines.append(f"projected: {cost['epoch_seconds']:.0f} s per epoch ({cost['steps_per_epoch']} steps) "
                     f"and {cost['checkpoint_seconds']:.1f} s for its checkpoint")
        if cost.get("warmup_epoch_seconds", cost["epoch_seconds"]) != cost["epoch_seconds"]:
            lines[-1] += f", {cost['warmup_epoch_seconds']:.0f} s per warm-up epoch (weights only)"
    if cost.get("recording_seconds"):
        lines[-1] += f", {cost['recording_seconds']:.0f} s to record the CUDA graphs in the first epoch"
    if "total_seconds" in cost:
        lines[-1] += f", {cost['total_seconds'] / 60:.1f} min for the whole search"
    return "\n".join(lines)


LONG_CPU_SEARCH_S = 30 * 60


def cost_advice(cost: dict) -> str | None:
    """A warning for a search on a CPU projected past 30 minutes (by
    :func:`estimate_cost` with ``n_search``) that names the faster ways; else None."""
    total = cost.get("total_seconds")
    if total is None or not cost["device"].startswith("cpu") or total <= LONG_CPU_SEARCH_S:
        return None
    return (f"This search is projected to take {total / 3600:.1f} h on the CPU (more than 30 minutes). Faster: "
            "preset = \"quick\" (emokit's narrow supernet, a few minutes), fewer epochs (search = "
            "{\"epochs\": ...}), PC-DARTS (space = {\"partial_channels\": 4}), or a GPU.")
