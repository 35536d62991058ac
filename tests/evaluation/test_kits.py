"""KiTS HEC metrics against an independent computation: the official kits21 formula on DeepMind's
``surface_distance`` package (the library the official evaluation imports) and MedPy's Dice."""

from __future__ import annotations

import numpy as np
import pytest
import surface_distance
from medpy.metric.binary import dc
from scipy import ndimage

from renal_nnunet.evaluation.kits import KITS_SURFACE_TOLERANCES_MM, kits_hec_metrics, pipeline_to_kits_labels
from tests.evaluation.helpers import kits_kidney_crop, random_blob

OFFICIAL_HECS = {"kidney_and_masses": (1, 2, 3), "masses": (2, 3), "tumor": (2,)}


def official_kits_metrics(pred: np.ndarray, ref: np.ndarray, spacing) -> dict[str, dict[str, float]]:
    """kits21/evaluation/metrics.py::compute_metrics_for_label, re-typed for every HEC."""
    results = {}
    for hec, labels in OFFICIAL_HECS.items():
        mask_pred, mask_gt = np.isin(pred, labels), np.isin(ref, labels)
        gt_empty, pred_empty = not mask_gt.any(), not mask_pred.any()
        dice = 1.0 if gt_empty and pred_empty else dc(mask_pred, mask_gt)
        if gt_empty and pred_empty:
            sd = 1.0
        elif gt_empty or pred_empty:
            sd = 0.0
        else:
            dist = surface_distance.compute_surface_distances(mask_gt, mask_pred, spacing)
            tolerance = KITS_SURFACE_TOLERANCES_MM[hec]
            overlap_gt = dist["surfel_areas_gt"][dist["distances_gt_to_pred"] <= tolerance].sum()
            overlap_pred = dist["surfel_areas_pred"][dist["distances_pred_to_gt"] <= tolerance].sum()
            sd = (overlap_gt + overlap_pred) / (dist["surfel_areas_gt"].sum() + dist["surfel_areas_pred"].sum())
        results[hec] = {"dice": dice, "surface_dice": sd}
    return results


def assert_close_to_official(pred, ref, spacing):
    ours, official = kits_hec_metrics(pred, ref, spacing), official_kits_metrics(pred, ref, spacing)
    for hec in OFFICIAL_HECS:
        assert ours[hec]["dice"] == pytest.approx(official[hec]["dice"], rel=1e-9)
        # MONAI accumulates surfel areas in float32: agreement to ~1e-7.
        assert ours[hec]["surface_dice"] == pytest.approx(official[hec]["surface_dice"], rel=1e-5, abs=1e-6)
    return ours


def random_kits_labels(seed: int, shape=(20, 32, 32)) -> np.ndarray:
    labels = random_blob(shape, seed, level=0.5).astype(np.uint8)
    labels[random_blob(shape, seed + 50, level=0.53) & (labels > 0)] = 2
    labels[random_blob(shape, seed + 99, level=0.535) & (labels > 0)] = 3
    return labels


@pytest.mark.parametrize("seed", [0, 1])
def test_random_label_maps_match_the_official_computation(seed):
    ref = random_kits_labels(seed)
    pred = np.roll(ref, 1, axis=2)  # 0.7 mm: inside the tolerances
    pred[random_blob(ref.shape, seed + 7, level=0.55) & (pred > 0)] = 3  # extra cysts
    assert set(np.unique(ref)) == {0, 1, 2, 3}
    ours = assert_close_to_official(pred, ref, (2.5, 0.8, 0.7))
    assert 0 < ours["masses"]["surface_dice"] < 1


def test_real_kits23_case_matches_the_official_computation(kits23_dataset):
    ref, spacing = kits_kidney_crop(kits23_dataset, "case_00569")
    pred = ref.copy()
    pred[ndimage.binary_dilation(ref == 2, iterations=2) & (ref > 0)] = 2  # tumour grown into the kidney
    pred = np.roll(pred, 2, axis=1)
    ours = assert_close_to_official(pred, ref, spacing)
    assert ours["kidney_and_masses"]["dice"] > 0.8


def test_identical_maps_score_one_and_empty_policy():
    ref = random_kits_labels(3)
    perfect = kits_hec_metrics(ref, ref, (1.0, 1.0, 1.0))
    assert all(v == {"dice": 1.0, "surface_dice": 1.0} for v in perfect.values())
    no_tumour = np.where(ref == 2, 1, ref).astype(np.uint8)
    both_empty = kits_hec_metrics(no_tumour, no_tumour, (1.0, 1.0, 1.0))["tumor"]
    assert both_empty == {"dice": 1.0, "surface_dice": 1.0}
    missed = kits_hec_metrics(no_tumour, ref, (1.0, 1.0, 1.0))["tumor"]
    assert missed == {"dice": 0.0, "surface_dice": 0.0}


def test_pipeline_labels_map_to_kits_labels():
    pipeline = np.array([0, 1, 2, 3, 4, 5, 6], np.uint8)
    assert pipeline_to_kits_labels(pipeline).tolist() == [0, 1, 1, 2, 3, 2, 2]
