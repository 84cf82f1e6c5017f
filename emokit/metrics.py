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


SUSPECT_ALPHA = 0.05
LIKELY_CAUSES = ("speaker normalisation on a corpus whose speakers each speak few emotions (`emokit summary` "
                 "says so), validation on more utterances of the training speakers of such a corpus, or labels "
                 "that do not match the audio")


def chance_test(confusion) -> dict:
    """Are fewer predictions right than chance gives?

    Chance is the agreement of labels and predictions drawn independently
    from their own frequencies (the margins of ``confusion``, as in Cohen's
    kappa): a model that ignores its input gets it on average, whatever
    class it favours. One-sided binomial test of the count of right
    predictions against it.

    Returns
    -------
    dict with ``n``, ``correct``, ``chance`` (0..1) and ``p`` (small: below chance)
    """
    from scipy.stats import binomtest

    counts = np.asarray(confusion, dtype=np.int64)
    n, correct = int(counts.sum()), int(np.trace(counts))
    if n == 0:
        return {"n": 0, "correct": 0, "chance": float("nan"), "p": 1.0}
    chance = float(counts.sum(axis=1) @ counts.sum(axis=0)) / n**2
    p = binomtest(correct, n, min(max(chance, 0.0), 1.0), alternative="less").pvalue
    return {"n": n, "correct": correct, "chance": chance, "p": float(p)}


def below_chance(metrics: dict, alpha: float = SUSPECT_ALPHA) -> list[str]:
    """A sentence for each of a run's validation (``val_confusion``) and test
    (``confusion``) scores that lies significantly below chance
    (:func:`chance_test`, p < ``alpha``); empty when neither does."""
    reasons = []
    for key, role in (("val_confusion", "validation"), ("confusion", "test")):
        if metrics.get(key) is None:
            continue
        test = chance_test(metrics[key])
        if test["n"] and test["p"] < alpha:
            reasons.append(f"{role}: {test['correct']} of {test['n']} right ({100 * test['correct'] / test['n']:.0f} %), "
                           f"below chance ({100 * test['chance']:.0f} %; binomial p {test['p']:.2g})")
    return reasons
