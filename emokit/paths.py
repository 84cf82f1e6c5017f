"""Where results go: one rule for the CLI, papermill and JupyterLab.

``$EMOKIT_RESULTS`` when set; otherwise, inside a checkout of emokit, the
checkout's ``results/`` folder (so a notebook opened in JupyterLab from
``notebooks/`` writes where ``make demo`` and ``emokit run`` do); otherwise
``./results``. A run of (corpus, scope or model, fold, seed) lives in
``<results>/runs/<corpus>/<name>/fold<k>-seed<s>/``.
"""
from __future__ import annotations

import os
from pathlib import Path


def results_root() -> Path:
    """The default results folder (see the module docstring)."""
    if os.environ.get("EMOKIT_RESULTS"):
        return Path(os.environ["EMOKIT_RESULTS"])
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "emokit").is_dir() and (folder / "notebooks").is_dir():
            return folder / "results"
    return here / "results"


def run_folder(results: str | Path | None, corpus: str, name: str, fold: int, seed: int) -> Path:
    """The folder of one run: ``<results>/runs/<corpus>/<name>/fold<k>-seed<s>``."""
    return Path(results if results is not None else results_root()) / "runs" / corpus / name / f"fold{fold}-seed{seed}"
