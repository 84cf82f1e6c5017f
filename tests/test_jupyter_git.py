"""emokit.jupyter_git: a notebook saved in JupyterLab with outputs, and no other
change, leaves `git status` clean; a real change stays listed."""
import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat
import pytest
from lab_helpers import commit_all, free_port, git, init_checkout, settled_git_status, wait_for_server

from emokit.jupyter_git import refresh_git_index

ROOT = Path(__file__).resolve().parents[1]
LAB_CONFIG = ROOT / "jupyter-config" / "jupyter_server_config.d" / "emokit.json"
NBSTRIPOUT = Path(sys.executable).parent / "nbstripout"

pytestmark = pytest.mark.skipif(shutil.which("git") is None or not NBSTRIPOUT.exists(), reason="needs git and nbstripout")


def _notebook(source: str = "print('hi')", outputs: bool = False) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, id="c1")
    if outputs:
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n" * 50)]
    return nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                           "language": "python"}})


@pytest.fixture
def repo(tmp_path):
    """A checkout with the notebook filter as `make install` configures it, one committed notebook."""
    init_checkout(tmp_path, f"'{NBSTRIPOUT}' --keep-id")
    (tmp_path / "notebooks").mkdir()
    nbformat.write(_notebook(), tmp_path / "notebooks" / "01.ipynb")
    commit_all(tmp_path, "notebook")
    return tmp_path


def test_a_saved_run_reads_as_unchanged_after_the_hook(repo):
    path = repo / "notebooks" / "01.ipynb"
    nbformat.write(_notebook(outputs=True), path)
    # without the hook: git lists it (its size changed) though the filtered notebook is the committed one
    assert git(repo, "status", "--porcelain") != ""
    assert git(repo, "diff", "--stat") == ""
    assert refresh_git_index(str(path))
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "diff", "--cached", "--stat") == ""  # nothing staged
    assert nbformat.read(path, as_version=4).cells[0].outputs  # the outputs stay in the file


def test_a_real_change_stays_listed(repo):
    path = repo / "notebooks" / "01.ipynb"
    nbformat.write(_notebook("print('edited')", outputs=True), path)
    assert not refresh_git_index(str(path))
    assert git(repo, "status", "--porcelain").split() == ["M", "notebooks/01.ipynb"]
    assert git(repo, "diff", "--cached", "--stat") == ""


def test_a_notebook_in_a_merge_conflict_is_left_unresolved(repo):
    path = repo / "notebooks" / "01.ipynb"
    git(repo, "checkout", "-qb", "other")
    nbformat.write(_notebook("print('other')"), path)
    git(repo, "commit", "-qam", "other")
    git(repo, "checkout", "-q", "-")
    nbformat.write(_notebook("print('mine')"), path)
    git(repo, "commit", "-qam", "mine")
    assert subprocess.run(["git", "merge", "-q", "other"], cwd=repo, capture_output=True).returncode != 0
    nbformat.write(_notebook("print('mine')", outputs=True), path)  # saved in JupyterLab mid-merge
    assert not refresh_git_index(str(path))
    assert git(repo, "ls-files", "--unmerged", "--", "notebooks/01.ipynb")  # still for the user to resolve


def test_untracked_other_files_and_folders_outside_git_are_left_alone(repo, tmp_path_factory):
    new = repo / "notebooks" / "new.ipynb"
    nbformat.write(_notebook(outputs=True), new)
    assert not refresh_git_index(str(new))
    assert "?? notebooks/new.ipynb" in git(repo, "status", "--porcelain")
    script = repo / "notebooks" / "01.py"
    script.write_text("# %%\n")
    assert not refresh_git_index(str(script))
    outside = tmp_path_factory.mktemp("no_git") / "a.ipynb"
    nbformat.write(_notebook(outputs=True), outside)
    assert not refresh_git_index(str(outside))


@pytest.mark.slow
def test_jupyter_server_from_the_environment_runs_the_hook_on_save(repo, tmp_path_factory):
    """The server JupyterLab runs on, with the environment's extensions (jupytext's
    included, which replaces the contents manager): a save through its REST API,
    as JupyterLab's does, leaves git status clean."""
    port, logs = free_port(), tmp_path_factory.mktemp("server")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
         f"--ServerApp.root_dir={repo}"],
        stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/contents/notebooks/01.ipynb"
    try:
        wait_for_server(port)
        model = {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(_notebook(outputs=True)))}
        request = urllib.request.Request(url, data=json.dumps(model).encode(), method="PUT",
                                         headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(request, timeout=30).status == 200
        listed = settled_git_status(repo)  # the hook runs in the background, after the save has answered
    finally:
        server.terminate()
        server.wait(30)
    log = (logs / "server.log").read_text()
    assert "emokit: a notebook saved with only new outputs leaves git status clean" in log, log
    assert nbformat.read(repo / "notebooks" / "01.ipynb", as_version=4).cells[0].outputs
    assert listed == "", log


def test_pip_and_make_install_put_the_config_into_the_environment():
    """A wheel ships it as data-files; `make install` copies it for the editable install."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"etc/jupyter/jupyter_server_config.d" = ["jupyter-config/jupyter_server_config.d/emokit.json"]' in pyproject
    installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "emokit.json"
    assert installed.exists(), f"{installed} is missing: run `make install`"
    assert installed.read_text() == LAB_CONFIG.read_text(), f"{installed} is out of date: run `make install`"

