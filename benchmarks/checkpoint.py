"""Seconds to write a search's checkpoint, packed against one record per tensor.

The paper's supernet with its SGD momentum and Adam state holds about
11,600 tensors. ``emokit.resume.save_checkpoint`` packs them into one flat
tensor per dtype; the alternative timed here is ``torch.save`` of the
state dicts as they are (what checkpoints held before). Both write through
the same atomic, fsync'd file write, alternating, in one process.

    python benchmarks/checkpoint.py [--device cpu] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from emokit.experiments import PRESETS  # noqa: E402
from emokit.resume import save_checkpoint  # noqa: E402
from emokit.search.supernet import SearchSpace, Supernet  # noqa: E402
from emokit.utils import atomic_torch_save, resolve_device  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = Supernet(SearchSpace.from_dict(PRESETS["paper"]["space"])).to(device)
    model = model.to(memory_format=torch.channels_last)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    w_opt.step()
    a_opt.step()  # momentum buffers and Adam moments exist, as after a first epoch
    stateful = {"model": model, "w_opt": w_opt, "a_opt": a_opt}
    tensors = len(model.state_dict()) + sum(len(s) for s in w_opt.state.values()) + sum(
        len(s) for s in a_opt.state.values())

    times = {"packed (save_checkpoint)": [], "one record per tensor": []}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "checkpoint.pt"
        for _ in range(args.repeats):
            start = time.perf_counter()
            save_checkpoint(path, {}, stateful, {})
            times["packed (save_checkpoint)"].append(time.perf_counter() - start)
            size = path.stat().st_size
            start = time.perf_counter()
            atomic_torch_save({"state_dicts": {k: v.state_dict() for k, v in stateful.items()}}, path)
            times["one record per tensor"].append(time.perf_counter() - start)
    print(f"paper supernet on {device}: {tensors} tensors, checkpoint {size / 2**20:.1f} MiB, "
          f"median of {args.repeats}")
    for name, values in times.items():
        print(f"{name:28s} {statistics.median(values):.3f} s  (min {min(values):.3f}, max {max(values):.3f})")
    packed, plain = (statistics.median(v) for v in times.values())
    print(f"packed / per tensor: {packed / plain:.2f}")


if __name__ == "__main__":
    main()
