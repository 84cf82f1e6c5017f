"""Fetch the freely licensed Berlin EmoDB onto a user's machine.

Only for a real user's machine: the tests never touch the network (they use
the shared copy, or a local zip through a ``file://`` address). The licensed
corpora (IEMOCAP, MSP-IMPROV, MSP-Podcast) must be obtained from their owners.
"""
from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

EMODB_URL = "http://emodb.bilderbar.info/download/download.zip"


def download_emodb(data_root: str | Path, url: str = EMODB_URL, timeout: float = 60.0) -> Path:
    """Download and unpack EmoDB to ``data_root/emodb`` (with its ``wav/``).

    Returns the corpus folder. Does nothing when it already holds wav files.

    Raises
    ------
    RuntimeError
        When the download fails (offline, blocked), naming the address and
        what to do instead.
    """
    target = Path(data_root) / "emodb"
    if any((target / "wav").glob("*.wav")):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "emodb.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(
                f"could not download EmoDB from {url} ({exc}). Are you offline? Download the zip by hand and "
                f"unpack it so that {target}/wav/*.wav exist, or set EMOKIT_DATA to a folder that holds emodb/wav."
            ) from None
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.lower().endswith(".wav") and "/wav/" in f"/{m}"]
            if not members:
                raise RuntimeError(f"{url} gave a zip without wav/*.wav files; unpack EmoDB by hand into {target}")
            (target / "wav").mkdir(parents=True, exist_ok=True)
            for member in members:
                with zf.open(member) as src, open(target / "wav" / Path(member).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    return target
