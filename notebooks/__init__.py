"""The notebook sequence, shipped with emokit as ``emokit.notebooks``.

01_features -> 02_search -> 03_genome -> 04_retrain -> 05_compare; each is a
jupytext pair (``.py`` in py:percent format is the source, ``.ipynb`` is
what papermill executes). Found with ``importlib.resources``:
:func:`emokit.runner.notebook_path`.
"""
