"""Small shared helpers: seeding, device choice, atomic writes, JSON."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    # cuDNN's autotuner and some of its kernels pick algorithms by timing or
    # order atomics nondeterministically; these two settings keep a seeded
    # GPU run repeatable (a resumed run equal to an uninterrupted one).
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings as given."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available; use device='auto' or 'cpu'")
    return dev


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit systems


@functools.cache
def reuse_freed_memory() -> bool:
    """Let this process reuse the memory of freed tensors instead of
    handing it back to the OS after every step (glibc only; a no-op elsewhere).

    By default glibc serves large blocks with fresh ``mmap`` pages and trims
    the heap when they are freed, so every training step pays a page fault
    per 4 KiB of each large activation again: about 10 % of a search step on
    this project's CPU (measured, ``benchmarks/search_step.py``). Blocks up to
    32 MiB now come from the heap, which is no longer trimmed. Peak memory
    is unchanged; memory freed after a run stays with the process.
    Process-wide; runs once per process; returns whether the allocator took it.
    """
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    # trim only when the top of the heap holds more than 2 GiB free
    trim_ok = mallopt(_M_TRIM_THRESHOLD, 2 << 30)
    return bool(mmap_ok and trim_ok)


def release_freed_memory() -> bool:
    """Hand the memory of freed tensors back to the OS now (glibc's
    ``malloc_trim``; a no-op elsewhere), so that the OS's count of free memory
    includes it. Returns whether any was released."""
    malloc_trim = _libc_function("malloc_trim")
    return malloc_trim is not None and bool(malloc_trim(0))


@functools.cache
def _libc_function(name: str):
    """A function of the C library (glibc's allocator controls), or None
    where there is no such library or function."""
    if os.name != "posix":
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


@functools.cache
def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def environment() -> dict:
    """What a run's floating-point results depend on beyond its settings:
    thread counts (they change the order of sums, so float32 results differ
    in the last bits between thread counts, and training amplifies that),
    library versions and the machine. Recorded in every ``run.json``."""
    import platform
    import sys

    import librosa
    import sklearn

    return {"torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"), "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "librosa": librosa.__version__, "scikit-learn": sklearn.__version__,
            "machine": platform.machine(), "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash never leaves half a file.
    The file gets the permissions of a plain ``open`` (0666 less the umask),
    not the 0600 of a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and an atomic rename."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def write_json(obj: Any, path: str | Path) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as the bytes of an ``.npz`` file (for :func:`atomic_write_bytes`)."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@contextlib.contextmanager
def kept_buffers(model: torch.nn.Module):
    """Inside, the model's buffers (BatchNorm's running statistics) may
    change; afterwards they are what they were."""
    saved = [b.clone() for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(model.buffers(), saved):
                buffer.copy_(value)
