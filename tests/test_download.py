"""The EmoDB downloader, without the network: a local zip and an offline error."""
import zipfile

import pytest

from emokit.data import load_corpus
from emokit.download import download_emodb


def test_unpacks_a_zip_into_the_loader_layout(tmp_path, write_wav):
    for name in ("03a01Wa.wav", "08a02Fb.wav", "09b03Tc.wav"):
        write_wav(tmp_path / "src" / "wav" / name)
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for wav in (tmp_path / "src" / "wav").iterdir():
            zf.write(wav, f"wav/{wav.name}")
        zf.writestr("lablaut/03a01Wa.lab", "not audio")
    root = download_emodb(tmp_path / "data", url=archive.as_uri())
    manifest = load_corpus("emodb", root)
    assert sorted(manifest["label"]) == ["anger", "happiness", "sadness"]
    assert download_emodb(tmp_path / "data", url="file:///nonexistent.zip") == root  # already there: no fetch


def test_offline_gives_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="offline.*EMOKIT_DATA"):
        download_emodb(tmp_path, url=(tmp_path / "missing.zip").as_uri())
