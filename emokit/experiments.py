"""Experiment grids: corpora x scopes x folds x seeds (and baselines), each
run executing the notebook sequence with papermill.

    results/
      features/                      feature cache (notebook 01)
      runs/<corpus>/01_features.ipynb
      runs/<corpus>/<scope>/fold<k>-seed<s>/         a DARTS run
          run.json  02_search.ipynb  03_genome.ipynb  04_retrain.ipynb
          search/  retrain/
      runs/<corpus>/<baseline>/fold<k>-seed<s>/      a baseline run
          run.json  04_retrain.ipynb  retrain/
      05_compare.ipynb  05_compare.html  tables/

Finished runs are skipped, an interrupted run resumes from its checkpoints,
and a failed run is recorded in its run.json while the grid goes on.
"""
from __future__ import annotations

import copy
import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from emokit.classical import ClassicalConfig
from emokit.config import UnknownSettingError
from emokit.features import FeatureConfig
from emokit.models import NetConfig
from emokit.paths import results_root, run_folder
from emokit.search.loop import SearchConfig
from emokit.search.supernet import SearchSpace
from emokit.train import TrainConfig
from emokit.utils import environment, read_json, write_json

PRESETS: dict[str, dict] = {
    # The paper's settings (section IV): 300 + 300 epochs, batch 64, 4 + 2 cells,
    # retraining on the 30 % "train" split of the training speakers.
    "paper": {
        "scopes": ["emodarts"], "baselines": ["cnn", "cnn_lstm", "cnn_lstm_att", "random", "classical"],
        "folds": None, "seeds": [0], "features": {}, "normalization": "train",
        "space": {"cnn_cells": 4, "cnn_nodes": 4, "seq_cells": 2, "seq_nodes": 3, "channels": 8, "seq_hidden": 64},
        "search": {"epochs": 300, "batch_size": 64},
        "net": {"cnn_cells": 4, "seq_cells": 2, "channels": 16, "seq_hidden": 64},
        "train": {"epochs": 300, "batch_size": 64, "train_roles": ["train"]},
    },
    # Small enough for `make demo` on a 2-core CPU, and emokit's recipe there
    # (not the paper's): 4 s log-mel maps (EmoDB's utterances are 2 s; 8 s
    # maps were three quarters padding), speaker normalisation, a stem of
    # stride 2 (every cell costs a quarter), a narrow and shallow supernet,
    # retraining on all non-val data of the training speakers with time
    # shifts and mixup. The baselines get the same data and training. The
    # search settings make it decide within 15 epochs: a large alpha_lr
    # after 3 warm-up epochs, DARTS-' auxiliary skip against the skip bias,
    # and at most one skip_connect per cell (benchmarks/search_decision.py).
    "quick": {
        "scopes": ["emodarts"], "baselines": ["cnn", "cnn_lstm", "cnn_lstm_att", "random", "classical"],
        "folds": None, "seeds": [0],
        "features": {"kind": "logmel", "duration": 4.0}, "normalization": "speaker",
        "space": {"cnn_cells": 3, "cnn_nodes": 2, "seq_cells": 1, "seq_nodes": 2, "channels": 4, "seq_hidden": 32,
                  "stem_stride": 2},
        "search": {"epochs": 15, "batch_size": 32, "alpha_lr": 3e-2, "warmup_epochs": 3, "aux_skip": 1.0,
                   "max_skip": 1},
        "net": {"cnn_cells": 3, "seq_cells": 1, "channels": 8, "seq_hidden": 32, "stem_stride": 2},
        "train": {"epochs": 60, "batch_size": 32, "train_roles": ["search", "train"], "time_shift": 32, "mixup": 0.4},
        # No quick cell runs more than a few minutes. Should papermill wait
        # forever on an idle kernel (nteract/papermill#711; seen here with a
        # widget cell), the limit turns that into a failed run, which the
        # next `emokit run` resumes from its checkpoints.
        "cell_timeout": 1800,
    },
}

# Grid fields that hold a settings dataclass as a dict, and that dataclass.
SETTINGS = {"features": FeatureConfig, "space": SearchSpace, "search": SearchConfig, "net": NetConfig,
            "train": TrainConfig, "classical": ClassicalConfig}


@dataclass
class Grid:
    """What to run. ``folds=None`` means every fold of each corpus.

    ``features``, ``space``, ``search``, ``net``, ``train`` and
    ``classical`` are dicts of the fields of
    :class:`~emokit.features.FeatureConfig`,
    :class:`~emokit.search.supernet.SearchSpace`,
    :class:`~emokit.search.loop.SearchConfig`,
    :class:`~emokit.models.NetConfig`, :class:`~emokit.train.TrainConfig` and
    :class:`~emokit.classical.ClassicalConfig`: the same dicts the notebooks
    take as parameters. The grid sets each run's scope, seed and device itself.

    ``baselines`` may hold the hand-designed ``cnn``, ``cnn_lstm``,
    ``cnn_lstm_att`` and the controls ``random`` (a genome drawn uniformly
    from the space of the first scope, retrained like a searched one) and
    ``classical`` (functionals and a linear classifier).
    """

    corpora: list[str] = field(default_factory=lambda: ["emodb"])
    scopes: list[str] = field(default_factory=lambda: ["emodarts"])
    baselines: list[str] = field(default_factory=list)
    folds: list[int] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    features: dict = field(default_factory=dict)
    normalization: str = "train"  # or "speaker": each speaker standardised with their own statistics
    space: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)
    net: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    classical: dict = field(default_factory=dict)
    data_root: str | None = None
    results_dir: str | None = None  # None: emokit.paths.results_root()
    device: str = "auto"
    cell_timeout: int | None = None  # seconds a notebook cell may run (None: no limit; a search can take days)

    def __post_init__(self) -> None:
        if self.results_dir is None:
            self.results_dir = str(results_root())
        for key, cls in SETTINGS.items():  # a typo fails here, before anything runs
            try:
                cls.from_dict(getattr(self, key))
            except UnknownSettingError as exc:
                raise UnknownSettingError(f"grid '{key}': {exc}") from None


def make_grid(preset: str = "quick", config_file: str | Path | None = None, **overrides) -> Grid:
    """A grid from a preset, updated by a YAML file and then by keyword
    overrides (None values are ignored). Dict fields (features, space,
    search, net, train) are merged key by key; every key is checked against
    its dataclass."""
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    settings = copy.deepcopy(PRESETS[preset])
    updates = []
    if config_file is not None:
        import yaml

        updates.append(yaml.safe_load(Path(config_file).read_text()) or {})
    updates.append({k: v for k, v in overrides.items() if v is not None})
    for update in updates:
        unknown = set(update) - set(Grid.__dataclass_fields__)
        if unknown:
            raise UnknownSettingError(f"unknown grid settings {sorted(unknown)}; known: "
                                      f"{', '.join(Grid.__dataclass_fields__)}")
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(settings.get(key), dict):
                settings[key].update(value)
            else:
                settings[key] = value
    return Grid(**settings)


def notebook_path(name: str) -> Path:
    """A notebook of the sequence (``"02_search.ipynb"``), shipped with the package."""
    path = Path(str(resources.files("emokit.notebooks") / name))
    if not path.is_file():
        known = sorted(p.name for p in path.parent.glob("*.ipynb"))
        raise FileNotFoundError(f"no notebook {name!r} in {path.parent}; known: {', '.join(known)}")
    return path


@dataclass
class Run:
    corpus: str
    kind: str  # "darts" or "baseline"
    name: str  # search scope or baseline model
    fold: int
    seed: int
    folder: Path

    @property
    def info(self) -> dict:
        path = self.folder / "run.json"
        return read_json(path) if path.exists() else {}


def n_folds(corpus: str, data_root: str | None) -> int:
    from emokit.data import corpus_root, load_corpus
    from emokit.splits import make_folds

    return len(make_folds(load_corpus(corpus, corpus_root(corpus, data_root), check_audio=False)))


def plan(grid: Grid) -> list[Run]:
    """Every run of the grid, DARTS runs first."""
    runs = []
    for corpus in grid.corpora:
        folds = grid.folds if grid.folds is not None else list(range(n_folds(corpus, grid.data_root)))
        for kind, names in (("darts", grid.scopes), ("baseline", grid.baselines)):
            for name in names:
                for fold in folds:
                    for seed in grid.seeds:
                        runs.append(Run(corpus, kind, name, fold, seed, run_folder(grid.results_dir, corpus, name,
                                                                                   fold, seed)))
    return runs


def _execute(notebook: str, output: Path, parameters: dict, timeout: int | None = None) -> None:
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(notebook_path(notebook)), str(output), parameters=parameters,
                                   kernel_name="python3", cwd=str(output.parent), progress_bar=False,
                                   execution_timeout=timeout)
    except papermill.PapermillExecutionError as exc:
        exc.notebook = notebook  # for describe_failure: which notebook the cell belongs to
        raise


def _common(grid: Grid, corpus: str) -> dict:
    return {"corpus": corpus, "data_root": grid.data_root,
            "feature_dir": str(Path(grid.results_dir, "features").resolve()), "features": grid.features,
            "normalization": grid.normalization}


def control_space(grid: Grid) -> dict:
    """The search space the random control draws from: the grid's space with
    its first scope (what the first searched genome came from)."""
    return {**grid.space, "scope": grid.scopes[0] if grid.scopes else grid.space.get("scope", "emodarts")}


def run_settings(grid: Grid, run: Run) -> dict:
    """What a run's results depend on; a finished run with other settings is stale."""
    settings = {"features": grid.features, "normalization": grid.normalization, "train": grid.train,
                "data_root": grid.data_root}
    if run.name == "classical":
        settings = {**settings, "classical": grid.classical}
    if run.kind == "darts" or run.name == "random":
        settings.update(net=grid.net, space=control_space(grid) if run.name == "random" else grid.space)
    if run.kind == "darts":
        settings.update(search=grid.search)
    return json.loads(json.dumps(settings))


def run_one(grid: Grid, run: Run) -> str:
    """Execute one run's notebooks; returns its final status.

    A run folder left by other settings is moved aside (``<folder>.stale-<time>``)
    so that its checkpoints are not resumed with the new settings.
    """
    folder = run.folder.resolve()
    settings = run_settings(grid, run)
    previous = run.info
    if previous and previous.get("settings") != settings:
        stale = folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        folder.rename(stale)
        print(f"{folder} was run with other settings; moved to {stale.name}")
    info = {"corpus": run.corpus, "kind": run.kind, "name": run.name, "fold": run.fold, "seed": run.seed,
            "status": "running", "settings": settings, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "environment": environment()}
    write_json(info, folder / "run.json")
    common = dict(_common(grid, run.corpus), fold=run.fold, live=False)
    started = time.perf_counter()
    try:
        if run.kind == "darts":
            search_dir = folder / "search"
            _execute("02_search.ipynb", folder / "02_search.ipynb",
                     dict(common, run_dir=str(search_dir), space={**grid.space, "scope": run.name},
                          search={**grid.search, "seed": run.seed, "device": grid.device}), grid.cell_timeout)
            _execute("03_genome.ipynb", folder / "03_genome.ipynb", {"run_dirs": [str(search_dir)]}, grid.cell_timeout)
            model = {"model": "genome", "search_dir": str(search_dir)}
        else:
            model = {"model": run.name, "space": control_space(grid), "classical": grid.classical}
        _execute("04_retrain.ipynb", folder / "04_retrain.ipynb",
                 dict(common, run_dir=str(folder / "retrain"), **model, net=grid.net,
                      train={**grid.train, "seed": run.seed, "device": grid.device}), grid.cell_timeout)
        info.update(status="done", error=None)
        from emokit.viz.cells import dot_available

        if run.kind == "darts" and not dot_available():
            info["warnings"] = ["Graphviz 'dot' is missing: the cell graphs were not drawn (the run is complete)"]
    except KeyboardInterrupt:
        info.update(status="interrupted")
        write_json(info, folder / "run.json")
        raise
    except Exception as exc:  # one failed run must not stop the grid
        info.update(status="failed", error=describe_failure(exc), traceback=traceback.format_exc()[-4000:])
    info.update(seconds=time.perf_counter() - started, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    write_json(info, folder / "run.json")
    return info["status"]


def describe_failure(exc: Exception) -> str:
    """One line: which notebook and cell failed, and the exception's own message."""
    import papermill

    if isinstance(exc, papermill.PapermillExecutionError):
        notebook = getattr(exc, "notebook", "a notebook")
        message = f"{notebook}, cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    message = " ".join(message.split())
    return message if len(message) <= 1000 else message[:997] + "..."


def report_skipped(grid: Grid, corpus: str, say=print) -> list[dict]:
    """Say how many audio files of ``corpus`` were left out and why (read
    from notebook 01's feature cache); returns the skip records."""
    from emokit.pipeline import corpus_features

    _, manifest = corpus_features(corpus, grid.data_root, grid.features, Path(grid.results_dir) / "features",
                                  progress=False)
    skipped = manifest.attrs.get("skipped", [])
    say(f"{corpus}: {len(manifest)} audio files used, {len(skipped)} skipped")
    for record in skipped:
        say(f"  skipped {record['reason']}")
    return skipped


def run_grid(grid: Grid, progress: bool = True) -> pd.DataFrame:
    """Run the whole grid (features first, then every run), skipping finished
    runs; returns :func:`emokit.results.collect` of the results folder."""
    from tqdm.auto import tqdm

    from emokit.results import collect

    results = Path(grid.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    write_json(asdict(grid), results / "grid.json")
    for corpus in grid.corpora:
        _execute("01_features.ipynb", results / "runs" / corpus / "01_features.ipynb",
                 {"corpus": corpus, "data_root": grid.data_root, "output_dir": str((results / "features").resolve()),
                  "features": grid.features}, grid.cell_timeout)
        report_skipped(grid, corpus, print if progress else lambda *a: None)
    runs = plan(grid)
    bar = tqdm(runs, desc="runs", unit="run", disable=not progress)
    for run in bar:
        bar.set_postfix_str(f"{run.corpus} {run.name} fold {run.fold} seed {run.seed}")
        info = run.info  # one read of run.json
        if info.get("status") == "done" and info.get("settings") == run_settings(grid, run):
            continue
        status = run_one(grid, run)
        if status == "failed":
            bar.write(f"FAILED {run.folder}: {read_json(run.folder / 'run.json')['error']}")
    return collect(results)


def compare(results_dir: str | Path, html: bool = True, timeout: int | None = None) -> Path:
    """Execute notebook 05 on a results folder (and save an HTML copy)."""
    results_dir = Path(results_dir).resolve()
    output = results_dir / "05_compare.ipynb"
    _execute("05_compare.ipynb", output, {"results_dir": str(results_dir)}, timeout)
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(output))
        output.with_suffix(".html").write_text(body)
    return output
