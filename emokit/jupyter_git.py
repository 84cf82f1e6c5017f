"""A JupyterLab (jupyter_server) extension: saving a notebook whose only change
is its outputs leaves ``git status`` clean.

The notebooks are committed without outputs; git reads them through the
nbstripout filter (``.gitattributes``, ``make install``), so a run saved in
JupyterLab shows no ``git diff``. ``git status`` still lists such a notebook:
git takes a file whose size differs from the one its index recorded as changed
without reading it. After each save this hook asks git whether the filtered
notebook differs from the index (``git diff --quiet``) and, where it does not,
refreshes the index's record of the file with ``git add``; that records the
same content, so nothing new is staged. A notebook with a real change (an
edited cell) is left alone: git lists it, as it should. The server runs the
hook in a background thread, so a save does not wait for git.

Enabled by ``etc/jupyter/jupyter_server_config.d/emokit.json``, which ``pip
install`` (and ``make install``) put into the environment. The hook is
registered once the server has started, on the contents manager it ended up
with (jupytext's extension replaces the first one). A notebook outside a git
checkout, a file git does not track or a machine without git is left as it is.
"""
from __future__ import annotations

import concurrent.futures
import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=60)


def refresh_git_index(os_path: str, **_) -> bool:
    """Refresh git's index record of a saved notebook when git reads no change in it.

    Parameters
    ----------
    os_path : str
        The saved file (jupyter_server's post-save hook passes it with
        ``model`` and ``contents_manager``, which are not needed).

    Returns
    -------
    bool
        True when the index was refreshed (the notebook now reads as unchanged in
        ``git status``); False when the file is not a tracked notebook, git sees a
        change in it, or git is not there.
    """
    path = Path(os_path)
    if path.suffix != ".ipynb" or shutil.which("git") is None:
        return False
    folder = path.parent
    try:
        entries = _git(folder, "ls-files", "--stage", "--", path.name)  # "<mode> <object> <stage>\t<path>"
        if entries.returncode != 0 or not entries.stdout:
            return False  # not in a checkout, or not tracked
        if any(line.split()[2] != "0" for line in entries.stdout.splitlines()):
            return False  # a merge conflict: `git add` would mark it resolved
        if _git(folder, "diff", "--quiet", "--", path.name).returncode != 0:
            return False  # a real change (or git failed): git status should list it
        added = _git(folder, "add", "--", path.name)
    except (OSError, subprocess.SubprocessError) as error:
        log.debug("emokit: git index not refreshed for %s: %s", path, error)
        return False
    if added.returncode != 0:  # e.g. another git command holds the index lock
        log.debug("emokit: git add %s: %s", path, added.stderr.strip())
        return False
    return True



def _jupyter_server_extension_points():
    return [{"module": "emokit.jupyter_git"}]


def _load_jupyter_server_extension(server_app) -> None:
    """Nothing yet: a later extension (jupytext's) may still replace the contents manager."""


# git runs the filter (a Python process) twice: seconds on a small machine. One
# background thread, so a save does not wait for it and two saves never race for git's index lock.
_BACKGROUND = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="emokit-git")


def refresh_git_index_later(os_path: str, **_) -> concurrent.futures.Future:
    """:func:`refresh_git_index` in a background thread (the server's post-save hook)."""
    return _BACKGROUND.submit(refresh_git_index, os_path)


async def _start_jupyter_server_extension(server_app) -> None:
    server_app.contents_manager.register_post_save_hook(refresh_git_index_later)
    server_app.log.info("emokit: a notebook saved with only new outputs leaves git status clean")
