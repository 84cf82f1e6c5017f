"""Will a search fit? Parameter count, step time, peak memory and projected
time of a search configuration, measured on the chosen device before the
search starts (the paper's section VI-A: supernets run out of memory)."""
from __future__ import annotations

import math
import time

import torch

from emokit.search.architect import Architect, precision_context, search_step
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


def estimate_cost(space: SearchSpace, batch_size: int, device="auto", order: str = "first",
                  n_search: int | None = None, epochs: int | None = None, alpha_fraction: float = 0.5,
                  channels_last: bool = True, repeats: int = 1, skip_none: bool = True,
                  recompute_edges: bool = False, share_relu: bool = True, group_rnns: bool = True,
                  state_by_state: bool = True, precision: str = "fp32") -> dict:
    """Measure one search step of ``space`` at ``batch_size`` on random data.

    Returns
    -------
    dict with ``parameters`` (supernet weights), ``step_seconds`` (median
    of ``repeats`` timed steps after one warm-up step), ``forward_seconds``,
    ``peak_memory_bytes`` (None if unmeasurable), ``steps_per_epoch`` and
    ``epoch_seconds`` / ``total_seconds`` projections when ``n_search`` /
    ``epochs`` are given.
    """
    device = resolve_device(device)
    reuse_freed_memory()
    model = Supernet(space, skip_none=skip_none, recompute_edges=recompute_edges, share_relu=share_relu,
                     group_rnns=group_rnns, state_by_state=state_by_state).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    architect = Architect(model, a_opt, order=order)
    x = torch.randn(batch_size, 1, *space.input_shape, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, space.n_classes, (batch_size,), device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    search_step(model, w_opt, architect, x, y, x, y, 0.025, 5.0, precision)  # warm-up: kernel selection, allocations
    times = []
    with PeakMemory(device) as memory:
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            search_step(model, w_opt, architect, x, y, x, y, 0.025, 5.0, precision)
            sync()
            times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad(), precision_context(device, precision):
        sync()
        start = time.perf_counter()
        model(x)
        sync()
        forward = time.perf_counter() - start
    step = sorted(times)[len(times) // 2]
    out = {"device": str(device), "batch_size": batch_size, "order": order, "precision": precision,
           "parameters": count_parameters(model), "step_seconds": step, "forward_seconds": forward,
           "samples_per_second": batch_size / step, "peak_memory_bytes": memory.peak}
    if n_search is not None:
        n_weight_half = max(1, int(round(n_search * (1 - alpha_fraction))))
        out["steps_per_epoch"] = math.ceil(n_weight_half / batch_size)
        out["epoch_seconds"] = out["steps_per_epoch"] * step
        if epochs is not None:
            out["total_seconds"] = out["epoch_seconds"] * epochs
    return out


def format_cost(cost: dict) -> str:
    """One readable paragraph of :func:`estimate_cost`'s figures."""
    mem = cost["peak_memory_bytes"]
    lines = [
        f"supernet: {cost['parameters'] / 1e6:.2f} M weights on {cost['device']}",
        f"one {cost['order']}-order step at batch {cost['batch_size']}: {cost['step_seconds']:.2f} s "
        f"({cost['samples_per_second']:.1f} samples/s), forward only {cost['forward_seconds']:.2f} s",
        f"peak memory of the process during a step: {mem / 2**30:.2f} GiB" if mem is not None
        else "peak memory: not measurable here",
    ]
    if "epoch_seconds" in cost:
        lines.append(f"projected: {cost['epoch_seconds']:.0f} s per epoch ({cost['steps_per_epoch']} steps)")
    if "total_seconds" in cost:
        lines[-1] += f", {cost['total_seconds'] / 60:.1f} min for the whole search"
    return "\n".join(lines)
