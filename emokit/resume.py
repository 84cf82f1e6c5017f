"""Checkpoints and per-epoch randomness: one protocol for searches and training.

A run folder's ``checkpoint.pt`` holds the state after the last finished
epoch: the modules' and optimisers' state dicts, the loop's own bookkeeping,
torch's RNG state, and the run's *identity* (its settings as JSON). Resuming
with other settings is refused instead of silently mixing two runs.

The state dicts are saved packed (:func:`pack`): one flat tensor per dtype
instead of one record per tensor. A supernet has about 11,600 tensors with
its optimiser state, and ``torch.save`` spends some 40 microseconds on each
(on a GPU also one copy to the host each): a second per epoch, as long as a
whole epoch of the paper's search replayed from CUDA graphs.

Each epoch draws its batch order (and augmentations) from a generator seeded
by ``(seed, epoch)`` alone, so an epoch after a resume sees exactly what it
would have seen in an uninterrupted run.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from emokit.utils import atomic_torch_save

CHECKPOINT = "checkpoint.pt"


class CheckpointTimer:
    """After which epochs a loop writes its checkpoint: every epoch when
    ``every_s`` is 0, otherwise once ``every_s`` seconds have passed since the
    last write; always after the run's last epoch. On a GPU an epoch of the
    paper's search takes about 1 s and its checkpoint 0.4 s
    (docs/benchmarks.md); on a CPU an epoch takes minutes."""

    def __init__(self, every_s: float = 0.0):
        self.every_s = float(every_s)
        self.last = time.perf_counter()

    def due(self, last_epoch: bool) -> bool:
        return last_epoch or self.every_s <= 0 or time.perf_counter() - self.last >= self.every_s

    def wrote(self) -> None:
        self.last = time.perf_counter()

    def end_epoch(self, last_epoch: bool, write, callback=None, record=None) -> None:
        """Call ``write`` (the checkpoint and log) when due, then ``callback(record)``;
        when the callback raises (a stop), write first if this epoch was not written."""
        written = self.due(last_epoch)
        if written:
            write()
            self.wrote()
        if callback is None:
            return
        try:
            callback(record)
        except BaseException:
            if not written:  # a stop between epochs loses nothing
                write()
                self.wrote()
            raise


def identity_text(identity: dict) -> str:
    """Canonical JSON of a run's settings (what must match to resume)."""
    return json.dumps(identity, sort_keys=True, default=str)


_SLOT = "__emokit_packed_tensor__"  # marks where a tensor of a packed tree was


def pack(tree):
    """Nested dicts, lists and tuples holding tensors -> ``{"tree": the same
    structure with each tensor replaced by a slot, "flat": one 1-d tensor per
    dtype and device (all on the CPU), "specs": (key, offset, shape) per
    slot}``."""
    tensors = []

    def strip(node):
        if isinstance(node, torch.Tensor):
            tensors.append(node.detach())
            return {_SLOT: len(tensors) - 1}
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(strip(v) for v in node)
        return node

    stripped = strip(tree)
    by_dtype: dict[str, list[torch.Tensor]] = {}
    filled: dict[str, int] = {}  # elements per dtype so far
    specs = []
    for t in tensors:
        # One flat tensor per dtype and device: an optimiser's state on a GPU
        # holds CPU tensors too (Adam's step counts), and cat needs one device.
        key = str(t.dtype).removeprefix("torch.") + ("" if t.device.type == "cpu" else f"@{t.device}")
        specs.append((key, filled.get(key, 0), tuple(t.shape)))
        filled[key] = filled.get(key, 0) + t.numel()
        by_dtype.setdefault(key, []).append(t)
    flat = {key: torch.cat([t.reshape(-1) for t in group]).cpu() for key, group in by_dtype.items()}
    return {"tree": stripped, "flat": flat, "specs": specs}


def unpack(packed: dict, map_location="cpu"):
    """The tree :func:`pack` was given, each tensor its own copy on ``map_location``."""
    flat = {dtype: t.to(map_location) for dtype, t in packed["flat"].items()}
    tensors = [flat[dtype][offset:offset + int(np.prod(shape, dtype=np.int64))].view(shape).clone()
               for dtype, offset, shape in packed["specs"]]

    def fill(node):
        if isinstance(node, dict):
            if node.keys() == {_SLOT}:
                return tensors[node[_SLOT]]
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(fill(v) for v in node)
        return node

    return fill(packed["tree"])


def save_checkpoint(path: str | Path, identity: dict, stateful: dict, state: dict) -> None:
    """Write ``checkpoint.pt`` atomically.

    Parameters
    ----------
    identity : the run's settings
    stateful : name -> object with ``state_dict()`` (models, optimisers, schedulers)
    state : the loop's bookkeeping (epoch logs, best weights ...), torch-saveable
    """
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    atomic_torch_save({"identity": identity_text(identity),
                       "packed_state_dicts": pack({k: v.state_dict() for k, v in stateful.items()}),
                       "state": state, "rng": rng}, path)


def load_checkpoint(path: str | Path, identity: dict, stateful: dict, map_location="cpu") -> dict:
    """Restore ``stateful`` objects and the RNG from ``path``; returns the loop's state.

    Raises ``ValueError`` when the checkpoint belongs to other settings.
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    if checkpoint["identity"] != identity_text(identity):
        raise ValueError(f"{path} is a checkpoint of other settings; pick a new run folder or resume=False")
    state_dicts = (unpack(checkpoint["packed_state_dicts"], map_location) if "packed_state_dicts" in checkpoint
                   else checkpoint["state_dicts"])  # written before packing
    for name, obj in stateful.items():
        obj.load_state_dict(state_dicts[name])
    # RNG states are CPU byte tensors whatever map_location moved the rest to.
    torch.set_rng_state(checkpoint["rng"]["torch"].cpu())
    if "cuda" in checkpoint["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in checkpoint["rng"]["cuda"]])
    return checkpoint["state"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator per (seed, epoch): what an epoch draws never depends on what ran before it."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Row indices ``0..n-1`` shuffled and cut into batches.

    A last batch of one row (BatchNorm cannot normalise a batch of one) is
    merged into the batch before it, so no row is ever left out.
    """
    batches = list(torch.randperm(n, generator=generator).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] = torch.cat(batches[-2:])
        batches.pop()
    return batches
