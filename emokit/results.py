"""Collect run folders into one table and summarise them the paper's way.

A run folder (written by :mod:`emokit.runner`) holds ``run.json``
(corpus, name, kind, fold, seed, status) and, once retrained,
``retrain/metrics.json`` and ``retrain/config.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["corpus", "name", "kind", "fold", "seed", "status", "ua", "wa", "best_val_ua", "parameters", "genome",
           "search_seconds", "train_seconds", "run_dir", "error"]


def collect(results_dir: str | Path) -> pd.DataFrame:
    """One row per run folder under ``results_dir`` (any depth).

    Columns: corpus, name (search scope or baseline), kind (darts or
    baseline), fold, seed, status, ua, wa (fractions), best_val_ua (the
    validation UA that chose the epoch), suspect (why its validation or test
    score is below chance, :func:`emokit.metrics.below_chance`; None when it
    is not), parameters, genome (JSON text), search_seconds, train_seconds,
    run_dir, error.
    """
    rows = []
    results_dir = Path(results_dir)
    runs = {f.parent: json.loads(f.read_text()) for f in sorted(results_dir.rglob("run.json"))}
    for metrics_file in sorted(results_dir.rglob("retrain/metrics.json")):  # notebooks 02-04 run by hand
        folder = metrics_file.parent.parent
        if folder not in runs:
            runs[folder] = _run_from_retrain(metrics_file.parent)
    for folder, run in sorted(runs.items()):
        if ".stale-" in folder.name:  # superseded by a run with new settings
            continue
        row = {key: run.get(key) for key in ("corpus", "name", "kind", "fold", "seed", "status", "error")}
        row["run_dir"] = str(folder)
        metrics_file = folder / "retrain" / "metrics.json"
        if metrics_file.exists():
            metrics = json.loads(metrics_file.read_text())
            row.update(ua=metrics.get("ua"), wa=metrics.get("wa"), best_val_ua=metrics.get("best_val_ua"),
                       suspect="; ".join(metrics.get("suspect") or []) or None,
                       parameters=metrics.get("parameters"),
                       train_seconds=metrics.get("train_seconds"), confusion=metrics.get("confusion"),
                       classes=json.loads((folder / "retrain" / "config.json").read_text()).get("classes"))
        genome_file = folder / "search" / "genome.json"
        if genome_file.exists():
            row["genome"] = json.dumps(json.loads(genome_file.read_text()))
        summary_file = folder / "search" / "summary.json"
        if summary_file.exists():
            row["search_seconds"] = json.loads(summary_file.read_text()).get("seconds")
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    return frame


def _run_from_retrain(retrain: Path) -> dict:
    """What run.json would say of a retraining run by hand (notebook 04),
    read from its config.json."""
    config = json.loads((retrain / "config.json").read_text())
    extra = config.get("extra") or {}
    name = config.get("model_name")
    kind = "darts" if name == "genome" else "baseline"
    if name == "genome":
        search_config = Path(str(extra.get("search_dir") or "")) / "config.json"
        meta = json.loads(search_config.read_text()).get("meta", {}) if search_config.is_file() else {}
        name = meta.get("scope", "emodarts")
    seed = (config.get("train_config") or {}).get("seed", config.get("seed", extra.get("seed")))
    fold = (config.get("fold") or {}).get("index", extra.get("fold"))
    return {"corpus": extra.get("corpus"), "name": name, "kind": kind, "fold": fold, "seed": seed, "status": "done",
            "error": None}


def mean_std(values: pd.Series, scale: float = 100.0) -> str:
    """"mean ± std" of ``values`` times ``scale`` (population std; "-" when empty)."""
    values = values.dropna().astype(float) * scale
    if values.empty:
        return "-"
    std = values.std(ddof=0) if len(values) > 1 else 0.0
    return f"{values.mean():.2f} ± {std:.2f}"


def summary_table(results: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """The paper's Tables 4 and 7: per corpus and model (scope or baseline),
    UA and WA in % as mean ± std over folds and seeds, mean parameters, the
    number of finished runs and how many of them scored below chance
    (suspect, :func:`emokit.metrics.below_chance`).

    ``names`` picks and orders the models (e.g. the restricted scopes for
    Table 7).
    """
    done = results[results["status"] == "done"]
    if names is not None:
        done = done[done["name"].isin(names)]
    rows = []
    for (corpus, name), group in done.groupby(["corpus", "name"], sort=False):
        rows.append({"corpus": corpus, "model": name, "UA %": mean_std(group["ua"]), "WA %": mean_std(group["wa"]),
                     "parameters": int(group["parameters"].mean()) if group["parameters"].notna().any() else None,
                     "runs": len(group),
                     "below chance": int(group["suspect"].notna().sum()) if "suspect" in group else 0,
                     "ua_mean": group["ua"].mean() * 100, "ua_std": group["ua"].std(ddof=0) * 100})
    table = pd.DataFrame(rows, columns=["corpus", "model", "UA %", "WA %", "parameters", "runs", "below chance",
                                        "ua_mean", "ua_std"])
    if names is not None:
        table["order"] = table["model"].map({n: i for i, n in enumerate(names)})
        table = table.sort_values(["corpus", "order"]).drop(columns="order")
    return table.reset_index(drop=True)


def per_fold_table(results: pd.DataFrame) -> pd.DataFrame:
    """UA in % per fold (columns) for each corpus and model (rows)."""
    done = results[results["status"] == "done"]
    return (done.pivot_table(index=["corpus", "name"], columns="fold", values="ua", aggfunc="mean") * 100).round(2)


def export_table(table: pd.DataFrame, path_stem: str | Path) -> dict[str, Path]:
    """Write ``table`` as CSV, Markdown and LaTeX next to each other."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    shown = table.drop(columns=[c for c in ("ua_mean", "ua_std") if c in table])
    paths = {"csv": stem.with_suffix(".csv"), "md": stem.with_suffix(".md"), "tex": stem.with_suffix(".tex")}
    shown.to_csv(paths["csv"], index=False)
    paths["md"].write_text(shown.to_markdown(index=False) + "\n")
    paths["tex"].write_text(shown.to_latex(index=False))
    return paths


def summed_confusions(results: pd.DataFrame) -> dict[tuple[str, str], tuple[np.ndarray, list[str]]]:
    """Confusion matrices summed over folds and seeds, per (corpus, model)."""
    out = {}
    done = results[(results["status"] == "done") & results["confusion"].notna()] if "confusion" in results else []
    for (corpus, name), group in (done.groupby(["corpus", "name"], sort=False) if len(done) else []):
        total = sum(np.asarray(c) for c in group["confusion"])
        out[(corpus, name)] = (total, list(group["classes"].iloc[0]))
    return out
