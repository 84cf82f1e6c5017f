"""Train a network from scratch on one fold: a found genome or a baseline.

One loop for every model of :data:`emokit.models.MODELS`: SGD with momentum,
cosine-annealed learning rate, gradient clipping (the DARTS retraining
recipe). The epoch with the best validation UA is kept; validation data come
from the training speakers only, and the test speakers are scored once, at
the end, with those weights.

A run folder holds::

    config.json      what was trained (model, genome, classes, features, normaliser, fold, TrainConfig)
    log.csv          one row per epoch
    checkpoint.pt    the state after the last finished epoch (removed when the run ends)
    model.pt         state_dict of the best epoch
    metrics.json     test metrics; its presence marks a finished run
    confusion.png, curves.png
"""
from __future__ import annotations

import io
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from emokit.augment import augment_batch, mixup
from emokit.config import Config
from emokit.fold_data import FoldData
from emokit.metrics import below_chance, evaluate
from emokit.models import build_model, count_parameters
from emokit.resume import CHECKPOINT, CheckpointTimer, epoch_batches, epoch_generator, load_checkpoint, save_checkpoint
from emokit.search.genotype import Genome
from emokit.utils import _json_default, atomic_torch_save, atomic_write_bytes, read_json, resolve_device, \
    reuse_freed_memory, seed_everything, write_json

__all__ = ["TrainConfig", "train_model", "load_trained", "predict_logits", "LOG_COLUMNS"]

TRAIN_ROLES = ("search", "train")  # roles a model may be fitted on; "val" selects, "test" only reports
OPTIMIZERS = ("sgd", "adam")
LOG_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_ua", "val_wa", "seconds")


@dataclass(frozen=True)
class TrainConfig(Config):
    """How a network is trained (defaults: the paper's retraining, section IV-C).

    Attributes
    ----------
    epochs, batch_size : int
    lr, lr_min : float, start and end of the per-epoch cosine annealing
    momentum, weight_decay, grad_clip : float, SGD settings and gradient-norm clip
    class_weights : bool, weight the loss by inverse class frequency of the training rows
    train_roles : roles fitted on: ``("train",)`` (paper: the 30 % retraining
        split) or ``("search", "train")`` (all non-val data of the training speakers)
    patience : int or None, stop after this many epochs without a better val UA
    optimizer : "sgd" (the paper) or "adam" (Adam(W) with decoupled weight decay)
    label_smoothing : float, of the cross-entropy targets
    time_shift : int, maps are rolled along time by up to this many columns
    freq_masks, time_masks, mask_width : SpecAugment bands blanked per map (up to ``mask_width`` rows / columns)
    mixup : float, Beta(mixup, mixup) blending of map pairs (0: off)
    (The augmentations are drawn from a generator per seed and epoch: see :mod:`emokit.augment`.)
    seed : int, seeds the weights, dropout and the batch order
    device : "auto", "cpu", "cuda" ...; num_threads : torch CPU threads (None: torch's default)
    checkpoint_every_s : float, write the checkpoint and log only once this many seconds have
        passed since the last write (and after the last epoch, or when a callback raises); 0: every epoch
    """

    epochs: int = 300
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    class_weights: bool = False
    train_roles: tuple[str, ...] = ("train",)
    patience: int | None = None
    optimizer: str = "sgd"
    label_smoothing: float = 0.0
    time_shift: int = 0
    freq_masks: int = 0
    time_masks: int = 0
    mask_width: int = 12
    mixup: float = 0.0
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    checkpoint_every_s: float = 0.0

    def __post_init__(self) -> None:
        roles = (self.train_roles,) if isinstance(self.train_roles, str) else tuple(self.train_roles)
        object.__setattr__(self, "train_roles", roles)
        bad = [r for r in roles if r not in TRAIN_ROLES]
        if not roles or bad:
            raise ValueError(f"train_roles must be a non-empty subset of {TRAIN_ROLES}, got {roles} "
                             "('val' selects the epoch, 'test' only reports)")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"need epochs >= 1 and batch_size >= 1, got {self.epochs}, {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be None or >= 1, got {self.patience}")



@torch.no_grad()
def predict_logits(model: nn.Module, x, device="cpu", batch_size: int = 256) -> torch.Tensor:
    """Logits of ``model`` in eval mode, batch by batch.

    Parameters
    ----------
    x : ndarray or Tensor, shape (n, 1, rows, columns)

    Returns
    -------
    Tensor, shape (n, n_classes), float32 on the CPU
    """
    if len(x) == 0:
        raise ValueError("predict_logits got no rows")
    model.eval()
    device = resolve_device(device)
    outs = [model(torch.as_tensor(x[i : i + batch_size]).to(device).contiguous(memory_format=torch.channels_last))
            .float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs)


def train_model(
    model_name: str,
    data: FoldData,
    run_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    genome: Genome | None = None,
    model_kwargs: dict | None = None,
    extra: dict | None = None,
    resume: bool = True,
    callback: Callable[[dict], None] | None = None,
    progress: bool = True,
) -> dict:
    """Train ``model_name`` on one fold and score it on the fold's test speakers.

    Parameters
    ----------
    model_name : registry name (``"genome"``, ``"cnn"``, ``"cnn_lstm"``, ``"cnn_lstm_att"``)
    data : FoldData; fitted on ``config.train_roles``, selected on ``"val"``, reported on ``"test"``
    run_dir : folder for the run's files (see the module docstring)
    config : TrainConfig
    genome : Genome, needed for ``"genome"``
    model_kwargs : passed to the model (``n_classes`` is set from ``data.classes``)
    extra : any JSON-able notes stored in config.json (not part of the run's identity)
    resume : continue from ``checkpoint.pt``; a finished run with the same
        configuration is not trained again, its metrics are returned
    callback : called with each epoch's log record (a dict) after the checkpoint is written
    progress : show a tqdm bar over epochs

    Returns
    -------
    dict
        Test ``ua``, ``wa``, ``per_class_recall``, ``confusion``, ``n``, plus
        ``best_epoch``, ``best_val_ua``, ``best_val_wa``, ``epochs_run``,
        ``parameters`` and ``train_seconds``.
    """
    run_dir = Path(run_dir)
    model_kwargs = dict(model_kwargs or {})
    classes = tuple(data.classes)
    if model_kwargs.get("n_classes", len(classes)) != len(classes):
        raise ValueError(f"model_kwargs n_classes={model_kwargs['n_classes']} but the data has {len(classes)} classes")
    model_kwargs.pop("n_classes", None)
    data.check_no_test_speakers(config.train_roles)
    description = _describe(model_name, data, config, genome, model_kwargs, extra)
    identity = _identity(description)

    metrics_path = run_dir / "metrics.json"
    if resume and metrics_path.exists():
        if (run_dir / "config.json").exists() and _identity(read_json(run_dir / "config.json")) == identity:
            return read_json(metrics_path)
        raise ValueError(f"{run_dir} holds a finished run of another configuration; use another run_dir or resume=False")
    n_train = sum(len(data.y[r]) for r in config.train_roles)
    if n_train < 2 or len(data.y["test"]) == 0:
        raise ValueError(f"need at least 2 rows in {config.train_roles} and 1 test row; got {n_train} and {len(data.y['test'])}")
    if len(data.y["val"]) == 0:
        warnings.warn("the fold has no 'val' rows: the last epoch is kept and early stopping is off", stacklevel=2)
    metrics_path.unlink(missing_ok=True)  # a stale one would mark this run finished

    threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        return _fit(model_name, data, run_dir, config, genome, model_kwargs, description, resume, callback, progress)
    finally:
        torch.set_num_threads(threads)  # num_threads holds for this run only


def _fit(model_name, data, run_dir, config, genome, model_kwargs, description, resume, callback, progress) -> dict:
    """Build the model, train or resume it, keep the best val epoch, score the
    test rows once and write the run's files; returns the metrics."""
    identity = _identity(description)
    classes = tuple(data.classes)
    checkpoint_path = run_dir / CHECKPOINT
    x_train, y_train = (torch.from_numpy(a) for a in data.arrays(*config.train_roles))
    x_val, y_val = data.x["val"], data.y["val"]
    device = resolve_device(config.device)
    seed_everything(config.seed)
    reuse_freed_memory()
    model = build_model(model_name, genome=genome, n_classes=len(classes), **model_kwargs).to(device)
    model = model.to(memory_format=torch.channels_last)  # NHWC: faster convolutions on CPU
    if device.type == "cuda" and x_train.nbytes < 2**31:  # saves a host->device copy per batch
        x_train, y_train = x_train.to(device), y_train.to(device)
    weight = _class_weights(y_train.cpu().numpy(), len(classes)) if config.class_weights else None
    criterion = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device),
                                    label_smoothing=config.label_smoothing)
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr_min)

    state = {"best_state": None, "best_epoch": 0, "best_ua": -math.inf, "best_wa": math.nan, "log": []}
    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, identity, stateful)
    log = state["log"]

    timer = CheckpointTimer(config.checkpoint_every_s)

    def write_checkpoint() -> None:
        save_checkpoint(checkpoint_path, identity, stateful, state)
        _write_log(run_dir, log)

    bar = tqdm(total=config.epochs, initial=len(log), desc=f"{model_name} fold {data.fold.index}", unit="epoch",
               disable=not progress)
    for epoch in range(len(log), config.epochs):
        if config.patience and len(x_val) and epoch - state["best_epoch"] >= config.patience:
            break
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = _train_epoch(model, x_train, y_train, criterion, optimizer, config, epoch, device)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"{run_dir}: the training loss of epoch {epoch + 1} is {train_loss}; the inputs "
                                     "or the learning rate are at fault (try a smaller lr); nothing was recorded "
                                     "as finished")
        scheduler.step()
        val_loss, val = math.nan, {"ua": math.nan, "wa": math.nan}
        if len(x_val):
            logits = predict_logits(model, x_val, device)
            val_loss = nn.functional.cross_entropy(logits, torch.from_numpy(y_val), weight=weight).item()
            val = evaluate(y_val, logits.argmax(1).numpy(), classes)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
                  "val_ua": val["ua"], "val_wa": val["wa"], "seconds": time.perf_counter() - start}
        log.append(record)
        if not len(x_val) or val["ua"] > state["best_ua"]:  # strict: ties keep the earlier epoch
            state.update(best_state=_cpu_copy(model.state_dict()), best_epoch=epoch + 1, best_ua=val["ua"], best_wa=val["wa"],
                         best_val_confusion=val.get("confusion"))
        timer.end_epoch(epoch + 1 == config.epochs, write_checkpoint, callback, dict(record))
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_ua=f"{val['ua']:.3f}")
    bar.close()
    return _finish(run_dir, model, state, data, description, device)


def _finish(run_dir: Path, model, state: dict, data: FoldData, description: dict, device) -> dict:
    """Score the test rows once with the best val weights; write config.json,
    model.pt, the figures and metrics.json."""
    classes, log = tuple(data.classes), state["log"]
    model.load_state_dict(state["best_state"])
    test = evaluate(data.y["test"], predict_logits(model, data.x["test"], device).argmax(1).numpy(), classes)
    metrics = {**test, "best_epoch": state["best_epoch"], "best_val_ua": _finite(state["best_ua"]),
               "best_val_wa": _finite(state["best_wa"]),
               "epochs_run": len(log), "parameters": count_parameters(model),
               "train_seconds": float(sum(r["seconds"] for r in log)), "val_confusion": state.get("best_val_confusion")}
    metrics["suspect"] = below_chance(metrics)
    write_json(description, run_dir / "config.json")
    atomic_torch_save(state["best_state"], run_dir / "model.pt")
    _write_log(run_dir, log)  # also the epochs since the last checkpoint
    _write_figures(run_dir, pd.DataFrame(log, columns=LOG_COLUMNS), test["confusion"], classes)
    write_json(metrics, run_dir / "metrics.json")  # last: marks the run finished
    (run_dir / CHECKPOINT).unlink(missing_ok=True)
    return read_json(run_dir / "metrics.json")


def load_trained(run_dir: str | Path, device="cpu") -> tuple[nn.Module, dict]:
    """The best weights of a finished run, in eval mode, and its config.json dict."""
    run_dir = Path(run_dir)
    missing = [n for n in ("config.json", "model.pt") if not (run_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} has no {' or '.join(missing)}; it is not a finished training run (train_model)")
    config = read_json(run_dir / "config.json")
    genome = Genome.from_dict(config["genome"]) if config.get("genome") else None
    device = resolve_device(device)
    state = torch.load(run_dir / "model.pt", map_location=device, weights_only=True)
    kwargs = dict(config["model_kwargs"])
    if config["model_name"] == "cnn" and "front.norm.weight" not in state:
        kwargs.setdefault("batch_norm", False)  # trained before the cnn normalised its filter
    model = build_model(config["model_name"], genome=genome, n_classes=len(config["classes"]), **kwargs)
    model.load_state_dict(state)
    return model.to(device).eval(), config


# --------------------------------------------------------------------------
# helpers


def _describe(model_name, data, config, genome, model_kwargs, extra) -> dict:
    """The content of config.json."""
    feature_config = data.feature_config.to_dict() if data.feature_config is not None else None
    return {
        "model_name": model_name, "model_kwargs": model_kwargs, "genome": genome.to_dict() if genome else None,
        "classes": list(data.classes), "feature_config": feature_config, "normalizer": data.normalizer.to_dict(),
        "normalization": data.normalization,
        "fold": {"index": int(data.fold.index), "test_speakers": list(data.fold.test_speakers)},
        "data": data.fingerprint(),
        "train_config": config.to_dict(), "extra": extra,
    }


def _identity(description: dict) -> dict:
    """What must match for a run to be resumed or reused: the description as
    JSON, without ``extra`` and the hardware settings."""
    plain = json.loads(json.dumps(description, default=_json_default))
    plain.pop("extra", None)
    for key in ("device", "num_threads", "checkpoint_every_s"):
        plain["train_config"].pop(key, None)
    return plain


def _write_log(run_dir: Path, log: list[dict]) -> None:
    atomic_write_bytes(run_dir / "log.csv", pd.DataFrame(log, columns=LOG_COLUMNS).to_csv(index=False).encode())


def _finite(value: float) -> float | None:
    """None for NaN / inf (no val rows): JSON has no NaN."""
    return float(value) if math.isfinite(value) else None


def _class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse class frequency, scaled so a balanced set gets weight 1."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.divide(len(y), n_classes * counts, out=np.zeros(n_classes), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _train_epoch(model, x, y, criterion, optimizer, config: TrainConfig, epoch: int, device) -> tuple[float, float]:
    """One pass over the shuffled training rows; returns (mean loss, accuracy)."""
    model.train()
    generator = epoch_generator(config.seed, epoch)  # batch order and augmentations
    batches = epoch_batches(len(x), config.batch_size, generator)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for index in batches:
        index = index.to(x.device)
        xb = augment_batch(x[index].to(device, non_blocking=True), config, generator)
        yb = y[index].to(device, non_blocking=True)
        xb, partner, lam = mixup(xb, config.mixup, generator) if config.mixup > 0 else (xb, None, 1.0)
        optimizer.zero_grad(set_to_none=True)
        logits = model(xb.contiguous(memory_format=torch.channels_last))
        loss = criterion(logits, yb)
        if partner is not None:
            loss = lam * loss + (1.0 - lam) * criterion(logits, yb[partner.to(yb.device)])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        # Summed on the device: one synchronisation per epoch, not per batch.
        total_loss += loss.detach() * len(index)
        correct += (logits.argmax(1) == yb).sum()
        seen += len(index)
    return total_loss.item() / seen, correct.item() / seen


def _cpu_copy(state_dict: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state_dict.items()}


def _write_figures(run_dir: Path, log: pd.DataFrame, confusion: list, classes) -> None:
    from emokit.viz.training import confusion_matrix_figure, training_curves

    curves = training_curves(log[["epoch", "train_loss", "val_loss", "train_acc", "val_ua", "val_wa"]]).figure
    for name, fig in (("confusion.png", confusion_matrix_figure(np.asarray(confusion), classes)), ("curves.png", curves)):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        atomic_write_bytes(run_dir / name, buffer.getvalue())
