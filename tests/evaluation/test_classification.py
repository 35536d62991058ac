"""Classification metrics against scikit-learn, the size strata and the sequential protocol."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.evaluation import (
    classification_metrics,
    sequential_protocol_metrics,
    stratified_classification_metrics,
)


def random_predictions(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(LESION_CLASSES, n)
    logits = rng.normal(size=(n, 3)) + 2.0 * (np.asarray(LESION_CLASSES)[None] == y_true[:, None])
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_pred = np.asarray(LESION_CLASSES)[probabilities.argmax(axis=1)]
    return y_true, y_pred, probabilities


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_equal_sklearn(seed):
    y_true, y_pred, probabilities = random_predictions(seed)
    ours = classification_metrics(y_true, y_pred, probabilities)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred), rel=1e-12)
    precision, recall, f1, support = sk.precision_recall_fscore_support(y_true, y_pred, labels=list(LESION_CLASSES))
    for i, cls in enumerate(LESION_CLASSES):
        got = ours["per_class"][cls]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
            (precision[i], recall[i], f1[i], support[i]), rel=1e-12)
        assert got["auc"] == pytest.approx(sk.roc_auc_score(y_true == cls, probabilities[:, i]), rel=1e-12)
    matrix = sk.confusion_matrix(y_true, y_pred, labels=list(LESION_CLASSES))
    assert np.array_equal(ours["confusion"][list(LESION_CLASSES)].to_numpy(), matrix)
    assert ours["confusion"]["unknown"].sum() == 0


def test_unclassified_predictions_count_as_errors_in_an_unknown_column():
    y_true = ["AML", "AML", "cystic", "solid"]
    y_pred = ["AML", "too_small", "cystic", "unknown"]
    ours = classification_metrics(y_true, y_pred)
    assert ours["accuracy"] == pytest.approx(0.5)
    assert ours["confusion"].loc["AML", "unknown"] == 1 and ours["confusion"].loc["solid", "unknown"] == 1
    assert ours["per_class"]["AML"]["recall"] == pytest.approx(0.5)
    assert math.isnan(ours["per_class"]["AML"]["auc"])  # no probabilities given
    with pytest.raises(ValueError, match="not among"):
        classification_metrics(["benign"], ["AML"])


def lesion_table() -> pd.DataFrame:
    return pd.DataFrame({
        "status": ["TP", "TP", "TP", "TP", "FN", "FP", "TP"],
        "ref_class": ["AML", "cystic", "solid", "cystic", "solid", "", "unknown"],
        "pred_class": ["AML", "unknown", "solid", "AML", "", "cystic", "solid"],
        "ref_average_diameter_mm": [12.0, 3.0, 30.0, 4.9, 20.0, math.nan, 15.0],
        "pred_average_diameter_mm": [11.0, 6.0, 28.0, 4.0, math.nan, 8.0, 14.0],
    })


def test_size_strata_split_detected_known_lesions_by_reference_diameter():
    strata = stratified_classification_metrics(lesion_table(), threshold_mm=5.0)
    assert (strata["all"]["n"], strata["<5mm"]["n"], strata[">=5mm"]["n"]) == (4, 2, 2)
    assert strata[">=5mm"]["accuracy"] == 1.0
    assert strata["<5mm"]["accuracy"] == 0.0
    assert strata["<5mm"]["confusion"].loc["cystic", "unknown"] == 1
    # The threshold is configurable (the paper's 5 mm may mean 5 cm).
    assert stratified_classification_metrics(lesion_table(), threshold_mm=50.0)["<50mm"]["n"] == 4


def test_sequential_protocol_keeps_tp_components_with_large_predicted_diameter():
    result = sequential_protocol_metrics(lesion_table(), threshold_mm=5.0)
    # AML (11 mm), cystic (predicted 6 mm although the reference is 3 mm), solid (28 mm); the
    # 4 mm prediction, the FN, the FP and the unknown reference class are left out.
    assert result["n"] == 3
    assert result["accuracy"] == pytest.approx(2 / 3)
