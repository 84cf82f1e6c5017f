"""Will a search step fit in memory? Decided before the search starts, so
that a supernet too big for the machine stops with an error that names the
fix instead of being killed by the operating system (the paper's section
VI-A: supernets run out of memory).

A step's memory is almost all the activations autograd stores for the
backward pass, and those grow linearly with the batch. They are counted on
a forward pass of 2 and of 4 random maps and extrapolated to the batch.
``SearchConfig(recompute_edges="auto")``, the default, recomputes the CNN
edges in the backward pass only when a step would not fit otherwise.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from emokit.search.architect import precision_context
from emokit.search.supernet import SearchSpace, Supernet
from emokit.utils import release_freed_memory

PROBE_BATCHES = (2, 4)
# Measured step / counted activations (benchmarks/search_memory.py, the paper's
# supernet on the CPU): 0.85 storing every edge (a real step freezes the alphas
# or the weights, and stores less than the probe); 1.12-1.13 recomputing them
# (the edge being recomputed and the gradients in flight come on top).
HEADROOM = {False: 1.1, True: 1.25}  # keyed by recompute
# Weights, their gradients, SGD momentum, and a copy for the second-order step.
PARAMETER_COPIES = 4
GIB = 2.0 ** 30


def stored_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of
    a classification loss on ``model(x)`` (views of one storage count once)."""
    storages: dict[int, int] = {}

    def count(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor.detach()  # the tensor itself would tie a reference cycle through its own grad_fn

    with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
        logits = model(x)
        torch.nn.functional.cross_entropy(logits, torch.zeros(len(x), dtype=torch.long, device=x.device))
    return sum(storages.values())


# ``config`` below is a SearchConfig (emokit.search.loop, which imports this module).
def step_bytes(space: SearchSpace, config, recompute: bool, device: torch.device,
               fast: bool = True) -> tuple[int, int]:
    """Projected memory of one search step at ``config.batch_size`` (with its
    ``precision`` and ``channels_last``).

    Returns ``(bytes, bytes_per_map)``: the whole step (stored activations
    with headroom, plus the weights' copies) and what each map of the batch
    adds to it. Draws its random maps and weights without touching the
    global random state, so a seeded search is the same with or without it.
    """
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model = Supernet(space, fast=fast, recompute_edges=recompute).to(device).to(memory_format=memory_format)
        model.train()
        stored = []
        for batch in PROBE_BATCHES:
            x = torch.randn(batch, 1, *space.input_shape, device=device).contiguous(memory_format=memory_format)
            with precision_context(device, config.precision):
                stored.append(stored_bytes(model, x))
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        del model, x
    release_freed_memory()
    (b0, b1), (s0, s1) = PROBE_BATCHES, stored
    per_map = max(s1 - s0, 0) / (b1 - b0)
    activations = s0 + per_map * (config.batch_size - b0)
    headroom = HEADROOM[bool(recompute)]
    return int(headroom * activations + PARAMETER_COPIES * weights), int(headroom * per_map)


def free_bytes(device: torch.device) -> int | None:
    """Memory this process may still take on ``device``: CUDA's free memory;
    on the CPU, Linux's MemAvailable, lowered to a cgroup's limit where one is
    set (containers, SLURM jobs), after handing the memory this process
    freed back to the OS. None where neither can be read."""
    if device.type == "cuda":
        torch.cuda.empty_cache()  # blocks cached by torch's allocator are free to this process
        return torch.cuda.mem_get_info(device)[0]
    release_freed_memory()
    try:
        with open("/proc/meminfo") as fh:
            available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None
    limit, usage = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    try:
        if limit.read_text().strip() != "max":
            available = min(available, int(limit.read_text()) - int(usage.read_text()))
    except (OSError, ValueError):
        pass
    return available


def choose_recompute(space: SearchSpace, config, device: torch.device, fast: bool = True) -> bool:
    """``config.recompute_edges`` made a decision: whether the search's CNN
    edges are recomputed in the backward pass.

    ``"auto"``: only when a step would not fit in the memory free on
    ``device`` otherwise (a ``UserWarning`` says so). Both ways give the same
    search to float rounding (tests/test_search.py), about 1.3x slower with
    recomputation. Raises ``MemoryError``, naming the batch size that would
    fit, when the step fits neither way (or not the way asked for). The free
    memory is read once, here: searches that start side by side (a grid's
    workers on one machine) each count all of it.
    """
    choice = config.recompute_edges
    free = free_bytes(device)
    if free is None:  # nothing to compare with: as asked, "auto" as off
        return choice is True
    if choice in ("auto", False):
        need, per_map = step_bytes(space, config, False, device, fast)
        if need <= free:
            return False
        if choice is False:
            raise MemoryError(_advice(config, need, per_map, free, recompute=False))
        plain_need = need
    need, per_map = step_bytes(space, config, True, device, fast)
    if need > free:
        raise MemoryError(_advice(config, need, per_map, free, recompute=True))
    if choice == "auto":
        warnings.warn(f"a search step at batch {config.batch_size} would need about {plain_need / GIB:.1f} GiB and "
                      f"{device} has {free / GIB:.1f} GiB free: the CNN edges are recomputed in the backward pass "
                      f"(about {need / GIB:.1f} GiB, slower; set recompute_edges=False to refuse)", stacklevel=2)
    return True


def _advice(config, need: int, per_map: int, free: int, recompute: bool) -> str:
    fitting = config.batch_size - -(-(need - free) // max(per_map, 1))  # ceil division
    how = "with" if recompute else "without"
    fixes = [f"search batch_size {fitting} (the largest that fits)" if fitting >= 2 else None,
             None if recompute else "recompute_edges 'auto' or True (a fraction of the memory, slower)",
             "precision 'bf16' (half the activations)" if config.precision == "fp32" else None,
             "space partial_channels 4 (PC-DARTS)", "fewer space channels or cells"]
    return (f"a search step at batch {config.batch_size} needs about {need / GIB:.1f} GiB {how} edge recomputation, "
            f"and only {free / GIB:.1f} GiB are free. Try: " + "; ".join(f for f in fixes if f) + ".")
