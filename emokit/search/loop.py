"""The DARTS search loop: bilevel optimisation of weights and alphas on a
fold's ``search`` set, with a checkpoint every epoch and resume.

The search set is split (stratified) into a weight half and an alpha half,
or, with ``alpha_split="speakers"``, into the utterances of some speakers
and those of others, so that the alphas are chosen for voices the weights
never trained on, as the test speakers will be. Each step updates the
alphas on an alpha-half batch (first or second order, see
:mod:`emokit.search.architect`), then the weights on a weight-half batch.
Nothing here sees the test speakers.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from emokit.config import Config
from emokit.features import array_fingerprint
from emokit.resume import CHECKPOINT, CheckpointTimer, epoch_batches, epoch_generator, load_checkpoint, save_checkpoint
from emokit.search.architect import PRECISIONS, Architect, resolve_precision
from emokit.search.genotype import (COLLAPSE_REMEDIES, UNDECIDED_REMEDIES, Genome, collapse_report,
                                    undecided_report)
from emokit.search.graphed import GraphedStep, make_search_step
from emokit.search.memory import choose_recompute
from emokit.search.selection import check_selection, select_genome, write_scores
from emokit.search.supernet import SearchSpace, Supernet, count_parameters
from emokit.utils import (atomic_write_bytes, npz_bytes, resolve_device, reuse_freed_memory, seed_everything,
                          write_json)


ALPHA_SPLITS = ("utterances", "speakers")


@dataclass(frozen=True)
class SearchConfig(Config):
    """Optimisation settings of a search (defaults: the public DARTS code the
    paper used; the paper runs 300 epochs).

    ``warmup_epochs``: epochs that train only the weights before the alphas
    move -- a remedy against collapse to parameter-free ops.
    ``aux_skip`` (DARTS-, Chu et al. 2021): an auxiliary skip connection of
    this weight on every stride-1 edge, decaying linearly to 0 over the
    epochs. ``beta_decay`` (beta-DARTS, Ye et al. 2022): weight of the
    alphas' logsumexp in the alpha loss, ramped up linearly from 0 over the
    epochs. ``max_skip`` (P-DARTS): at most this many ``skip_connect`` edges
    per cell when the genome is derived. ``selection``: how the genome is
    read from the trained supernet, "alphas" (DARTS: the largest weights) or
    "perturbation" (the ops and edges whose removal hurts the supernet most
    on the alpha half; :mod:`emokit.search.selection`).
    ``gdas`` (Dong & Yang 2019): every training pass runs one op per edge,
    drawn by Gumbel-max from the alphas, with a straight-through gradient
    to them; the temperature falls linearly from ``gdas_tau[0]`` to
    ``gdas_tau[1]`` over the epochs. The supernet then trains the single
    paths a genome keeps, instead of a mixture no genome is.
    ``channels_last``: NHWC memory layout, several times faster convolutions
    on CPU. ``recompute_edges``: recompute each CNN edge in the backward pass
    (a fraction of the memory, about one more forward pass of time); "auto"
    only when a step would not fit in the free memory otherwise
    (:mod:`emokit.search.memory`). ``precision``:
    "fp32" or "bf16" (autocast: half the activation memory; on CPUs with
    bf16 instructions also faster). ``cuda_graphs``: replay the step's
    gradient computations from CUDA graphs (:mod:`emokit.search.graphed`);
    "auto" wherever they can run (a CUDA device, first order, fp32, no
    aux_skip, beta_decay, gdas or edge recomputation).
    ``alpha_split``: how the search set is cut into the weight half and
    the alpha half (``alpha_fraction`` of it): "utterances" (DARTS: a
    stratified share of the rows) or "speakers" (whole speakers; the search
    needs each row's speaker, and the alpha half then holds about
    ``alpha_fraction`` of the speakers).
    ``checkpoint_every_s``: write the checkpoint and the log after an epoch
    only once this many seconds have passed since the last write (and after
    the last epoch, or when a callback raises); 0: after every epoch. An
    interruption loses at most this much work.
    """

    epochs: int = 300
    batch_size: int = 64
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    order: str = "first"
    alpha_fraction: float = 0.5
    alpha_split: str = "utterances"
    warmup_epochs: int = 0
    aux_skip: float = 0.0
    beta_decay: float = 0.0
    max_skip: int | None = None
    selection: str = "alphas"
    gdas: bool = False
    gdas_tau: tuple[float, float] = (10.0, 0.1)
    seed: int = 0
    device: str = "auto"
    channels_last: bool = True
    recompute_edges: bool | str = "auto"
    precision: str = "fp32"
    cuda_graphs: bool | str = "auto"
    checkpoint_every_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha_betas", tuple(self.alpha_betas))
        object.__setattr__(self, "gdas_tau", tuple(self.gdas_tau))
        if self.gdas and not all(t > 0 for t in self.gdas_tau):
            raise ValueError(f"gdas_tau must be two temperatures > 0, got {self.gdas_tau!r}")
        if self.gdas and self.order != "first":  # the unrolled step's passes would each draw other ops
            raise ValueError("gdas searches are first order (as in Dong & Yang 2019); set order='first'")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        if self.order not in ("first", "second"):
            raise ValueError(f"unknown DARTS order {self.order!r}; known: first, second")
        if self.recompute_edges not in (True, False, "auto"):
            raise ValueError(f"recompute_edges must be True, False or 'auto', got {self.recompute_edges!r}")
        check_selection(self.selection)
        if self.alpha_split not in ALPHA_SPLITS:
            raise ValueError(f"unknown alpha_split {self.alpha_split!r}; known: {', '.join(ALPHA_SPLITS)}")
        if self.cuda_graphs not in (True, False, "auto"):
            raise ValueError(f"cuda_graphs must be True, False or 'auto', got {self.cuda_graphs!r}")



@dataclass
class SearchResult:
    genome: Genome
    log: pd.DataFrame
    alpha_history: dict[str, np.ndarray]
    warnings: list[str]
    run_dir: Path
    undecided: list[str] = field(default_factory=list)  # cells whose alphas are still near uniform


class SearchInterrupted(RuntimeError):
    """Raised by a callback to stop a search after a checkpoint (tests, notebooks)."""


def gdas_temperature(config: SearchConfig, epoch: int) -> float | None:
    """The Gumbel temperature of epoch ``epoch`` (from 0), linear from
    ``gdas_tau[0]`` at the first epoch to ``gdas_tau[1]`` at the last; None without GDAS."""
    if not config.gdas:
        return None
    start, end = config.gdas_tau
    return start + (end - start) * epoch / max(1, config.epochs - 1)


def split_halves(y: np.ndarray, fraction: float, seed: int,
                 speakers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the weight half and the alpha half.

    Without ``speakers``: the alpha half is ``fraction`` of the rows,
    stratified by label where every label has two rows or more. With
    ``speakers`` (each row's speaker, shape (n,)): the alpha half is every
    row of ``floor(fraction * n_speakers)`` speakers (at least one, and one
    fewer than all; the weights get the odd one), drawn with ``seed``, so no
    speaker is in both halves.
    """
    idx = np.arange(len(y))
    if speakers is not None:
        speakers = np.asarray(speakers)
        if len(speakers) != len(y):
            raise ValueError(f"{len(speakers)} speakers for {len(y)} rows; give each row's speaker")
        names = np.unique(speakers)
        if len(names) < 2:
            raise ValueError(f"alpha_split='speakers' needs two speakers or more in the search set, got "
                             f"{list(names)}; use alpha_split='utterances'")
        n_alpha = min(max(1, int(fraction * len(names))), len(names) - 1)
        alpha_speakers = np.random.default_rng(seed).permutation(names)[:n_alpha]
        in_alpha = np.isin(speakers, alpha_speakers)
        return idx[~in_alpha], idx[in_alpha]
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    w_idx, a_idx = train_test_split(idx, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(w_idx), np.sort(a_idx)


def search_halves(y: np.ndarray, config: SearchConfig,
                  speakers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The weight half and the alpha half a search with ``config`` uses
    (:func:`split_halves` by ``config.alpha_split``)."""
    if config.alpha_split == "speakers" and speakers is None:
        raise ValueError("alpha_split='speakers' needs each search row's speaker: pass speakers= "
                         "(emokit.pipeline.search_fold does), or use alpha_split='utterances'")
    return split_halves(np.asarray(y), config.alpha_fraction, config.seed,
                        speakers if config.alpha_split == "speakers" else None)


def run_search(
    x: np.ndarray,
    y: np.ndarray,
    run_dir: str | Path,
    space: SearchSpace = SearchSpace(),
    config: SearchConfig = SearchConfig(),
    resume: bool = True,
    callback: Callable[[dict], None] | None = None,
    progress: bool = True,
    meta: dict | None = None,
    speakers: np.ndarray | None = None,
) -> SearchResult:
    """Search a genome on ``x`` (the fold's ``search`` set, normalised).

    Parameters
    ----------
    x : ndarray, shape (n, 1, rows, columns), float32
    y : ndarray, shape (n,), int class indices
    run_dir : folder for checkpoint.pt, log.csv, alpha_history.npz,
        genome.json, search_space.json, config.json
    resume : continue from ``run_dir/checkpoint.pt`` when it exists
    callback : called after every epoch with a dict (epoch, row of the log,
        snapshot of softmax alphas, genome, collapse warnings)
    meta : extra facts stored in config.json (corpus, fold, ...)
    speakers : ndarray, shape (n,), optional
        Each row's speaker; needed with ``config.alpha_split="speakers"``.
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if len(x) != len(y) or len(x) < 4:
        raise ValueError(f"a search needs at least 4 labelled maps, got {len(x)} maps and {len(y)} labels")
    if tuple(x.shape[2:]) != tuple(space.input_shape):
        raise ValueError(f"maps of shape {tuple(x.shape[2:])} do not fit the search space's input_shape "
                         f"{tuple(space.input_shape)}")
    w_idx, a_idx = search_halves(y, config, speakers)  # before anything is built: a wrong split fails at once
    # What must match to resume. cuda_graphs is how a step runs, not what it
    # computes: a search recorded on a GPU may go on eagerly, and back. The
    # selection only reads the trained supernet: a finished search can be
    # read again another way. How often a checkpoint is written changes
    # nothing either. The default alpha split is left out, so searches
    # from before the option still resume.
    settings = {k: v for k, v in config.to_dict().items()
                if k not in ("cuda_graphs", "selection", "checkpoint_every_s")
                and not (k == "alpha_split" and v == "utterances")}
    identity = json.loads(json.dumps({"search_space": space.to_dict(), "search": settings,
                                      "data": array_fingerprint(x, np.asarray(y))}))
    checkpoint_path = run_dir / CHECKPOINT

    seed_everything(config.seed)
    reuse_freed_memory()
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)  # bf16 asked where it cannot run: fp32, with a warning
    recompute = choose_recompute(space, config, device)
    model = Supernet(space, recompute_edges=recompute).to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=config.w_lr, momentum=config.w_momentum,
                            weight_decay=config.w_weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=config.epochs, eta_min=config.w_lr_min)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=config.alpha_lr, betas=config.alpha_betas,
                             weight_decay=config.alpha_weight_decay)
    architect = Architect(model, a_opt, config.order, config.w_momentum, config.w_weight_decay)
    take_step = make_search_step(model, w_opt, architect, config, device, recompute)

    tensor_x = torch.as_tensor(x).to(device).contiguous(memory_format=memory_format)
    tensor_y = torch.as_tensor(np.asarray(y), dtype=torch.long).to(device)
    x_w, y_w, x_a, y_a = tensor_x[w_idx], tensor_y[w_idx], tensor_x[a_idx], tensor_y[a_idx]

    stateful = {"model": model, "w_opt": w_opt, "a_opt": a_opt, "scheduler": scheduler}
    state = {"rows": [], "history": {t: [] for t in model.alphas}}
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, identity, stateful, map_location=device)
    rows, history = state["rows"], state["history"]
    start_epoch = len(rows)
    write_json({**identity, "meta": meta or {}}, run_dir / "config.json")
    write_json(space.describe(), run_dir / "search_space.json")

    timer = CheckpointTimer(config.checkpoint_every_s)

    def write_checkpoint() -> None:
        save_checkpoint(checkpoint_path, identity, stateful, state)
        _write_outputs(run_dir, rows, history, genome)

    bar = tqdm(range(start_epoch, config.epochs), desc="search", unit="epoch", disable=not progress,
               initial=start_epoch, total=config.epochs)
    for epoch in bar:
        started = time.perf_counter()
        model.train()
        lr = scheduler.get_last_lr()[0]
        model.set_aux_skip(config.aux_skip * (1 - epoch / config.epochs))
        model.gumbel_tau = gdas_temperature(config, epoch)
        architect.beta_decay = config.beta_decay * (epoch + 1) / config.epochs
        generator = epoch_generator(config.seed, epoch)
        w_batches = epoch_batches(len(w_idx), config.batch_size, generator)
        a_batches = epoch_batches(len(a_idx), config.batch_size, generator)
        sums = dict(w_loss=0.0, w_correct=0, w_n=0, a_loss=0.0, a_correct=0, a_n=0)
        for step, w_batch in enumerate(w_batches):
            a_batch = a_batches[step % len(a_batches)]
            w_loss, w_logits, a_loss, a_logits = take_step(
                x_w[w_batch], y_w[w_batch], x_a[a_batch], y_a[a_batch], lr, epoch >= config.warmup_epochs)
            sums["w_loss"] += float(w_loss) * len(w_batch)
            sums["w_correct"] += int((w_logits.argmax(1) == y_w[w_batch]).sum())
            sums["w_n"] += len(w_batch)
            if a_loss is not None:
                sums["a_loss"] += float(a_loss) * len(a_batch)
                sums["a_correct"] += int((a_logits.argmax(1) == y_a[a_batch]).sum())
                sums["a_n"] += len(a_batch)
        scheduler.step()

        snapshot = model.alpha_snapshot()
        for t, weights in snapshot.items():
            history[t].append(weights)
        genome = model.genome(config.max_skip)
        collapse = collapse_report(genome)
        row = {
            "epoch": epoch + 1, "lr": lr, "aux_skip": model.cnn_cells[0].edges[0].aux_skip,
            "beta_decay": architect.beta_decay, "gumbel_tau": model.gumbel_tau,
            "weight_loss": sums["w_loss"] / sums["w_n"], "weight_acc": sums["w_correct"] / sums["w_n"],
            "alpha_loss": sums["a_loss"] / sums["a_n"] if sums["a_n"] else float("nan"),
            "alpha_acc": sums["a_correct"] / sums["a_n"] if sums["a_n"] else float("nan"),
            "seconds": time.perf_counter() - started,
            "genome": json.dumps(genome.to_dict()), "collapse": "; ".join(collapse),
        }
        rows.append(row)
        bar.set_postfix(loss=f"{row['weight_loss']:.3f}", alpha_acc=f"{row['alpha_acc']:.2f}")
        record = {"epoch": epoch + 1, "row": row, "snapshot": snapshot, "genome": genome, "collapse": collapse,
                  "ops": {t: list(space.ops(t)) for t in snapshot}, "epochs": config.epochs}
        timer.end_epoch(epoch + 1 == config.epochs, write_checkpoint, callback, record)
    bar.close()

    if not rows:
        raise RuntimeError(f"search in {run_dir} ran no epoch (epochs={config.epochs})")
    genome, scores = select_genome(model, config.selection, x_a, y_a, config.max_skip, config.batch_size, progress)
    _write_outputs(run_dir, rows, history, genome, scores)  # also when a finished search resumed ran no epoch
    collapse = collapse_report(genome)
    for message in collapse:
        warnings.warn(f"{message}. Remedies: {COLLAPSE_REMEDIES}", stacklevel=2)
    undecided = undecided_report({t: h[-1] for t, h in history.items()})
    for message in undecided:
        warnings.warn(f"{message}: the genome rests on near-ties. Remedies: {UNDECIDED_REMEDIES}", stacklevel=2)
    summary = {"epochs": len(rows), "parameters": count_parameters(model),
               "seconds": float(sum(r["seconds"] for r in rows)), "collapse": collapse, "undecided": undecided,
               "final_alpha_acc": rows[-1]["alpha_acc"], "recompute_edges": recompute, "selection": config.selection,
               "precision": precision,
               "cuda_graphs": isinstance(take_step, GraphedStep) and take_step.record,
               "alpha_speakers": (sorted(map(str, set(np.asarray(speakers)[a_idx])))
                                  if config.alpha_split == "speakers" else None)}
    write_json(summary, run_dir / "summary.json")
    return SearchResult(genome, pd.DataFrame(rows), {t: np.stack(h) for t, h in history.items()}, collapse, run_dir,
                        undecided)


def _write_outputs(run_dir: Path, rows: list[dict], history: dict, genome: Genome, scores: dict | None = None) -> None:
    """log.csv, alpha_history.npz, genome.json and, for a genome read by
    perturbation, its scores (:func:`~emokit.search.selection.write_scores`)."""
    atomic_write_bytes(run_dir / "log.csv", pd.DataFrame(rows).to_csv(index=False).encode())
    atomic_write_bytes(run_dir / "alpha_history.npz", npz_bytes({t: np.stack(h) for t, h in history.items()}))
    genome.save(run_dir / "genome.json")
    write_scores(run_dir, scores)


def load_search(run_dir: str | Path) -> SearchResult:
    """Read a finished (or interrupted) search's outputs from its folder."""
    run_dir = Path(run_dir)
    if not (run_dir / "genome.json").exists():
        raise FileNotFoundError(f"{run_dir} has no genome.json; run a search there first (notebook 02)")
    log = pd.read_csv(run_dir / "log.csv", keep_default_na=False, na_values=[""])
    with np.load(run_dir / "alpha_history.npz") as data:
        history = {k: data[k] for k in data.files}
    genome = Genome.load(run_dir)
    undecided = undecided_report({t: h[-1] for t, h in history.items()})
    return SearchResult(genome, log, history, collapse_report(genome), run_dir, undecided)
