"""The paper's metrics: UA (unweighted accuracy = mean per-class recall) and
WA (weighted accuracy = overall accuracy), with the confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score


def evaluate(y_true, y_pred, classes: Sequence[str]) -> dict:
    """Score class-index predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n,)
        Class indices into ``classes``.
    classes : sequence of str, length n_classes

    Returns
    -------
    dict
        ``ua``: mean recall over the classes present in ``y_true`` (0..1);
        ``wa``: accuracy (0..1); ``per_class_recall``: class -> recall, None
        for a class absent from ``y_true``; ``confusion``: n_classes x
        n_classes counts as lists (rows true, columns predicted); ``n``.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("cannot evaluate zero predictions")
    labels = list(range(len(classes)))
    out_of_range = sorted(set(np.concatenate([y_true, y_pred]).tolist()) - set(labels))
    if out_of_range:
        raise ValueError(f"class indices {out_of_range} are outside 0..{len(classes) - 1} ({list(classes)})")
    present = sorted(set(y_true.tolist()))
    recalls = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    return {
        # A class with no test utterance has no recall; averaging a 0 in would punish the model for the split.
        "ua": float(np.mean(recalls[present])),
        "wa": float(accuracy_score(y_true, y_pred)),
        "per_class_recall": {c: (float(recalls[i]) if i in present else None) for i, c in enumerate(classes)},
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n": int(len(y_true)),
    }
