"""Speed and memory of one DARTS search step for the paper's configuration.

Input 1 x 128 x 128, 4 classes, initial channels 8, 4 CNN cells of 4 nodes,
2 SeqNN cells of 3 nodes, scope emodarts. Each configuration runs in a fresh
process so that its peak memory is its own. Prints, per configuration: median
seconds per first-order step (alpha update + weight update), samples/s,
forward-only time, peak memory, parameters; the speed-up over a plain DARTS
mixed op (every op weighted, `none` included); and the projected time per
search epoch on EmoDB fold 0.

    python benchmarks/search_step.py [--repeats 2] [--second-order] [--authors-code DIR]
        [--device cuda] [--batch-sizes 16 64]

``--authors-code DIR``: DIR is a checkout of the authors' public repository
(github.com/jayaneetha/emoDARTS; nothing of it is copied into emokit). Their
search network and step are then timed on random input in the same sitting,
before and after emokit's configurations, on the same device, and every row
gets its ratio to the authors' step at the same batch size. Their first-order step is DARTS' first order on
their modules (alphas: the gradient of the loss on the alpha batch; weights:
their training step); their second order is their own ``Architect``. Without
the option no side-by-side ratio is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CONFIGS = {
    "plain DARTS mixed op (reference), batch 16": dict(batch_size=16, fast=False, recompute_edges=False),
    "emokit, batch 16": dict(batch_size=16, recompute_edges=False),
    "emokit + edge recomputation, batch 16": dict(batch_size=16, recompute_edges=True),
    "emokit bf16, batch 16": dict(batch_size=16, precision="bf16", recompute_edges=False),
    # Plain fp32 batch 64 needs about 4 x the batch-16 memory: more than this 24 GiB machine has.
    # Every row says whether it recomputes: "auto" would decide by the machine's free memory.
    "emokit bf16, batch 64": dict(batch_size=64, precision="bf16", recompute_edges=False),
    "emokit PC-DARTS (K=4), batch 16": dict(batch_size=16, partial_channels=4, recompute_edges=False),
    "emokit PC-DARTS (K=4) bf16, batch 16": dict(batch_size=16, partial_channels=4, precision="bf16",
                                                 recompute_edges=False),
}
# These rows run eagerly; on a GPU configurations() adds "+ CUDA graphs" rows.
CONFIGS = {name: {**options, "cuda_graphs": False} for name, options in CONFIGS.items()}


def measure(options: dict, repeats: int) -> dict:
    """Child process: one configuration."""
    from emokit.search.budget import estimate_cost
    from emokit.search.loop import SearchConfig
    from emokit.search.supernet import SearchSpace

    options = dict(options)
    space = SearchSpace(partial_channels=options.pop("partial_channels", 1))
    fast = options.pop("fast", True)
    return estimate_cost(space, SearchConfig(**options), repeats=repeats, fast=fast)


def measure_authors(directory: str, batch_size: int, order: str, repeats: int, device: str) -> dict:
    """Child process: the authors' search network (their code, imported from
    ``directory``) in the paper's configuration, one step as their search does it."""
    import time

    import torch
    from torch import nn

    from emokit.search.budget import PeakMemory
    from emokit.utils import resolve_device

    sys.path.insert(0, str(Path(directory) / "emoDARTS"))
    from architect import Architect  # noqa: E402  (theirs)
    from models.search_cnn import SearchCNNController  # noqa: E402  (theirs)

    device = resolve_device(device)
    torch.manual_seed(0)
    criterion = nn.CrossEntropyLoss()
    model = SearchCNNController(1, 8, 4, 4, criterion, n_nodes=4, device_ids=[0], n_layers_rnn=2,
                                n_nodes_rnn=3).to(device)
    w_optim = torch.optim.SGD(model.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
    alpha_optim = torch.optim.Adam(model.alphas(), 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    architect = Architect(model, 0.9, 3e-4)
    x = torch.randn(batch_size, 1, 128, 128, device=device)
    y = torch.randint(0, 4, (batch_size,), device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step():
        alpha_optim.zero_grad()
        if order == "second":
            architect.unrolled_backward(x, y, x, y, 0.025, w_optim)
        else:
            model.loss(x, y).backward()
        alpha_optim.step()
        w_optim.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.weights(), 5.0)
        w_optim.step()

    model.train()
    step()  # warm-up
    times = []
    with PeakMemory(device) as memory:
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        sync()
        start = time.perf_counter()
        model(x)
        sync()
        forward = time.perf_counter() - start
    seconds = sorted(times)[len(times) // 2]
    return {"device": str(device), "batch_size": batch_size, "order": order, "step_seconds": seconds,
            "forward_seconds": forward, "samples_per_second": batch_size / seconds, "peak_memory_bytes": memory.peak,
            "parameters": sum(p.numel() for p in model.parameters())}


def emodb_search_rows() -> int | None:
    """Rows of EmoDB fold 0's search set (None where the corpus is absent)."""
    from emokit.data import corpus_root, load_corpus
    from emokit.splits import make_folds

    # As the Makefile: $EMOKIT_DATA, else the shared copy beside the checkout.
    root = corpus_root("emodb", os.environ.get("EMOKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
    if not (root / "wav").is_dir():
        return None
    manifest = load_corpus("emodb", root, check_audio=False)
    return len(make_folds(manifest)[0].indices("search"))


def configurations(device: str, batch_sizes: list[int], second_order: bool, authors_code: str | None) -> dict:
    """Row name -> options of its child process. On the CPU the default rows;
    with ``batch_sizes`` (a GPU, say) every emokit row at every batch size."""
    if batch_sizes:
        base = {name.removesuffix(", batch 16"): options for name, options in CONFIGS.items()
                if name.endswith(", batch 16")}
        configs = {f"{name}, batch {b}": {**options, "batch_size": b} for b in batch_sizes for name, options in base.items()}
    else:
        batch_sizes, configs = [16], dict(CONFIGS)
    if device.startswith("cuda"):
        for b in batch_sizes:
            configs[f"emokit + CUDA graphs, batch {b}"] = dict(batch_size=b, recompute_edges=False, cuda_graphs=True)
            configs[f"emokit PC-DARTS (K=4) + CUDA graphs, batch {b}"] = dict(
                batch_size=b, partial_channels=4, recompute_edges=False, cuda_graphs=True)
    if second_order:
        configs["emokit second order, batch 16"] = dict(batch_size=16, order="second", cuda_graphs=False)
    configs = {name: {**options, "device": device} for name, options in configs.items()}
    if not authors_code:
        return configs
    if not (Path(authors_code) / "emoDARTS" / "models" / "search_cnn.py").is_file():
        sys.exit(f"{authors_code} is not a checkout of jayaneetha/emoDARTS (no emoDARTS/models/search_cnn.py)")

    def theirs(b, order="first"):
        return dict(authors=authors_code, batch_size=b, order=order, device=device)

    before = {f"authors' code, batch {b} (before)": theirs(b) for b in batch_sizes}
    if second_order:
        before["authors' code second order, batch 16"] = theirs(16, "second")
    after = {f"authors' code, batch {b} (after)": theirs(b) for b in batch_sizes}
    return {**before, **configs, **after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per configuration (median)")
    parser.add_argument("--second-order", action="store_true", help="also time a second-order step at batch 16")
    parser.add_argument("--authors-code", metavar="DIR", help="a checkout of jayaneetha/emoDARTS: time their step "
                                                              "side by side and print every ratio to it")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default: cpu)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="time every row at each of these batch sizes (default: the CPU rows, batch 16, "
                             "bf16 also at 64)")
    parser.add_argument("--rows", nargs="+", metavar="TEXT",
                        help="time only the rows whose name contains one of these texts")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        options = json.loads(args.child)
        if "authors" in options:
            print(json.dumps(measure_authors(options["authors"], options["batch_size"], options["order"], args.repeats,
                                             options["device"])))
        else:
            print(json.dumps(measure(options, args.repeats)))
        return

    configs = configurations(args.device, args.batch_sizes, args.second_order, args.authors_code)
    if args.rows:
        configs = {name: options for name, options in configs.items() if any(t in name for t in args.rows)}
    n_search = emodb_search_rows()
    import torch

    from emokit.search.budget import weight_half_batches
    from emokit.search.loop import SearchConfig

    where = torch.cuda.get_device_name(0) if args.device.startswith(("cuda", "auto")) and torch.cuda.is_available() \
        else f"CPU, {os.cpu_count()} cores"
    print(f"device {args.device} ({where}); torch {torch.__version__}; EmoDB fold 0 search set: "
          + (f"{n_search} maps" if n_search else "corpus not found, no epoch time")
          + "\n")
    header = f"{'configuration':48s} {'s/step':>7s} {'samples/s':>9s} {'fwd s':>6s} {'peak GiB':>8s} {'weights M':>9s} {'epoch s':>8s}"
    if args.authors_code:
        header += " vs authors' (before)"
    print(header)
    print("-" * len(header))
    results = {}
    for name, options in configs.items():
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(options), "--repeats", str(args.repeats)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name:48s} FAILED: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
            continue
        cost = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = cost
        peak = cost["peak_memory_bytes"] / 2**30 if cost["peak_memory_bytes"] else float("nan")
        # Steps of the loop's own epoch (its weight half, its batches) x this step.
        steps = len(weight_half_batches(n_search, SearchConfig(batch_size=options["batch_size"]))) if n_search else 0
        epoch = f"{steps * cost['step_seconds']:8.0f}" if n_search else f"{'-':>8s}"
        # The ratio to the authors' step timed before this row, printed as it
        # comes, so that a run cut short by a time limit keeps its ratios.
        before = results.get(f"authors' code, batch {cost['batch_size']} (before)")
        so_far = f" {before['step_seconds'] / cost['step_seconds']:5.2f}x" if before and "authors" not in options else ""
        print(f"{name:48s} {cost['step_seconds']:7.3f} {cost['samples_per_second']:9.2f} "
              f"{cost['forward_seconds']:6.3f} {peak:8.2f} {cost['parameters'] / 1e6:9.2f} {epoch}{so_far}")
    print()
    # The authors' step per batch size: the mean of their runs before and after emokit's rows.
    theirs: dict[int, list[float]] = {}
    for name, cost in results.items():
        if name.startswith("authors' code, batch"):
            theirs.setdefault(cost["batch_size"], []).append(cost["step_seconds"])
    their_step = {b: sum(t) / len(t) for b, t in theirs.items()}
    if not their_step:
        print("No side-by-side ratio to the authors' code was measured (give --authors-code DIR).")
    for b, times in theirs.items():
        print(f"authors' first-order step at batch {b}: {their_step[b]:.3f} s "
              f"(before / after emokit's rows: {' / '.join(f'{t:.3f}' for t in times)})")
    references = {c["batch_size"]: c for n, c in results.items() if n.startswith("plain DARTS mixed op")}
    for name, cost in results.items():
        if name.startswith("authors'"):
            continue
        line = f"{name:48s}"
        if cost["batch_size"] in their_step:
            line += f" {their_step[cost['batch_size']] / cost['step_seconds']:6.2f}x the authors' step"
        reference = references.get(cost["batch_size"])
        if reference and cost["order"] == "first":
            line += f", {reference['step_seconds'] / cost['step_seconds']:5.2f}x the plain mixed op"
        print(line)


if __name__ == "__main__":
    main()
