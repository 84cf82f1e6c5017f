"""One process at a time in a run folder or a feature-cache entry.

A run folder ``.../fold0-seed0`` is owned through the lock file
``.../fold0-seed0.lock`` beside it (the ``filelock`` package: an OS file
lock, released by the OS when the owner dies, so a killed process never
leaves a folder locked). Beside it, ``fold0-seed0.owner.json`` says who holds
it, for the message another process prints. The lock sits outside the
folder so that moving a stale folder aside never moves the lock.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from emokit.utils import read_json, write_json

__all__ = ["FolderLock", "cache_lock"]


class FolderLock:
    """The lock of ``folder``; :meth:`acquire` never waits.

    Examples
    --------
    >>> lock = FolderLock(run_dir)
    >>> if lock.acquire():
    ...     try: ...  # this process owns run_dir
    ...     finally: lock.release()
    ... else: print(lock.holder())
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.folder = folder
        self.owner_path = folder.with_name(folder.name + ".owner.json")
        self._lock = FileLock(str(folder.with_name(folder.name + ".lock")))

    def acquire(self) -> bool:
        """Take the lock if no process holds it; True when this one now does."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        write_json({"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")},
                   self.owner_path)
        return True

    def release(self) -> None:
        if self._lock.is_locked:
            self.owner_path.unlink(missing_ok=True)
            self._lock.release()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock.is_locked

    def holder(self) -> str:
        """``host/pid since time`` of the process holding the lock, as far as known."""
        try:
            owner = read_json(self.owner_path)
            return f"{owner['host']}/{owner['pid']} since {owner['since']}"
        except (OSError, ValueError, KeyError):
            return "another process"

    def __enter__(self) -> "FolderLock":
        if not self.acquire():
            raise RuntimeError(f"{self.folder} is being executed by {self.holder()}")
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def cache_lock(stem: str | Path) -> FileLock:
    """A blocking lock for one feature-cache entry (``<stem>.lock``): one
    process extracts, the others wait and then read its files."""
    return FileLock(str(stem) + ".lock")
