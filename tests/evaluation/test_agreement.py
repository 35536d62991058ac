"""Agreement of predicted and reference nephrometry: ICC(2,1) against its published example, kappa
against scikit-learn, the empty policy, and ``evaluate --nephrometry-ref`` end to end."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from sklearn.metrics import cohen_kappa_score

from renal_nnunet.evaluation import agreement
from renal_nnunet.evaluation.agreement import icc_2_1, nephrometry_agreement

SHROUT_FLEISS_TABLE_2 = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
"""Six targets rated by four judges (Shrout & Fleiss 1979, Table 2); their Table 4 gives ICC(2,1) = .29."""


def test_icc_2_1_reproduces_shrout_and_fleiss_and_is_one_for_identical_raters():
    assert doctest.testmod(agreement).failed == 0
    assert icc_2_1(SHROUT_FLEISS_TABLE_2) == pytest.approx(0.2898, abs=1e-4)
    assert icc_2_1(np.array([[4, 4], [7, 7], [9, 9]])) == pytest.approx(1.0)
    assert math.isnan(icc_2_1(np.array([[5, 5], [5, 5]])))  # no variance: undefined
    assert math.isnan(icc_2_1(np.array([[5, 6]])))  # one mass


def test_agreement_uses_quadratic_kappa_for_points_and_plain_kappa_for_a():
    ref_r, pred_r = [1, 2, 3, 3, 2, 1], [1, 3, 3, 2, 2, 1]
    ref_a, pred_a = ["a", "p", "x", "a", "p", "x"], ["a", "p", "p", "a", "x", "x"]
    rows = pd.DataFrame({"status": ["TP"] * 6 + ["FP"], "pred_renal_r": pred_r + [3], "ref_renal_r": ref_r + [np.nan],
                         "pred_renal_a": pred_a + ["a"], "ref_renal_a": ref_a + [np.nan],
                         "pred_renal_score": [5, 6, 7, 8, 9, 10, 4], "ref_renal_score": [5, 6, 7, 8, 9, 9, np.nan]})
    table = nephrometry_agreement(rows).set_index("item")
    assert table.loc["renal_r", "n"] == 6 and table.loc["renal_r", "exact_match"] == pytest.approx(4 / 6)
    assert table.loc["renal_r", "kappa"] == pytest.approx(cohen_kappa_score(ref_r, pred_r, weights="quadratic"))
    assert table.loc["renal_a", "kappa"] == pytest.approx(cohen_kappa_score(ref_a, pred_a))
    assert math.isnan(table.loc["renal_r", "icc"]) and table.loc["renal_score", "icc"] > 0.9


def test_agreement_is_empty_without_scores_and_nan_for_a_single_category():
    assert nephrometry_agreement(pd.DataFrame({"status": ["TP"], "pred_renal_r": [np.nan], "ref_renal_r": [2]})).empty
    rows = pd.DataFrame({"status": ["TP", "TP"], "pred_renal_r": [1, 1], "ref_renal_r": [1, 1]})
    row = nephrometry_agreement(rows).iloc[0]
    assert row["n"] == 2 and row["exact_match"] == 1.0 and math.isnan(row["kappa"])


def test_evaluate_pairs_predicted_and_reference_scores_of_true_positive_masses(painted_kits23, tmp_path):
    """Predictions made from the references themselves agree perfectly, mass by mass."""
    from renal_nnunet.anatomy.label_maps import kits_anatomy
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders
    from renal_nnunet.nephrometry.cases import case_nephrometry, find_inputs, write_nephrometry

    cases = ("case_00137", "case_00515")
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    for case in cases:
        ct = sitk.ReadImage(str(painted_kits23 / case / "imaging.nii.gz"))
        seg = sitk.ReadImage(str(painted_kits23 / case / "segmentation.nii.gz"))
        anatomy = kits_anatomy(seg)
        pred = sitk.GetImageFromArray(np.where(anatomy.mass, 5, anatomy.side).astype(np.uint8))
        pred.CopyInformation(seg)
        sitk.WriteImage(pred, str(pred_dir / f"{case}_seg.nii.gz"))
        sitk.WriteImage(seg, str(ref_dir / f"{case}.nii.gz"))
        pd.DataFrame(case_nephrometry(ct, pred, "pipeline", case).rows).to_csv(pred_dir / f"{case}_lesions.csv", index=False)
    write_nephrometry([i for i in find_inputs(painted_kits23, None) if i[0] in cases], tmp_path / "scores", "kits",
                      figures=False)
    result = evaluate_folders(pred_dir, ref_dir, tmp_path / "out", EvaluationConfig(
        ref_format="kits", nephrometry_ref=tmp_path / "scores", figures=False))
    tp = result.per_lesion[result.per_lesion.status == "TP"]
    assert len(tp) == 19 and tp.ref_renal_score.notna().all()
    assert (tp.pred_renal_score == tp.ref_renal_score).all() and (tp.pred_renal_a == tp.ref_renal_a).all()
    table = pd.read_csv(tmp_path / "out" / "nephrometry_agreement.csv").set_index("item")
    assert (table.n == 19).all() and (table.exact_match.dropna() == 1.0).all()
    assert table.loc["renal_score", "icc"] == pytest.approx(1.0) and table.loc["c_index", "icc"] == pytest.approx(1.0)
    assert table.loc["renal_score", "kappa"] == pytest.approx(1.0)
    assert "Nephrometry: predicted vs reference" in (tmp_path / "out" / "summary.md").read_text()
