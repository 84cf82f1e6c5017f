"""JupyterLab by hand, as a student meets the kit: notebooks 01 -> 05 opened
in JupyterLab in headless Chromium, Run All in each with the quick preset
from an empty results folder, then saved. Run by `make browser-test` (not
in `make test`); screenshots go to results/browser-test/ of the checkout.

Asserts: no error output and every code cell executed; the pictures of each
notebook; notebook 02's live pictures redrawn at least twice while it
searches, and its slider redraws the alpha heatmap; after saving, `git
status` is clean: the outputs stay in the saved notebooks, git reads them
through nbstripout and emokit.jupyter_git (both set up by `make install`),
and the jupytext pairs are unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab_helpers import REPO, commit_all, free_port, git, init_checkout, settled_git_status, wait_for_server

pytestmark = pytest.mark.browser

BIN = Path(sys.executable).parent
SHOTS = REPO / "results" / "browser-test"
NOTEBOOKS = ("01_features", "02_search", "03_genome", "04_retrain", "05_compare")
# Pictures outside widgets per notebook with the quick preset (a lost figure fails the test).
MIN_PICTURES = {"01_features": 6, "02_search": 1, "03_genome": 7, "04_retrain": 1, "05_compare": 3}

# The notebook's code cells: execution counts and outputs (type, MIME types, errors).
STATE = """
const w = window.jupyterapp.shell.currentWidget;
if (!w || !w.content || !w.content.model || !w.sessionContext || !w.sessionContext.session) return null;
const cells = w.content.model.cells; const out = {status: w.sessionContext.session.kernel.status, cells: []};
for (let i = 0; i < cells.length; i++) { const c = cells.get(i); if (c.type !== 'code') continue;
  const outs = []; for (let j = 0; j < c.outputs.length; j++) { const o = c.outputs.get(j).toJSON();
    outs.push({type: o.output_type, mime: Object.keys(o.data || {}), ename: o.ename || null, evalue: o.evalue || null}); }
  out.cells.push({count: c.executionCount, outputs: outs}); }
return out;"""
# The images shown inside widget outputs (the live pictures, the slider's heatmap), in page order.
WIDGET_IMAGES = """
return Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-output img'))
  .map(img => img.src);"""


def _tools():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver (make browser-test installs them as root)")
    pytest.importorskip("selenium")
    return chromium, driver


@pytest.fixture(scope="module")
def lab(tmp_path_factory, datasets_root):
    """JupyterLab over a fresh repository holding the checkout's notebooks
    (with git's nbstripout filter as `make install` set it in the checkout) and a browser on it."""
    chromium, chromedriver = _tools()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    base = tmp_path_factory.mktemp("browser")
    root = base / "clone"
    clean = subprocess.run(["git", "config", "--get", "filter.nbstripout.clean"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    if not clean:
        pytest.skip("git's nbstripout filter is not configured in this checkout: run `make install`")
    init_checkout(root, clean)
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    commit_all(root, "notebooks")
    port = free_port()
    env = dict(os.environ, EMOKIT_DATA=str(datasets_root), EMOKIT_RESULTS=str(base / "results"))
    server = subprocess.Popen(
        [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1", "--allow-root",
         "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
         "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={root}",
         f"--LabApp.workspaces_dir={base / 'workspaces'}", f"--LabApp.user_settings_dir={base / 'settings'}"],
        env=env, stdout=open(base / "lab.log", "w"), stderr=subprocess.STDOUT)
    wait_for_server(port)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--window-size=1400,1000",
                 f"--user-data-dir={base / 'profile'}"):
        options.add_argument(flag)
    options.binary_location = chromium
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver, port, root
    finally:
        driver.quit()
        server.terminate()
        server.wait(30)


def _state(driver):
    try:
        return driver.execute_script(STATE)
    except Exception:  # the page is still loading
        return None


def _open(driver, port: int, name: str) -> None:
    driver.get(f"http://127.0.0.1:{port}/lab/workspaces/{name}/tree/notebooks/{name}.ipynb?reset")
    for _ in range(240):
        state = _state(driver)
        if state and state["status"] == "idle":
            return
        time.sleep(0.5)
    raise AssertionError(f"{name}: the kernel did not start")


def _run_all(driver, name: str, watch=None, limit_s: float = 1200) -> dict:
    """Run All and wait until every code cell ran (or one failed); ``watch()`` is called every half second."""
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")
    started = time.time()
    time.sleep(2)
    while time.time() - started < limit_s:
        if watch is not None:
            watch()
        state = _state(driver)
        if state and any(o["type"] == "error" for c in state["cells"] for o in c["outputs"]):
            break
        if state and state["status"] == "idle" and all(c["count"] for c in state["cells"]):
            break
        time.sleep(0.5)
    return {"seconds": round(time.time() - started, 1), "state": _state(driver)}


def _digest(src: str) -> str:
    return hashlib.sha1(src.encode()).hexdigest()[:12]


def _move_slider_left(driver) -> tuple[str, str, str, str]:
    """Press the left arrow on the last slider; (readout, image) before and after."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    handle = driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider .noUi-handle")[-1]
    readout = driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider .widget-readout")[-1]
    before = (readout.text, driver.execute_script(WIDGET_IMAGES)[-1])
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", handle)
    handle.send_keys(Keys.ARROW_LEFT)
    for _ in range(40):
        time.sleep(0.5)
        after = (readout.text, driver.execute_script(WIDGET_IMAGES)[-1])
        if after[1] != before[1]:
            break
    return before[0], after[0], _digest(before[1]), _digest(after[1])


def test_notebooks_01_to_05_run_by_hand_in_jupyterlab(lab):
    driver, port, root = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    report = {}
    for name in NOTEBOOKS:
        _open(driver, port, name)
        live_frames: set[str] = set()

        def watch():
            try:
                live_frames.update(_digest(src) for src in driver.execute_script(WIDGET_IMAGES))
            except Exception:
                pass

        result = _run_all(driver, name, watch if name == "02_search" else None)
        state = result["state"]
        errors = [f"{o['ename']}: {o['evalue']}" for c in state["cells"] for o in c["outputs"] if o["type"] == "error"]
        pictures = sum(1 for c in state["cells"] for o in c["outputs"] if {"image/png", "image/svg+xml"} & set(o["mime"]))
        row = {"seconds": result["seconds"], "errors": errors, "pictures": pictures,
               "unexecuted": sum(1 for c in state["cells"] if not c["count"])}
        if name == "02_search":
            row["live_frames"] = len(live_frames)
            row["slider"] = _move_slider_left(driver)
        driver.execute_script("window.jupyterapp.commands.execute('docmanager:save');")
        time.sleep(2)
        driver.save_screenshot(str(SHOTS / f"{name}.png"))
        report[name] = row
        print(name, row, flush=True)
    (SHOTS / "report.json").write_text(json.dumps(report, indent=1))
    news_prompt = driver.execute_script("return document.body.innerText.includes('notified about official Jupyter news');")

    for name, row in report.items():
        assert not row["errors"] and not row["unexecuted"], (name, row)
        assert row["pictures"] >= MIN_PICTURES[name], (name, row)
    assert not news_prompt  # the kit's JupyterLab asks no question about Jupyter news
    # 02's live pictures: the first frame and at least two redraws while it searched
    assert report["02_search"]["live_frames"] >= 3, report["02_search"]
    readout_before, readout_after, image_before, image_after = report["02_search"]["slider"]
    assert int(readout_after) == int(readout_before) - 1 and image_after != image_before
    # saved after the run: git sees no change (outputs stripped by the filter; the .py pairs unchanged)
    saved = json.loads((root / "notebooks" / "01_features.ipynb").read_text())
    assert any(cell.get("outputs") for cell in saved["cells"])  # the run was saved, outputs and all
    # git reads no change in them, the jupytext .py pairs included: `git status` is clean (the
    # filter strips the outputs; emokit.jupyter_git refreshes git's index after each save)
    assert settled_git_status(root) == ""
    assert git(root, "diff", "--stat") == ""
