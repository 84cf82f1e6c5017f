"""Notebook 01 (features) runs end to end on real EmoDB with papermill, and
every notebook in notebooks/ is commit-ready (one parameters cell, no outputs)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NOTEBOOK_01 = REPO / "notebooks" / "01_features.ipynb"

# 1 s at 16 kHz, hop 125 -> 128 frames, pooled by 4 -> 32 columns; 40 MFCCs.
TINY = dict(duration=1.0, sample_rate=16000, hop_length=125, n_fft=512, n_mfcc=40, n_mels=40, time_pool=4)


def test_notebooks_exist():
    assert NOTEBOOK_01 in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_commit_ready(path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', need exactly one"
    assert tagged[0].cell_type == "code"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


def test_notebook_01_parameters_cell():
    nb = nbformat.read(NOTEBOOK_01, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    namespace: dict = {}
    exec(cell.source, namespace)  # plain assignments only
    expected = dict(corpus="emodb", preset="quick", data_root=None, features={}, output_dir=None, n_jobs=-1)
    assert {k: namespace[k] for k in expected} == expected
    from emokit.experiments import PRESETS, notebook_settings
    from emokit.features import FeatureConfig

    quick = FeatureConfig.from_dict(notebook_settings("quick", features={"n_mels": 64})["features"])
    assert (quick.kind, quick.duration, quick.n_mels) == ("logmel", PRESETS["quick"]["features"]["duration"], 64)
    config = FeatureConfig.from_dict(notebook_settings("paper")["features"])  # the paper's maps
    assert (config.duration, config.sample_rate, config.n_mfcc, config.n_mels, config.hop_length, config.n_fft,
            config.time_pool, config.kind) == (8.0, 16000, 128, 128, 250, 1024, 4, "mfcc")


@pytest.mark.slow
def test_notebook_01_runs_on_emodb(tmp_path, datasets_root):
    import papermill

    from emokit.data import load_corpus
    from emokit.features import FeatureConfig, cache_key

    output_dir = tmp_path / "features"
    executed = tmp_path / "01_features.out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_01), str(executed),
        parameters=dict(corpus="emodb", preset=None, data_root=str(datasets_root), output_dir=str(output_dir), n_jobs=1,
                        features=TINY),
        kernel_name="python3", cwd=str(REPO), progress_bar=False, execution_timeout=300,
    )

    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "(339, 1, 40, 32) float32" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2 + 4  # class and speaker counts, one waveform + map per emotion

    manifest = load_corpus("emodb", datasets_root / "emodb")
    stem = output_dir / f"emodb-mfcc-{cache_key(manifest, FeatureConfig(**TINY))}"
    for suffix in (".npy", ".csv", ".skipped.json"):
        assert stem.with_name(stem.name + suffix).exists()
        assert stem.with_name(stem.name + suffix).name in text  # the notebook lists the files it wrote
    features = np.load(stem.with_name(stem.name + ".npy"))
    assert features.shape == (339, 1, 40, 32) and np.isfinite(features).all()


@pytest.mark.slow
def test_notebook_01_by_hand_reads_the_checkouts_data_folder(tmp_path, datasets_root, monkeypatch):
    """As JupyterLab runs it: working folder notebooks/, no EMOKIT_DATA, the
    default data_root. The corpus is read from the checkout's data/ (where
    `make demo` downloads EmoDB), linked here to the shared copy."""
    import papermill

    monkeypatch.delenv("EMOKIT_DATA", raising=False)
    monkeypatch.setenv("EMOKIT_RESULTS", str(tmp_path / "results"))
    link = REPO / "data" / "emodb"
    made = not link.exists()
    if made:
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(datasets_root / "emodb", target_is_directory=True)
    try:
        papermill.execute_notebook(str(NOTEBOOK_01), str(tmp_path / "01.ipynb"), parameters=dict(n_jobs=1, features=TINY),
                                   kernel_name="python3", cwd=str(REPO / "notebooks"), progress_bar=False,
                                   execution_timeout=300)
    finally:
        if made:
            link.unlink()
    text = (tmp_path / "01.ipynb").read_text()
    assert "(339, 1, 40, 32) float32" in text and str(REPO / "data" / "emodb") in text
    # The default preset, quick, makes log-mel maps; `features` changed single keys of it.
    assert list((tmp_path / "results" / "features").glob("emodb-logmel-*.npy"))
