"""The two ways in (pyproject for pip, environment.yml for conda) name the
same packages, the README shows the two commands, and the environment's
JupyterLab has the kit's settings."""
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    pip_names |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_names = {_name(r) for r in conda_pip if not r.startswith("-e")}
    assert pip_names == conda_names
    assert "torch==2.13.0" in project["dependencies"] and "torch==2.13.0" in conda_pip
    assert "python=3.11" in env["dependencies"] and "graphviz" in env["dependencies"]


def test_readme_shows_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()

def test_jupyterlab_in_the_environment_asks_nothing_about_news():
    """JupyterLab's news prompt covers a student's notebook and its feed is a web request: off in the kit's lab."""
    source = ROOT / "jupyter-config" / "lab-settings" / "overrides.json"
    assert json.loads(source.read_text())["@jupyterlab/apputils-extension:notification"] == {
        "fetchNews": "false", "checkForUpdates": False}
    assert '"share/jupyter/lab/settings" = ["jupyter-config/lab-settings/overrides.json"]' in (
        ROOT / "pyproject.toml").read_text()
    installed = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert installed.exists() and installed.read_text() == source.read_text(), \
        f"{installed} is missing or out of date: run `make install`"
