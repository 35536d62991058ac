"""Lesion detection counts on constructed cases (the paper's TP/FN/FP definition)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.lesions import average_diameter_mm
from renal_nnunet.evaluation import (
    DetectionConfig,
    detect_lesions,
    detection_scores,
    joined_and_split,
    segmentation_metrics,
)
from tests.evaluation.helpers import ball

SHAPE = (24, 40, 40)
SPACING = (2.0, 0.8, 0.8)


def statuses(rows) -> list[str]:
    return sorted(rows["status"])


def test_one_prediction_covering_two_references_gives_two_tp_and_no_fp():
    ref = ball(SHAPE, (12, 20, 10), (3, 5, 5)) | ball(SHAPE, (12, 20, 28), (3, 5, 5))
    pred = np.zeros(SHAPE, bool)
    pred[10:15, 17:24, 8:31] = True  # one slab over both lesions
    rows = detect_lesions(pred, ref, SPACING)
    assert statuses(rows) == ["TP", "TP"]
    assert set(rows["pred_ids"]) == {"1"}
    assert detection_scores(rows) == {"tp": 2, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_matches_that_are_not_one_to_one_are_counted_per_case():
    """The paper's TPs hide a joined pair and a split lesion; the same masses need one to one."""
    two = ball(SHAPE, (12, 20, 10), (3, 5, 5)) | ball(SHAPE, (12, 20, 28), (3, 5, 5))
    slab = np.zeros(SHAPE, bool)
    slab[10:15, 17:24, 8:31] = True
    halves = two.copy()
    halves[:, :, 10] = False  # the first lesion cut in two
    joined = detect_lesions(slab, two, SPACING)
    split = detect_lesions(halves, two, SPACING)
    assert detection_scores(joined)["tp"] == detection_scores(split)["tp"] == 2
    assert joined_and_split(joined) == {"joined": 2, "split": 0}
    assert joined_and_split(split) == {"joined": 0, "split": 1}
    assert joined_and_split(detect_lesions(two, two, SPACING)) == {"joined": 0, "split": 0}
    # Component ids restart in every case: the same id in two cases joins nothing.
    ones = [detect_lesions(ball(SHAPE, (12, 20, 10), (3, 5, 5)), ball(SHAPE, (12, 20, 10), (3, 5, 5)), SPACING)] * 2
    cases = pd.concat([rows.assign(case_id=case) for case, rows in zip(("a", "b"), ones)])
    assert set(cases.pred_ids) == {"1"} and joined_and_split(cases) == {"joined": 0, "split": 0}


def test_prediction_outside_the_kidney_is_fp_and_a_missed_lesion_is_fn():
    ref = ball(SHAPE, (8, 10, 10), (3, 4, 4)) | ball(SHAPE, (16, 30, 30), (3, 4, 4))
    pred = ball(SHAPE, (8, 11, 11), (3, 4, 4)) | ball(SHAPE, (16, 8, 32), (2, 3, 3))  # second one is elsewhere
    rows = detect_lesions(pred, ref, SPACING)
    assert statuses(rows) == ["FN", "FP", "TP"]
    scores = detection_scores(rows)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 1)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(0.5)
    fn = rows[rows.status == "FN"].iloc[0]
    assert fn["dice"] == 0.0 and math.isnan(fn["hd_mm"]) and fn["pred_ids"] == ""
    fp = rows[rows.status == "FP"].iloc[0]
    assert fp["ref_id"] == 0 and fp["pred_average_diameter_mm"] > 0


def test_touching_lesions_follow_the_connectivity():
    ref = np.zeros(SHAPE, bool)
    ref[4:8, 4:8, 4:8] = True
    ref[8:12, 8:12, 8:12] = True  # touches the first only at a corner
    pred = ref.copy()
    assert statuses(detect_lesions(pred, ref, SPACING, DetectionConfig(connectivity=26))) == ["TP"]
    assert statuses(detect_lesions(pred, ref, SPACING, DetectionConfig(connectivity=6))) == ["TP", "TP"]


def test_pair_metrics_and_diameter_use_the_shared_definitions():
    ref = ball(SHAPE, (12, 20, 20), (4, 8, 8))
    pred = ball(SHAPE, (12, 21, 19), (4, 7, 9))
    row = detect_lesions(pred, ref, SPACING).iloc[0]
    expected = segmentation_metrics(pred, ref, SPACING)
    assert row["dice"] == pytest.approx(expected["dice"])
    assert row["hd_mm"] == pytest.approx(expected["hd_mm"])
    image = sitk.GetImageFromArray(ref.astype(np.uint8))
    image.SetSpacing(tuple(reversed(SPACING)))
    assert row["ref_average_diameter_mm"] == pytest.approx(average_diameter_mm(image))
    assert row["ref_average_diameter_mm"] == pytest.approx(16 * 0.8, rel=0.1)  # 8-voxel radius at 0.8 mm, 4 at 2 mm
    assert row["ref_volume_ml"] == pytest.approx(ref.sum() * np.prod(SPACING) / 1000)


def test_size_filter_drops_small_components_from_both_masks():
    ref = ball(SHAPE, (12, 20, 20), (4, 6, 6))
    pred = ref.copy()
    pred[2, 2, 2] = True  # one-voxel false positive (1.28 mm^3)
    assert statuses(detect_lesions(pred, ref, SPACING)) == ["FP", "TP"]
    assert statuses(detect_lesions(pred, ref, SPACING, DetectionConfig(min_size_voxels=2))) == ["TP"]
    assert statuses(detect_lesions(pred, ref, SPACING, DetectionConfig(min_volume_mm3=2.0))) == ["TP"]


def test_empty_masks_and_bad_config():
    empty = np.zeros(SHAPE, bool)
    rows = detect_lesions(empty, empty, SPACING)
    assert rows.empty
    scores = detection_scores(rows)
    assert scores["tp"] == scores["fp"] == scores["fn"] == 0 and math.isnan(scores["precision"])
    with pytest.raises(ValueError, match="connectivity"):
        DetectionConfig(connectivity=8)
