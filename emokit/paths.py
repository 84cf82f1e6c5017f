"""Where corpora are read and results go: one rule for the CLI, papermill and
JupyterLab, whatever the working directory.

Corpora: ``$EMOKIT_DATA`` when set; otherwise, for emokit run from a
checkout (``pip install -e``, as ``make`` installs it) or from a working
directory inside one, the checkout's ``data/`` (where ``make demo``
downloads EmoDB); otherwise ``./data``. Results: the same with
``$EMOKIT_RESULTS`` and ``results/``. So a notebook opened in JupyterLab
from ``notebooks/`` reads and writes where ``make demo`` and ``emokit run``
do. A run of (corpus, scope or model, fold, seed) lives in
``<results>/runs/<corpus>/<name>/fold<k>-seed<s>/``.
"""
from __future__ import annotations

import os
from pathlib import Path


def checkout() -> Path | None:
    """The emokit checkout this package was installed from, else the one
    the working directory is in, else None (an installed wheel)."""
    here = Path.cwd()
    for folder in (Path(__file__).resolve().parents[1], here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "emokit").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return None


def _root(variable: str, name: str) -> Path:
    if os.environ.get(variable):
        return Path(os.environ[variable])
    base = checkout()
    return (base if base is not None else Path.cwd()) / name


def data_root() -> Path:
    """The default folder of corpora (see the module docstring)."""
    return _root("EMOKIT_DATA", "data")


def results_root() -> Path:
    """The default results folder (see the module docstring)."""
    return _root("EMOKIT_RESULTS", "results")


def run_folder(results: str | Path | None, corpus: str, name: str, fold: int, seed: int) -> Path:
    """The folder of one run: ``<results>/runs/<corpus>/<name>/fold<k>-seed<s>``."""
    return Path(results if results is not None else results_root()) / "runs" / corpus / name / f"fold{fold}-seed{seed}"
