"""Experiment grids: what to run. A grid is corpora x scopes x folds x seeds
(and baselines); :func:`plan` lists its runs, each a folder::

    results/
      features/                      feature cache (notebook 01)
      runs/<corpus>/01_features.ipynb
      runs/<corpus>/<scope>/fold<k>-seed<s>/         a DARTS run
          run.json  02_search.ipynb  03_genome.ipynb  04_retrain.ipynb
          search/  retrain/
      runs/<corpus>/<baseline>/fold<k>-seed<s>/      a baseline run
          run.json  04_retrain.ipynb  retrain/
      05_compare.ipynb  05_compare.html  tables/

:mod:`emokit.runner` executes a grid (serially, or on Dask through
:mod:`emokit.cluster`).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from emokit.classical import ClassicalConfig
from emokit.config import UnknownSettingError
from emokit.features import FeatureConfig
from emokit.models import NetConfig
from emokit.paths import results_root, run_folder
from emokit.search.loop import SearchConfig
from emokit.search.supernet import SearchSpace
from emokit.train import TrainConfig
from emokit.utils import read_json

PRESETS: dict[str, dict] = {
    # The paper's settings (section IV): 300 + 300 epochs, batch 64, 4 + 2 cells,
    # retraining on the 30 % "train" split of the training speakers. A
    # checkpoint at most every 30 s: on a GPU an epoch takes about a second.
    "paper": {
        "scopes": ["emodarts"], "baselines": ["cnn", "cnn_lstm", "cnn_lstm_att", "random", "classical"],
        "folds": None, "seeds": [0], "features": {}, "normalization": "train",
        "space": {"cnn_cells": 4, "cnn_nodes": 4, "seq_cells": 2, "seq_nodes": 3, "channels": 8, "seq_hidden": 64},
        "search": {"epochs": 300, "batch_size": 64, "checkpoint_every_s": 30},
        "net": {"cnn_cells": 4, "seq_cells": 2, "channels": 16, "seq_hidden": 64},
        "train": {"epochs": 300, "batch_size": 64, "train_roles": ["train"], "checkpoint_every_s": 30},
    },
    # Small enough for `make demo` on a 2-core CPU, and emokit's recipe there
    # (not the paper's): 3 s log-mel maps (EmoDB lasts 1.4-9.0 s, median
    # 2.6 s; 3 s gave the best validation UA of 3, 4, 5 and 6 s:
    # studies/map_duration.py), speaker normalisation, a stem of
    # stride 2 (every cell costs a quarter), a narrow and shallow supernet,
    # retraining on all non-val data of the training speakers with time
    # shifts and mixup. The baselines get the same data and training. The
    # search settings make it decide within 15 epochs: a large alpha_lr
    # after 3 warm-up epochs, DARTS-' auxiliary skip against the skip bias,
    # and at most one skip_connect per cell (studies/search_decision.py).
    "quick": {
        "scopes": ["emodarts"], "baselines": ["cnn", "cnn_lstm", "cnn_lstm_att", "random", "classical"],
        "folds": None, "seeds": [0],
        "features": {"kind": "logmel", "duration": 3.0}, "normalization": "speaker",
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
    from the space of the first scope, retrained like a searched one),
    ``random_search`` (the best of 4 such genomes by validation UA; 4
    retrainings per run) and ``classical`` (functionals and a linear
    classifier).
    """

    corpora: list[str] = field(default_factory=lambda: ["emodb"])
    scopes: list[str] = field(default_factory=lambda: ["emodarts"])
    baselines: list[str] = field(default_factory=list)
    folds: list[int] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    features: dict = field(default_factory=dict)
    normalization: str = "train"  # or "speaker": each speaker standardised with their own statistics
    val_speakers: int = 0  # 0: val is a share of the training speakers' utterances; n: all of n speakers'
    space: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)
    net: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    classical: dict = field(default_factory=dict)
    # Cross-corpus (emokit.cross_corpus): every deep model trained on a corpus of `corpora` is also
    # scored on all of each other corpus here; and for each such corpus that is also in `corpora`,
    # every scope's genomes searched on the other corpora are retrained on its folds ("<scope>_from_<A>").
    test_corpora: list[str] = field(default_factory=list)
    data_root: str | None = None
    results_dir: str | None = None  # None: emokit.paths.results_root()
    device: str = "auto"
    cell_timeout: int | None = None  # seconds a notebook cell may run (None: no limit; a search can take days)
    # Where the runs execute (emokit.cluster): in this process (workers 1), on
    # a local Dask cluster of `workers` processes, on a running Dask scheduler
    # ("tcp://host:8786"), or on a dask-jobqueue cluster described by
    # `cluster` ({"kind": "slurm", "jobs": 4, ...the cluster class's arguments}).
    workers: int = 1
    scheduler: str | None = None
    cluster: dict | None = None
    threads: int | None = None  # CPU threads per run (None: cores / workers on a local cluster, else the worker's)
    # Filled by the runner, not set by users: corpus -> emokit.features.data_fingerprint of its files,
    # and corpus -> its fold scheme (emokit.splits.fold_scheme).
    fingerprints: dict = field(default_factory=dict, repr=False)
    fold_schemes: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.results_dir is None:
            self.results_dir = str(results_root())
        if not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a whole number >= 1, got {self.workers!r}")
        if sum(bool(x) for x in (self.workers > 1, self.scheduler, self.cluster)) > 1:
            raise ValueError("give one of workers > 1, scheduler and cluster, not several")
        for key in ("corpora", "test_corpora"):
            value = getattr(self, key)
            if isinstance(value, str) or not all(isinstance(name, str) for name in value):
                raise ValueError(f"{key} must be a list of corpus names, got {value!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be None or >= 1, got {self.threads!r}")
        check_settings({key: getattr(self, key) for key in SETTINGS}, "grid ")  # a typo fails before anything runs


def check_settings(dicts: dict[str, dict], where: str = "") -> None:
    """Raise :class:`UnknownSettingError` naming the dict (``where`` + its
    key) and the known fields when a dict of :data:`SETTINGS` has a key its
    dataclass lacks."""
    for key, cls in SETTINGS.items():
        try:
            cls.from_dict(dicts.get(key) or {})
        except UnknownSettingError as exc:
            raise UnknownSettingError(f"{where}'{key}': {exc}") from None


GRID_SETTINGS = [name for name in Grid.__dataclass_fields__
                 if name not in ("fingerprints", "fold_schemes")]  # what users may set


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
        unknown = set(update) - set(GRID_SETTINGS)
        if unknown:
            raise UnknownSettingError(f"unknown grid settings {sorted(unknown)}; known: {', '.join(GRID_SETTINGS)}")
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(settings.get(key), dict):
                settings[key].update(value)
            else:
                settings[key] = value
    return Grid(**settings)


NOTEBOOK_SETTINGS = tuple(SETTINGS)  # the dicts a notebook takes


def notebook_settings(preset: str | None = "quick", normalization: str | None = None,
                      val_speakers: int | None = None, **dicts: dict | None) -> dict:
    """The settings a notebook runs with, as ``emokit run`` makes them.

    Parameters
    ----------
    preset : a name of :data:`PRESETS` (``"quick"``, ``"paper"``), or None
        for the library's defaults (the paper's settings) alone
    normalization, val_speakers : None takes the preset's (else ``"train"`` and 0)
    **dicts : ``features``, ``space``, ``search``, ``net``, ``train``,
        ``classical``: fields that update the preset's dict key by key

    Returns
    -------
    dict with every key of :data:`NOTEBOOK_SETTINGS` (a dict each) and
    ``normalization`` and ``val_speakers``; every key is checked against its
    dataclass (an unknown one is an error listing the known ones).
    """
    if preset is not None and preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)} (or None: the paper's "
                       "defaults of every dataclass)")
    unknown = set(dicts) - set(NOTEBOOK_SETTINGS)
    if unknown:
        raise UnknownSettingError(f"unknown settings {sorted(unknown)}; known: {', '.join(NOTEBOOK_SETTINGS)}")
    base = copy.deepcopy(PRESETS[preset]) if preset else {}
    settings = {key: {**base.get(key, {}), **(dicts.get(key) or {})} for key in NOTEBOOK_SETTINGS}
    check_settings(settings)
    settings["normalization"] = normalization or base.get("normalization", "train")
    settings["val_speakers"] = val_speakers if val_speakers is not None else base.get("val_speakers", 0)
    return settings


@dataclass
class Run:
    corpus: str
    kind: str  # "darts", "baseline" or "transfer"
    name: str  # search scope, baseline model, or transferred scope (emokit.cross_corpus.transfer_name)
    fold: int
    seed: int
    folder: Path
    source: "Run | None" = None  # transfer: the search run on another corpus whose genome it retrains

    @property
    def info(self) -> dict:
        path = self.folder / "run.json"
        return read_json(path) if path.exists() else {}


def n_folds(corpus: str, data_root: str | None) -> int:
    from emokit.data import corpus_root, load_corpus
    from emokit.splits import make_folds

    return len(make_folds(load_corpus(corpus, corpus_root(corpus, data_root), check_audio=False)))


def plan(grid: Grid) -> list[Run]:
    """Every run of the grid, the longest first: DARTS runs, the random
    controls (random search, then one random genome, retrained like a
    searched genome), then the other baselines. A cluster
    starts runs in this order, so its last runs are short ones and no
    worker idles long while another finishes."""
    runs = []
    baselines = sorted(grid.baselines, key=lambda name: {"random_search": 0, "random": 1}.get(name, 2))
    folds = {corpus: grid.folds if grid.folds is not None else list(range(n_folds(corpus, grid.data_root)))
             for corpus in grid.corpora}
    for corpus in grid.corpora:
        for kind, names in (("darts", grid.scopes), ("baseline", baselines)):
            for name in names:
                for fold in folds[corpus]:
                    for seed in grid.seeds:
                        runs.append(Run(corpus, kind, name, fold, seed, run_folder(grid.results_dir, corpus, name,
                                                                                   fold, seed)))
    return runs + transfer_runs(grid, folds)


def transfer_runs(grid: Grid, folds: dict[str, list[int]]) -> list[Run]:
    """Genome transfer (last: each needs its source search): for corpus B in
    both ``corpora`` and ``test_corpora``, every scope's genome searched on
    each other corpus A, retrained on B's folds. B's fold i (the i-th of its
    folds) takes A's i-th fold modulo their number, same seed: A's searches
    never saw B's speakers, so any of them may serve."""
    from emokit.cross_corpus import transfer_name

    runs = []
    for target in (c for c in grid.corpora if c in grid.test_corpora):
        for source in (c for c in grid.corpora if c != target):
            for scope in grid.scopes:
                name = transfer_name(scope, source)
                for i, fold in enumerate(folds[target]):
                    source_fold = folds[source][i % len(folds[source])]
                    for seed in grid.seeds:
                        origin = Run(source, "darts", scope, source_fold, seed,
                                     run_folder(grid.results_dir, source, scope, source_fold, seed))
                        runs.append(Run(target, "transfer", name, fold, seed,
                                        run_folder(grid.results_dir, target, name, fold, seed), origin))
    return runs


def control_space(grid: Grid) -> dict:
    """The search space the random control draws from: the grid's space with
    its first scope (what the first searched genome came from)."""
    return {**grid.space, "scope": grid.scopes[0] if grid.scopes else grid.space.get("scope", "emodarts")}


def corpus_manifest(grid: Grid, corpus: str):
    """The manifest of ``corpus`` under the grid's data root (the paper's
    classes; file headers not read)."""
    from emokit.data import corpus_root, load_corpus

    return load_corpus(corpus, corpus_root(corpus, grid.data_root), check_audio=False)


def data_fingerprint(grid: Grid, corpus: str, manifest=None) -> str:
    """:func:`emokit.features.data_fingerprint` of ``corpus``'s files (of
    ``manifest`` when given), read once per grid (``grid.fingerprints``)."""
    if corpus not in grid.fingerprints:
        from emokit.features import data_fingerprint as files_fingerprint

        grid.fingerprints[corpus] = files_fingerprint(manifest if manifest is not None else
                                                      corpus_manifest(grid, corpus),
                                                      cache=Path(grid.results_dir) / "features" / "file-digests.json")
    return grid.fingerprints[corpus]


def fold_scheme(grid: Grid, corpus: str) -> str:
    """:func:`emokit.splits.fold_scheme` of ``corpus``, read once per grid."""
    if corpus not in grid.fold_schemes:
        from emokit.splits import fold_scheme as scheme_of

        grid.fold_schemes[corpus] = scheme_of(corpus_manifest(grid, corpus))
    return grid.fold_schemes[corpus]


def run_settings(grid: Grid, run: Run) -> dict:
    """What a run's results depend on, its data included (the corpus's
    files: :func:`data_fingerprint`); a finished run with other settings is stale."""
    settings = {"features": grid.features, "normalization": grid.normalization, "train": grid.train,
                "data_root": grid.data_root, "data": data_fingerprint(grid, run.corpus)}
    if grid.val_speakers:  # only when set: runs finished before the option stay current
        settings["val_speakers"] = grid.val_speakers
    if fold_scheme(grid, run.corpus) == "groups":  # their test speakers changed when the folds were balanced
        settings["folds"] = "balanced by class"
    if run.name == "classical":
        settings = {**settings, "classical": grid.classical}
    if run.kind in ("darts", "transfer") or run.name in ("random", "random_search"):
        settings.update(net=grid.net, space=grid.space if run.kind != "baseline" else control_space(grid))
    if run.kind in ("darts", "transfer"):
        settings.update(search=grid.search)
    if run.kind == "transfer":  # its genome: the source search's, on the source corpus's data
        source = run.source
        settings["source"] = {"corpus": source.corpus, "scope": source.name, "fold": source.fold,
                              "data": data_fingerprint(grid, source.corpus)}
    return json.loads(json.dumps(settings))


