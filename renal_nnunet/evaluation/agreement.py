"""Agreement of predicted and reference nephrometry scores of true-positive masses.

Per item (:data:`AGREEMENT_ITEMS`), over the TP masses that carry both scores:

* ``exact_match``: share of masses with the same points (the same letter for A);
* ``kappa``: Cohen's kappa (scikit-learn ``cohen_kappa_score``), quadratic-weighted for the ordinal
  items and sums, unweighted for the nominal A (a/p/x);
* ``icc``: ICC(2,1) of the composites (R.E.N.A.L. and PADUA sums, C-index): two-way random
  effects, absolute agreement, single rater (Shrout & Fleiss 1979, Psychol Bull 86:420, case 2;
  McGraw & Wong 1996's ICC(A,1)), the statistic reader studies of nephrometry report (e.g.
  Spaliviero et al., World J Urol 2015). The C-index is continuous: only its ICC is given.

Empty policy: a statistic is NaN when fewer than two masses carry both scores, kappa also when
both raters used a single category between them (kappa is undefined), ICC also when every value
is the same; ``n`` always says how many masses the row is over.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["AGREEMENT_ITEMS", "ICC_ITEMS", "icc_2_1", "nephrometry_agreement"]

AGREEMENT_ITEMS: tuple[str, ...] = (
    "renal_r", "renal_e", "renal_n", "renal_a", "renal_l", "renal_score", "padua_location", "padua_exophytic",
    "padua_rim", "padua_sinus", "padua_collecting_system", "padua_size", "padua_score", "c_index")
"""Nephrometry items compared; per_lesion.csv holds ``pred_<item>`` and ``ref_<item>``."""
ICC_ITEMS: tuple[str, ...] = ("renal_score", "padua_score", "c_index")
NOMINAL_ITEMS: tuple[str, ...] = ("renal_a",)
CONTINUOUS_ITEMS: tuple[str, ...] = ("c_index",)


def icc_2_1(ratings: np.ndarray) -> float:
    """ICC(2,1) of an (n targets x k raters) table (module docstring); NaN when undefined.

    >>> round(icc_2_1(np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9],
    ...                         [6, 2, 4, 7]])), 2)  # Shrout & Fleiss 1979, Table 2 -> .29 (Table 4)
    0.29
    """
    y = np.asarray(ratings, float)
    n, k = y.shape
    if n < 2 or k < 2:
        return math.nan
    grand = y.mean()
    ss_rows = k * ((y.mean(axis=1) - grand) ** 2).sum()
    ss_columns = n * ((y.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((y - grand) ** 2).sum() - ss_rows - ss_columns
    ms_rows, ms_columns = ss_rows / (n - 1), ss_columns / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_columns - ms_error) / n
    return float((ms_rows - ms_error) / denominator) if denominator > 0 else math.nan


def _kappa(pred: pd.Series, ref: pd.Series, item: str) -> float:
    from sklearn.metrics import cohen_kappa_score

    if len(pred) < 2 or len(set(pred) | set(ref)) < 2:
        return math.nan
    weights = None if item in NOMINAL_ITEMS else "quadratic"
    return float(cohen_kappa_score(ref.astype(str) if weights is None else ref.astype(float),
                                   pred.astype(str) if weights is None else pred.astype(float), weights=weights))


def nephrometry_agreement(per_lesion: pd.DataFrame) -> pd.DataFrame:
    """Agreement rows (``item, n, exact_match, kappa, icc``) over the TP rows of a per-lesion table
    with ``pred_<item>`` and ``ref_<item>`` columns; empty when no row carries both."""
    rows = []
    tp = per_lesion[per_lesion["status"] == "TP"] if len(per_lesion) else per_lesion
    for item in AGREEMENT_ITEMS:
        pred_column, ref_column = f"pred_{item}", f"ref_{item}"
        if pred_column not in tp.columns or ref_column not in tp.columns:
            continue
        both = tp[[pred_column, ref_column]].replace("", np.nan).dropna()
        if both.empty:
            continue
        pred, ref = both[pred_column], both[ref_column]
        exact = math.nan if item in CONTINUOUS_ITEMS else float((pred.astype(str) == ref.astype(str)).mean())
        if item not in NOMINAL_ITEMS:
            pred, ref = pred.astype(float), ref.astype(float)
            exact = exact if item in CONTINUOUS_ITEMS else float((pred == ref).mean())
        rows.append({"item": item, "n": len(both), "exact_match": exact,
                     "kappa": math.nan if item in CONTINUOUS_ITEMS else _kappa(pred, ref, item),
                     "icc": icc_2_1(np.column_stack([ref, pred])) if item in ICC_ITEMS else math.nan})
    return pd.DataFrame(rows, columns=["item", "n", "exact_match", "kappa", "icc"])
