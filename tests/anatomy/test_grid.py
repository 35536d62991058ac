"""Grid preparation shared with inference, and exact mapping back (sidecar round trip)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import GridSidecar, resample_from_grid, resample_to_grid
from renal_nnunet.anatomy.grid import BODY_BOX_MARGIN_MM, body_box, labels_to_grid, prepare_grid_ct
from renal_nnunet.anatomy.intensity import window_ct
from renal_nnunet.anatomy.sides import body_midline_mm, kidney_side_labels
from renal_nnunet.anatomy.sinus import fill_renal_sinus
from renal_nnunet.io import read_image, read_label_map

ROUND_TRIP_CASES = ("case_00038", "case_00061", "case_00569")
"""Small full-resolution cases (29-38 slices of 512 x 512), to keep CI fast."""


def test_prepare_grid_ct_windows_then_resamples_with_the_sidecar(tmp_path):
    rng = np.random.default_rng(1)
    ct = sitk.GetImageFromArray(rng.integers(-1000, 1500, (20, 40, 50)).astype(np.int16))
    ct.SetSpacing((0.8, 0.8, 2.5))
    ct.SetOrigin((-100.0, 20.0, 300.0))
    ct.SetDirection((0, 0, 1, 0, 1, 0, -1, 0, 0))
    grid_ct, sidecar = prepare_grid_ct(ct, 16, Box((5, 6, 2), (30, 20, 10)))
    expected, expected_sidecar = resample_to_grid(window_ct(ct), 16, "linear", Box((5, 6, 2), (30, 20, 10)))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(grid_ct), sitk.GetArrayFromImage(expected))
    assert sidecar == expected_sidecar
    values = sitk.GetArrayViewFromImage(grid_ct)
    assert values.min() >= -120 and values.max() <= 180 and grid_ct.GetPixelID() == sitk.sitkFloat32
    assert grid_ct.GetOrigin() == ct.GetOrigin() and grid_ct.GetSpacing() == (1.0, 1.0, 1.0)
    assert GridSidecar.from_json(sidecar.to_json(tmp_path / "s.json")) == sidecar


@pytest.mark.parametrize("case_id", ROUND_TRIP_CASES)
def test_paper_kidneys_round_trip_through_the_128_grid_with_dice_above_095(kits23_dataset, painted_kits23, case_id):
    labels = read_label_map(kits23_dataset / case_id / "segmentation.nii.gz", {0, 1, 2, 3})
    midline = body_midline_mm(read_image(painted_kits23 / case_id / "imaging.nii.gz"))  # same patient space
    sides = fill_renal_sinus(kidney_side_labels(sitk.Cast(labels > 0, sitk.sitkUInt8), midline))
    grid_labels, sidecar = labels_to_grid(sides, 128)
    back = resample_from_grid(sitk.GetArrayFromImage(grid_labels), sidecar, "nearest")
    original = sitk.GetArrayFromImage(sides)
    assert back.shape == original.shape
    for side in (1, 2):
        dice = 2 * ((back == side) & (original == side)).sum() / ((back == side).sum() + (original == side).sum())
        assert dice >= 0.95, f"{case_id} side {side}: round-trip Dice {dice:.3f}"


@pytest.mark.parametrize("start, size", [((5, 7, 3), (20, 30, 17)), ((40, 0, 20), (20, 13, 20)), ((0, 0, 0), (60, 50, 40))])
def test_a_crop_box_is_windowed_and_resampled_as_if_the_whole_ct_were(start, size):
    """Only the voxels the interpolation reads are windowed (no full-size float copy of a long
    CT per kidney box), with the same grid values as windowing the whole CT first."""
    rng = np.random.default_rng(0)
    ct = sitk.GetImageFromArray(rng.integers(-1000, 1500, (40, 50, 60)).astype(np.int16))
    ct.SetSpacing((0.8, 0.7, 2.5))
    ct.SetOrigin((-10.0, 20.0, 30.0))
    ct.SetDirection((0, 0, -1, 0, 1, 0, 1, 0, 0))
    labels = sitk.GetImageFromArray(rng.integers(0, 3, (40, 50, 60)).astype(np.uint8))
    labels.CopyInformation(ct)
    windowed_whole = sitk.Clamp(sitk.Cast(ct, sitk.sitkFloat32), sitk.sitkFloat32, -120.0, 180.0)
    for grid in (8, 32):
        grid_ct, sidecar = prepare_grid_ct(ct, grid, Box(start, size))
        expected, expected_sidecar = resample_to_grid(windowed_whole, grid, "linear", Box(start, size))
        assert sidecar == expected_sidecar and grid_ct.GetOrigin() == expected.GetOrigin()
        np.testing.assert_allclose(sitk.GetArrayViewFromImage(grid_ct), sitk.GetArrayViewFromImage(expected), atol=1e-4)
        cropped_labels, _ = labels_to_grid(labels, grid, Box(start, size))
        nearest_whole = sitk.Resample(labels, sidecar.grid_geometry().reference_image(), sitk.Transform(), sitk.sitkNearestNeighbor,
                                      0.0, sitk.sitkUInt8, True)
        assert np.array_equal(sitk.GetArrayViewFromImage(cropped_labels), sitk.GetArrayViewFromImage(nearest_whole))


def _trunk_on_a_table() -> tuple[sitk.Image, np.ndarray]:
    """A 480 mm field of view (4 mm voxels, 5 mm slices) holding a 360 x 240 mm trunk lying on a
    16 mm pad (-400 HU) that spans the whole width under it, as on the shared real CT; returns the
    CT and the trunk mask (z, y, x)."""
    z, y, x = np.indices((16, 120, 120), dtype=float)
    trunk = ((x - 60) / 45) ** 2 + ((y - 48) / 30) ** 2 <= 1
    ct = np.full(trunk.shape, -1000, np.int16)
    ct[:, 78:82, :] = -400  # pad, touching the trunk's back (y 78)
    ct[trunk] = 40
    ct[trunk & (((x - 40) / 6) ** 2 + ((y - 60) / 8) ** 2 <= 1)] = 180  # a kidney
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((4.0, 4.0, 5.0))
    image.SetOrigin((-240.0, -200.0, 50.0))
    return image, trunk


def _box_extent_mm(image: sitk.Image, box: Box) -> np.ndarray:
    """(min, max) LPS mm per axis of the box's voxel centres: the box as the patient sees it."""
    corners = [image.TransformIndexToPhysicalPoint([int(c) for c in corner])
               for corner in np.array(np.meshgrid(*zip(box.start, np.subtract(box.stop, 1)))).T.reshape(-1, 3)]
    return np.stack([np.min(corners, axis=0), np.max(corners, axis=0)])


def test_the_body_box_holds_the_trunk_not_the_table_or_the_air_in_any_storage_order():
    """The kidney stage's grid covers the trunk plus the margin whatever the field of view: the
    table under the back, which spans the whole width, does not widen it; the same patient stored
    x-flipped and with axes permuted gets the same box in patient mm."""
    image, trunk = _trunk_on_a_table()
    box = body_box(image)
    pad = int(np.ceil(BODY_BOX_MARGIN_MM / 4.0))
    trunk_box = Box.of_nonzero(trunk)
    assert box.start[0] == trunk_box.start[0] - pad and box.stop[0] == trunk_box.stop[0] + pad  # not the table's width
    assert box.start[1] == trunk_box.start[1] - pad and box.stop[1] <= 82 + pad  # at most the pad under the back
    assert box.start[2] == 0 and box.stop[2] == image.GetSize()[2]
    assert box.contains(Box.of_nonzero(sitk.GetArrayViewFromImage(image) > 100))  # the kidney
    assert prepare_grid_ct(image, 16)[1].box == box  # what a whole-CT stage resamples

    extent = _box_extent_mm(image, box)
    flipped = sitk.Flip(image, [True, False, False])
    permuted = sitk.PermuteAxes(flipped, [2, 0, 1])
    for stored in (flipped, permuted):
        assert stored.GetDirection() != image.GetDirection()
        np.testing.assert_allclose(_box_extent_mm(stored, body_box(stored)), extent, atol=1e-6)


def test_a_ct_without_tissue_has_no_body_box():
    with pytest.raises(ValueError, match="does not look like a CT in HU"):
        body_box(sitk.GetImageFromArray(np.full((4, 8, 8), -1000, np.int16)))
