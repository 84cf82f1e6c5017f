"""How close is the projected memory of a search step to the measured one?

``emokit.search.memory`` projects a step's memory from the activations
autograd stores on forward passes of 2 and 4 maps, before a search starts
(and recomputes the CNN edges when a step would not fit otherwise). Here
each configuration runs in a fresh process: one warm-up step, the freed
memory handed back to the OS, then one timed first-order step, whose growth
of the resident set is compared with the projection (activations only: the
weights, gradients and optimiser state exist before the step).

    python benchmarks/search_memory.py [--rows TEXT ...] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emokit.experiments import PRESETS  # noqa: E402

PAPER = PRESETS["paper"]["space"]
QUICK = {**PRESETS["quick"]["space"], "input_shape": (128, 64)}  # its 4 s log-mel maps
ROWS = {
    "paper supernet, batch 16": (PAPER, dict(batch_size=16, recompute_edges=False)),
    "paper supernet + edge recomputation, batch 16": (PAPER, dict(batch_size=16, recompute_edges=True)),
    "paper supernet + edge recomputation, batch 64": (PAPER, dict(batch_size=64, recompute_edges=True)),
    "paper supernet bf16, batch 16": (PAPER, dict(batch_size=16, recompute_edges=False, precision="bf16")),
    "paper supernet PC-DARTS (K=4), batch 16": ({**PAPER, "partial_channels": 4},
                                                dict(batch_size=16, recompute_edges=False)),
    "quick supernet, batch 32": (QUICK, dict(batch_size=32, recompute_edges=False)),
}


def measure(space_fields: dict, options: dict) -> dict:
    """Child process: projected and measured growth of one step."""
    import torch

    from emokit.search.architect import Architect, search_step
    from emokit.search.budget import PeakMemory, _status_kb
    from emokit.search.loop import SearchConfig
    from emokit.search.memory import HEADROOM, PARAMETER_COPIES, step_bytes
    from emokit.search.supernet import SearchSpace, Supernet
    from emokit.utils import release_freed_memory, resolve_device, reuse_freed_memory

    space, config = SearchSpace.from_dict(space_fields), SearchConfig(**options)
    device = resolve_device(config.device)
    reuse_freed_memory()
    need, _ = step_bytes(space, config, config.recompute_edges, device)
    torch.manual_seed(0)
    model = Supernet(space, recompute_edges=config.recompute_edges).to(device).to(memory_format=torch.channels_last)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    projected = (need - PARAMETER_COPIES * weights) / HEADROOM[config.recompute_edges]
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.01, momentum=0.9)
    architect = Architect(model, torch.optim.Adam(model.arch_parameters(), lr=3e-4))
    x = torch.randn(config.batch_size, 1, *space.input_shape, device=device).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, space.n_classes, (config.batch_size,), device=device)

    def step():
        search_step(model, w_opt, architect, x, y, x, y, 0.01, 5.0, config.precision)

    step()  # gradients and momentum buffers exist from here on
    release_freed_memory()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _status_kb("VmRSS") * 1024
    with PeakMemory(device) as memory:
        step()
    return {"projected": projected, "measured": memory.peak - base if memory.peak is not None else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", metavar="TEXT", help="only the rows whose name contains one of these")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        space_fields, options = json.loads(args.child)
        print(json.dumps(measure(space_fields, options)))
        return
    print(f"{'configuration':48s} {'projected GiB':>13s} {'measured GiB':>12s} {'measured / projected':>20s}")
    for name, (space_fields, options) in ROWS.items():
        if args.rows and not any(text in name for text in args.rows):
            continue
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps([space_fields, {**options,
                              "device": args.device}])], capture_output=True, text=True, cwd=REPO)
        if out.returncode != 0:
            print(f"{name:48s} FAILED: {(out.stderr.strip().splitlines() or [out.returncode])[-1]}")
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        projected, measured = result["projected"] / 2**30, result["measured"]
        if measured is None:
            print(f"{name:48s} {projected:13.2f} {'-':>12s}")
        else:
            print(f"{name:48s} {projected:13.2f} {measured / 2**30:12.2f} {measured / 2**30 / projected:20.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
