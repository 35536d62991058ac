"""Lesion classification metrics (AML / cystic / solid) with scikit-learn.

Two protocols from the paper:

* stratified (its Tables 3-4): every reference lesion with a known class that was detected (TP)
  is compared with the class predicted for it, split by the reference lesion's average diameter
  at a threshold (default 5 mm; ``< t`` and ``>= t``). Predicted labels outside the classes
  (``too_small``, ``unknown``) count as errors and appear as their own confusion-matrix column,
  like the paper's ``pUnknown``.
* sequential (its section 2.8, external validation): only TP components whose *predicted*
  average diameter is ``>= t`` are classified and compared with the reference class.

ROC AUC is one-vs-rest per class on the predicted probabilities (``prob_<class>``) of the rows
that have them; it is NaN when a class has no positive or no negative example.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.settings import PAPER

__all__ = [
    "UNKNOWN_CLASS",
    "classification_metrics",
    "size_groups",
    "stratified_classification_metrics",
    "sequential_protocol_metrics",
]

UNKNOWN_CLASS = "unknown"
"""Predicted class of a lesion the pipeline did not classify (too small, or no class available)."""


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    probabilities: np.ndarray | None = None,
    classes: Sequence[str] = LESION_CLASSES,
) -> dict:
    """Accuracy, per-class precision/recall/F1, one-vs-rest ROC AUC and the confusion matrix.

    Args:
        y_true: reference class per lesion (each one of ``classes``).
        y_pred: predicted class per lesion; anything outside ``classes`` counts as ``unknown``.
        probabilities: optional (N, len(classes)) class probabilities, columns in ``classes``
            order; rows with NaN are left out of the AUC.
        classes: the class names.

    Returns:
        ``{"n", "accuracy", "per_class": {cls: {"precision", "recall", "f1", "support", "auc"}},
        "confusion": DataFrame (rows reference ``classes``, columns ``classes`` + ``unknown``)}``.

    Raises:
        ValueError: a reference class outside ``classes``, or mismatched lengths.
    """
    classes = list(classes)
    y_true = [str(c) for c in y_true]
    y_pred = [c if c in classes else UNKNOWN_CLASS for c in map(str, y_pred)]
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} reference classes but {len(y_pred)} predictions")
    unknown_ref = sorted(set(y_true) - set(classes))
    if unknown_ref:
        raise ValueError(f"reference classes {unknown_ref} are not among {classes}")
    columns = classes + [UNKNOWN_CLASS]
    result: dict = {"n": len(y_true)}
    if not y_true:
        result.update(accuracy=math.nan, per_class={c: dict.fromkeys(("precision", "recall", "f1", "auc"), math.nan) | {"support": 0}
                                                     for c in classes},
                      confusion=pd.DataFrame(0, index=classes, columns=columns))
        return result
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=classes, zero_division=np.nan
    )
    result["accuracy"] = float(accuracy_score(y_true, y_pred))
    aucs = _one_vs_rest_auc(np.asarray(y_true), probabilities, classes)
    result["per_class"] = {
        c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "support": int(support[i]), "auc": aucs[i]}
        for i, c in enumerate(classes)
    }
    matrix = confusion_matrix(y_true, y_pred, labels=columns)[: len(classes)]
    result["confusion"] = pd.DataFrame(matrix, index=classes, columns=columns)
    return result


def _one_vs_rest_auc(y_true: np.ndarray, probabilities: np.ndarray | None, classes: list[str]) -> list[float]:
    if probabilities is None:
        return [math.nan] * len(classes)
    probabilities = np.asarray(probabilities, float)
    if probabilities.shape != (len(y_true), len(classes)):
        raise ValueError(f"probabilities have shape {probabilities.shape}, expected {(len(y_true), len(classes))}")
    usable = ~np.isnan(probabilities).any(axis=1)
    aucs = []
    for i, c in enumerate(classes):
        positive = y_true[usable] == c
        aucs.append(float(roc_auc_score(positive, probabilities[usable, i])) if 0 < positive.sum() < positive.size else math.nan)
    return aucs


def size_groups(threshold_mm: float) -> tuple[str, str]:
    """Names of the two size strata, e.g. ``("<5mm", ">=5mm")``."""
    return f"<{threshold_mm:g}mm", f">={threshold_mm:g}mm"


def _metrics_of(rows: pd.DataFrame, classes: Sequence[str]) -> dict:
    probability_columns = [f"prob_{c}" for c in classes]
    probabilities = rows[probability_columns].to_numpy(float) if set(probability_columns) <= set(rows.columns) else None
    return classification_metrics(rows["ref_class"].tolist(), rows["pred_class"].fillna(UNKNOWN_CLASS).tolist(), probabilities, classes)


def stratified_classification_metrics(
    lesions: pd.DataFrame, threshold_mm: float = PAPER.size_threshold_mm, classes: Sequence[str] = LESION_CLASSES
) -> dict[str, dict]:
    """Classification of detected reference lesions, overall and split by reference diameter.

    Args:
        lesions: per-lesion table with ``status``, ``ref_class``, ``pred_class``,
            ``ref_average_diameter_mm`` and optionally ``prob_<class>`` columns.
        threshold_mm: average-diameter threshold in mm (the paper: 5 mm).

    Returns:
        ``{"all": metrics, "<5mm": metrics, ">=5mm": metrics}`` (see :func:`classification_metrics`).
    """
    usable = lesions[(lesions["status"] == "TP") & lesions["ref_class"].isin(list(classes))]
    small, large = size_groups(threshold_mm)
    is_large = usable["ref_average_diameter_mm"] >= threshold_mm
    return {
        "all": _metrics_of(usable, classes),
        small: _metrics_of(usable[~is_large], classes),
        large: _metrics_of(usable[is_large], classes),
    }


def sequential_protocol_metrics(
    lesions: pd.DataFrame, threshold_mm: float = PAPER.size_threshold_mm, classes: Sequence[str] = LESION_CLASSES
) -> dict:
    """The paper's external-validation protocol: TP components with predicted average diameter
    ``>= threshold_mm`` and a known reference class, classified and compared with the reference."""
    selected = lesions[
        (lesions["status"] == "TP")
        & (lesions["pred_average_diameter_mm"] >= threshold_mm)
        & lesions["ref_class"].isin(list(classes))
    ]
    return _metrics_of(selected, classes)
