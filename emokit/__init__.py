"""emokit: differentiable architecture search (DARTS) for speech emotion recognition.

The library behind the notebooks in ``notebooks/``:

- :mod:`emokit.data` corpora as manifests, :mod:`emokit.splits` speaker-independent folds
- :mod:`emokit.features` 128 x 128 MFCC maps, cached; :mod:`emokit.fold_data` one fold's arrays
- :mod:`emokit.pipeline` what each notebook does first; :mod:`emokit.config` the settings rule
- :mod:`emokit.search` the joint CNN + SeqNN DARTS search (ops, cells, supernet, genotype, architect, loop)
- :mod:`emokit.models`, :mod:`emokit.train`, :mod:`emokit.metrics` retraining and UA / WA
- :mod:`emokit.classical`, :mod:`emokit.stats` the controls and the paired statistics
- :mod:`emokit.viz` pictures; :mod:`emokit.results` tables
- :mod:`emokit.experiments` grids (what to run), :mod:`emokit.runner` runs them with papermill,
  :mod:`emokit.cluster` on Dask, :mod:`emokit.locks` one process per run folder

``emokit.predict(run_dir, wav_paths)`` gives class probabilities for new audio.
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import emokit` stays light (no torch or librosa import).
    if name == "predict":
        from emokit.prediction import predict

        return predict
    raise AttributeError(f"module 'emokit' has no attribute {name!r}")
