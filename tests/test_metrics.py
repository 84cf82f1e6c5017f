"""emokit.metrics.evaluate against hand-computed values."""
from __future__ import annotations

import pytest

from emokit.metrics import evaluate

CLASSES = ("anger", "happiness", "sadness", "neutral")


def test_imbalanced_ua_differs_from_wa():
    # 6 anger (5 right), 2 happiness (1 right), 2 sadness (0 right); no neutral in y_true.
    y_true = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 0, 0, 3, 1, 0, 0, 3]
    m = evaluate(y_true, y_pred, CLASSES)
    assert m["wa"] == pytest.approx(6 / 10)
    assert m["ua"] == pytest.approx((5 / 6 + 1 / 2 + 0) / 3)  # neutral is absent: not averaged in
    assert m["per_class_recall"] == pytest.approx({"anger": 5 / 6, "happiness": 0.5, "sadness": 0.0, "neutral": None})
    assert m["confusion"] == [[5, 0, 0, 1], [1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]]
    assert m["n"] == 10


def test_perfect_predictions():
    y = [0, 1, 2, 3, 3, 3]
    m = evaluate(y, y, CLASSES)
    assert m["ua"] == m["wa"] == 1.0
    assert m["confusion"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 3]]


def test_all_one_class_predictions():
    y_true = [0, 0, 1, 2, 3, 3, 3, 3]
    m = evaluate(y_true, [3] * 8, CLASSES)
    assert m["wa"] == pytest.approx(0.5)
    assert m["ua"] == pytest.approx(0.25)  # chance level whatever the imbalance
    assert [row[3] for row in m["confusion"]] == [2, 1, 1, 4]


def test_bad_input():
    with pytest.raises(ValueError, match="zero"):
        evaluate([], [], CLASSES)
    with pytest.raises(ValueError, match="outside"):
        evaluate([0, 4], [0, 0], CLASSES)
    with pytest.raises(ValueError, match="predictions"):
        evaluate([0, 1], [0], CLASSES)
