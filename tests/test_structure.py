"""The code base's shape: notebook pairs agree, no import cycles, one strict
config rule, and a non-editable install that runs a grid."""
import ast
import dataclasses
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAIRS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _cells(notebook) -> list[tuple[str, str, list[str]]]:
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in notebook.cells]


@pytest.mark.parametrize("script", PAIRS, ids=[p.stem for p in PAIRS])
def test_each_notebook_agrees_with_its_py_percent_source(script):
    """notebooks/NN_name.py is the reviewed source; NN_name.ipynb must hold
    the same cells (rebuild it with `make notebooks`)."""
    ipynb = script.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `make notebooks`"
    assert _cells(jupytext.read(script)) == _cells(nbformat.read(ipynb, as_version=4)), \
        f"{ipynb.name} and {script.name} differ: run `make notebooks`"


def test_saving_an_unchanged_notebook_in_jupyterlab_leaves_both_files_byte_identical(tmp_path):
    """JupyterLab saves through jupytext's contents manager, with the running
    kernel's kernelspec; an unchanged pair must come out as it went in, and
    an .ipynb newer than its .py (after `git checkout` of one) still opens."""
    import os
    import shutil

    from jupyter_client.kernelspec import get_kernel_spec
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from jupytext.sync_contentsmanager import build_sync_jupytext_contents_manager_class

    folder = shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    manager = build_sync_jupytext_contents_manager_class(FileContentsManager)(root_dir=str(folder))
    kernelspec = get_kernel_spec("python3")
    for script in PAIRS:
        ipynb = folder / f"{script.stem}.ipynb"
        later = ipynb.stat().st_mtime + 60
        os.utime(ipynb, (later, later))
        model = manager.get(ipynb.name)
        model["content"]["metadata"]["kernelspec"] = {"display_name": kernelspec.display_name,
                                                      "language": kernelspec.language, "name": "python3"}
        manager.save(model, ipynb.name)
        for name in (script.name, ipynb.name):
            assert (folder / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes(), \
                f"saving {ipynb.name} in JupyterLab rewrites {name}: save it once in JupyterLab and commit both files"


def test_every_ipynb_has_a_py_source():
    assert {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")} == {p.stem for p in PAIRS}
    assert len(PAIRS) == 5


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> emokit modules it imports, function-level imports included."""
    modules = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target not in (name, package.name):
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_no_import_cycle_in_emokit():
    graph = import_graph(ROOT / "emokit")
    assert "emokit.fold_data" in graph and "emokit.train" in graph["emokit.pipeline"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check can fail


def test_every_settings_dataclass_refuses_unknown_keys_and_round_trips():
    from emokit.config import Config, UnknownSettingError
    from emokit.features import FeatureConfig
    from emokit.models import NetConfig
    from emokit.search.loop import SearchConfig
    from emokit.search.supernet import SearchSpace
    from emokit.train import TrainConfig

    for cls in (FeatureConfig, SearchSpace, SearchConfig, NetConfig, TrainConfig):
        assert issubclass(cls, Config) and dataclasses.is_dataclass(cls)
        default = cls()
        assert cls.from_dict(default.to_dict()) == default  # JSON-able dict (lists) back to tuples
        assert cls.from_dict({}) == default
        with pytest.raises(UnknownSettingError, match=rf"unknown {cls.__name__} settings \['typo'\]; known: "):
            cls.from_dict({"typo": 1})
    assert SearchSpace.from_dict({"seq_ops": ["rnn_1", "none"]}).seq_ops == ("rnn_1", "none")
    assert TrainConfig().replace(epochs=3).epochs == 3


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_venv_runs_a_grid(tmp_path, datasets_root):
    """Build the wheel, install it (not editable) in a fresh virtual
    environment and run a 1-fold grid with `emokit run`: the notebooks come
    from the installed package, not from this checkout."""
    import shutil

    source = tmp_path / "source"  # a copy: building leaves build/ and *.egg-info behind
    for name in ("emokit", "notebooks", "jupyter-config"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob("emokit-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The dependencies come from this environment's site-packages (read through
    # a .pth line, so its editable emokit is not activated); emokit from the wheel.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # JupyterLab in that environment loads emokit.jupyter_git (git status clean after a saved run)
    assert "emokit.jupyter_git" in (venv / "etc/jupyter/jupyter_server_config.d/emokit.json").read_text()
    assert "fetchNews" in (venv / "share/jupyter/lab/settings/overrides.json").read_text()
    where = subprocess.run([str(python), "-c", "import emokit, emokit.runner as e; print(emokit.__file__); "
                            "print(e.notebook_path('04_retrain.ipynb'))"], capture_output=True, text=True,
                           check=True, cwd=tmp_path).stdout.split()
    assert all(line.startswith(site) for line in where), where
    results = tmp_path / "results"
    grid = tmp_path / "grid.yaml"
    grid.write_text("features: {duration: 2.0, n_mfcc: 32, n_mels: 32}\n"
                    "net: {cnn_cells: 2, seq_cells: 1, channels: 4, seq_hidden: 8}\n"
                    "train: {epochs: 1, batch_size: 32}\n")
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run([str(venv / "bin" / "emokit"), "run", "--config", str(grid), "--data", str(datasets_root),
                           "--results", str(results), "--folds", "0", "--scopes", "--baselines", "cnn",
                           "--no-compare"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 runs done, 0 left to another runner, 0 not done" in done.stdout
    assert (results / "runs" / "emodb" / "cnn" / "fold0-seed0" / "retrain" / "metrics.json").exists()


@pytest.mark.parametrize("script", PAIRS, ids=[p.stem for p in PAIRS])
def test_papermill_parses_every_parameter(script, caplog):
    """A comment papermill cannot parse makes it warn 'Passed unknown
    parameter' on every run; each parameter must be inspectable."""
    import papermill

    names = set(papermill.inspect_notebook(str(script.with_suffix(".ipynb"))))
    assigned = {line.split("=")[0].strip() for line in
                next(c for c in jupytext.read(script).cells if "parameters" in c.metadata.get("tags", [])).source.splitlines()
                if "=" in line and not line.lstrip().startswith("#")}
    assert names == assigned
    assert "Unable to parse" not in caplog.text
