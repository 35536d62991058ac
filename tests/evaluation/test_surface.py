"""Segmentation metrics against MedPy (HD, pooled HD95, ASSD, Dice) and MONAI (max-of-directed HD95)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from medpy.metric import binary as medpy_binary
from scipy import ndimage

from renal_nnunet.evaluation import segmentation_metrics
from renal_nnunet.evaluation.surface import surface_distances
from tests.evaluation.helpers import kits_kidney_crop, random_blob

RELATIVE = 1e-6


def assert_matches_medpy(pred: np.ndarray, ref: np.ndarray, spacing) -> dict:
    ours = segmentation_metrics(pred, ref, spacing)
    assert ours["dice"] == pytest.approx(medpy_binary.dc(pred, ref), rel=RELATIVE)
    assert ours["hd_mm"] == pytest.approx(medpy_binary.hd(pred, ref, voxelspacing=spacing), rel=RELATIVE)
    assert ours["hd95_mm"] == pytest.approx(medpy_binary.hd95(pred, ref, voxelspacing=spacing), rel=RELATIVE)
    assert ours["assd_mm"] == pytest.approx(medpy_binary.assd(pred, ref, voxelspacing=spacing), rel=RELATIVE)
    directed = (medpy_binary.asd(pred, ref, voxelspacing=spacing) + medpy_binary.asd(ref, pred, voxelspacing=spacing)) / 2
    assert ours["assd_mean_of_means_mm"] == pytest.approx(directed, rel=RELATIVE)
    return ours


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_blobs_match_medpy_with_anisotropic_spacing(seed):
    pred = random_blob((24, 40, 36), seed)
    ref = random_blob((24, 40, 36), seed + 100)
    assert pred.any() and ref.any() and not np.array_equal(pred, ref)
    ours = assert_matches_medpy(pred, ref, (2.5, 0.8, 0.7))
    assert ours["hd_mm"] > 0 and ours["hd95_mm"] <= ours["hd_mm"]


def test_masks_touching_the_array_border_match_medpy():
    # MedPy counts border voxels as surface; the union-box crop must keep that.
    pred = np.zeros((10, 12, 14), bool)
    ref = np.zeros_like(pred)
    pred[0:6, 0:7, 3:14] = True
    ref[2:10, 1:9, 0:10] = True
    assert_matches_medpy(pred, ref, (3.0, 0.9, 0.6))


@pytest.mark.parametrize("case_id", ["case_00569", "case_00061"])
def test_real_kits23_kidneys_match_medpy(kits23_dataset, case_id):
    labels, spacing = kits_kidney_crop(kits23_dataset, case_id)
    slice_axis = int(np.argmax(spacing))
    assert max(spacing) > 2 * min(spacing)  # thick slices: anisotropy matters
    ref = labels > 0
    # A plausible prediction: grown in-plane, masses' cores cut out, shifted by one slice.
    in_plane = np.ones((3, 3, 3), bool)
    in_plane[tuple(slice(0, 1) if a == slice_axis else slice(None) for a in range(3))] = False
    in_plane[tuple(slice(2, 3) if a == slice_axis else slice(None) for a in range(3))] = False
    pred = ndimage.binary_dilation(ref, structure=in_plane) & ~ndimage.binary_erosion(labels >= 2, iterations=1)
    pred = np.roll(pred, 1, axis=slice_axis)
    ours = assert_matches_medpy(pred, ref, spacing)
    assert 0.5 < ours["dice"] < 1.0


def test_hd95_max_matches_monai():
    import torch
    from monai.metrics import compute_hausdorff_distance

    pred, ref = random_blob((20, 30, 30), 5), random_blob((20, 30, 30), 6)
    spacing = (2.0, 0.75, 0.75)
    monai_value = compute_hausdorff_distance(
        torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None], include_background=True,
        percentile=95, directed=False, spacing=list(spacing),
    )
    assert segmentation_metrics(pred, ref, spacing)["hd95_max_mm"] == pytest.approx(float(monai_value), rel=1e-5)


def test_distances_are_in_mm_along_the_right_axis():
    pred = np.zeros((8, 8, 8), bool)
    ref = np.zeros_like(pred)
    pred[2, 4, 4] = True
    ref[4, 4, 4] = True  # two voxels apart along axis 0
    metrics = segmentation_metrics(pred, ref, (3.0, 1.0, 0.5))
    assert metrics["hd_mm"] == pytest.approx(6.0)
    assert metrics["assd_mm"] == pytest.approx(6.0)
    assert metrics["dice"] == 0.0
    assert metrics["pred_volume_ml"] == pytest.approx(1.5e-3)


def test_surface_dice_counts_surface_voxels_within_tolerance():
    pred = np.zeros((12, 12, 12), bool)
    pred[3:9, 3:9, 3:9] = True
    ref = np.roll(pred, 1, axis=2)  # shifted by 1 voxel = 2 mm
    distances = surface_distances(pred, ref, (1.0, 1.0, 2.0)).pooled_mm
    for tolerance in (0.5, 1.0, 2.0):
        expected = np.count_nonzero(distances <= tolerance) / distances.size
        assert segmentation_metrics(pred, ref, (1.0, 1.0, 2.0), tolerance_mm=tolerance)["surface_dice"] == pytest.approx(expected)
    assert segmentation_metrics(pred, ref, (1.0, 1.0, 2.0), tolerance_mm=2.0)["surface_dice"] == 1.0


def test_empty_mask_policy():
    empty = np.zeros((6, 6, 6), bool)
    full = empty.copy()
    full[2:4, 2:4, 2:4] = True
    both = segmentation_metrics(empty, empty, (1.0, 1.0, 1.0))
    assert both["dice"] == 1.0 and both["surface_dice"] == 1.0 and both["empty"] == "both"
    assert all(math.isnan(both[k]) for k in ("hd_mm", "hd95_mm", "hd95_max_mm", "assd_mm"))
    missed = segmentation_metrics(empty, full, (1.0, 1.0, 1.0))
    assert missed["dice"] == 0.0 and missed["surface_dice"] == 0.0 and missed["empty"] == "pred"
    assert math.isnan(missed["hd_mm"]) and math.isnan(missed["assd_mm"])
    assert segmentation_metrics(full, empty, (1.0, 1.0, 1.0))["empty"] == "ref"
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(empty, full, (1.0, 1.0, 1.0))


def test_bad_arguments_raise():
    mask = np.ones((4, 4, 4), bool)
    with pytest.raises(ValueError, match="spacing"):
        segmentation_metrics(mask, mask, (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        segmentation_metrics(mask, mask, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        segmentation_metrics(mask, mask[:3], (1.0, 1.0, 1.0))
