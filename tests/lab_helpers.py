"""What the tests that start a Jupyter server over a git checkout share
(tests/test_browser.py, tests/test_jupyter_git.py)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout


def init_checkout(folder: Path, clean_filter: str) -> None:
    """A git repository in ``folder`` with the notebook filter as `make install`
    sets it (clean command ``clean_filter``) and the checkout's .gitattributes
    and .gitignore (which ignores JupyterLab's .ipynb_checkpoints)."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q")
    for key, value in (("user.email", "test@emokit"), ("user.name", "test"),
                       ("filter.nbstripout.clean", clean_filter), ("filter.nbstripout.smudge", "cat")):
        git(folder, "config", key, value)
    for name in (".gitattributes", ".gitignore"):
        shutil.copy(REPO / name, folder / name)


def commit_all(folder: Path, message: str) -> None:
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", message)


def wait_for_server(port: int, tries: int = 120) -> None:
    """Until the Jupyter server on ``port`` answers (a minute at most)."""
    for _ in range(tries):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
            return
        except OSError:
            time.sleep(0.5)


def settled_git_status(folder: Path, tries: int = 120) -> str:
    """``git status --porcelain`` once it is empty, or as it is after a minute:
    emokit.jupyter_git refreshes git's index in the background after a save."""
    listed = git(folder, "status", "--porcelain")
    for _ in range(tries):
        if not listed:
            break
        time.sleep(0.5)
        listed = git(folder, "status", "--porcelain")
    return listed
