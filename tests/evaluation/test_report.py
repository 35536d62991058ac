"""Summary statistics: which values a mean is over."""

from __future__ import annotations

import math

import pandas as pd

from renal_nnunet.evaluation.report import _markdown, summarise


def test_segmentation_means_skip_cases_without_the_structure_and_count_values():
    per_case = pd.DataFrame([
        {"case_id": "a", "structure": "mass_left", "dice": 1.0, "hd_mm": math.nan, "hd95_mm": math.nan,
         "hd95_max_mm": math.nan, "assd_mm": math.nan, "surface_dice": 1.0, "empty": "both"},
        {"case_id": "b", "structure": "mass_left", "dice": 0.5, "hd_mm": 4.0, "hd95_mm": 3.0,
         "hd95_max_mm": 3.5, "assd_mm": 1.0, "surface_dice": 0.6, "empty": ""},
        {"case_id": "c", "structure": "mass_left", "dice": 0.0, "hd_mm": math.nan, "hd95_mm": math.nan,
         "hd95_max_mm": math.nan, "assd_mm": math.nan, "surface_dice": 0.0, "empty": "pred"},
    ])
    summary, _ = summarise(per_case, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(columns=["case_id", "file", "problem"]), 5.0)
    rows = summary[summary.section == "segmentation"].set_index("metric")
    assert rows.loc["dice", "value"] == 0.25 and rows.loc["dice", "n"] == 2  # missed mass counts, absent one does not
    assert rows.loc["hd_mm", "value"] == 4.0 and rows.loc["hd_mm", "n"] == 1
    assert rows.loc["cases_empty_both", "value"] == 1 and rows.loc["cases_empty_pred", "value"] == 1


def _detected_lesions(pred_classes: list[str]) -> pd.DataFrame:
    """TP lesions of 3 mm (reference and predicted average diameter), all AML in the reference."""
    return pd.DataFrame([{"case_id": f"c{i}", "side": "left", "status": "TP", "ref_class": "AML", "pred_class": c,
                          "ref_average_diameter_mm": 3.0, "pred_average_diameter_mm": 3.0}
                         for i, c in enumerate(pred_classes)])


def test_markdown_says_when_small_lesions_were_not_classified():
    """A < 5 mm stratum left uncharacterised by predict has accuracy 0 by construction: the summary
    says so and how to measure it; a classified stratum gets no note."""
    errors = pd.DataFrame(columns=["case_id", "file", "problem"])
    for pred_classes, note in ((["too_small", "AML"], True), (["AML", "cystic"], False)):
        summary, classification = summarise(pd.DataFrame(), _detected_lesions(pred_classes), pd.DataFrame(), errors, 5.0)
        text = _markdown(summary, pd.DataFrame(), classification, errors, 5.0, pd.DataFrame())
        assert ("1 of the 2 detected lesions under 5 mm were not classified" in text) == note
        assert ("--min-diameter-mm 0" in text) == note
