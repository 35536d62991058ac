"""Fixed-grid resampling maps back exactly, and patient coordinates come from the geometry."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box, bounding_box_with_margin
from renal_nnunet.anatomy.geometry import (
    GridSidecar,
    ImageGeometry,
    paste_on_grid,
    patient_left_mm,
    resample_from_grid,
    resample_to_grid,
)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _ellipsoid(shape_zyx, centre_zyx, radii_zyx) -> np.ndarray:
    grid = np.indices(shape_zyx, dtype=float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre_zyx, radii_zyx)) <= 1.0


def _oblique_image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.7, 2.5))
    image.SetOrigin((-120.0, 30.0, 400.0))
    image.SetDirection((0, 0, 1, 0, -1, 0, -1, 0, 0))  # an ('I', 'P', 'L')-like permutation, as in KiTS
    return image


def test_grid_image_has_nominal_spacing_source_origin_and_lps_axes():
    image = _oblique_image(np.zeros((20, 60, 50), np.float32))
    grid_image, sidecar = resample_to_grid(image, 16)
    assert grid_image.GetSize() == (16, 16, 16)
    assert grid_image.GetSpacing() == (1.0, 1.0, 1.0)
    assert grid_image.GetOrigin() == image.GetOrigin()
    # source axes (x: inferior, y: anterior, z: left) reordered to run along LPS x, y, z
    np.testing.assert_allclose(grid_image.GetDirection(), np.eye(3).ravel())
    np.testing.assert_allclose(sidecar.grid_spacing_mm, np.array([50, 60, 20]) * np.array([0.7, 0.7, 2.5]) / 16)
    physical = sidecar.grid_geometry().reference_image()
    np.testing.assert_allclose(physical.GetSpacing(), np.array([20 * 2.5, 60 * 0.7, 50 * 0.7]) / 16)


def test_round_trip_reproduces_a_label_map(tmp_path):
    mask = _ellipsoid((40, 120, 100), (18, 60, 45), (10, 30, 22))
    image = _oblique_image(mask.astype(np.float32))
    grid_image, sidecar = resample_to_grid(image, 48, "linear")
    sidecar.to_json(tmp_path / "case.json")
    restored = GridSidecar.from_json(tmp_path / "case.json")
    assert restored == sidecar
    back = resample_from_grid(sitk.GetArrayFromImage(grid_image), restored, "linear") > 0.5
    assert back.shape == mask.shape
    assert _dice(back, mask) > 0.95


def test_crop_round_trip_lands_on_the_same_voxels():
    mask = _ellipsoid((40, 120, 100), (18, 40, 70), (6, 15, 12))
    image = _oblique_image(mask.astype(np.float32))
    box = bounding_box_with_margin(mask, image.GetSpacing(), margin_mm=10.0)
    start, size = box.start, box.size
    grid_image, sidecar = resample_to_grid(image, 32, "linear", box)
    back = resample_from_grid(sitk.GetArrayFromImage(grid_image), sidecar, "linear", fill_value=0.0) > 0.5
    assert _dice(back, mask) > 0.95
    outside = np.ones_like(mask)
    outside[start[2]:start[2] + size[2], start[1]:start[1] + size[1], start[0]:start[0] + size[0]] = False
    assert not back[outside].any()
    box = tuple(slice(s, s + n) for s, n in zip(reversed(start), reversed(size)))
    crop_only = resample_from_grid(sitk.GetArrayFromImage(grid_image), sidecar, "linear", crop_only=True) > 0.5
    np.testing.assert_array_equal(crop_only, back[box])


def test_bounding_box_margin_is_in_mm_and_clipped():
    mask = np.zeros((10, 50, 50), bool)
    mask[5, 20:30, 0:5] = True
    box = bounding_box_with_margin(mask, (0.5, 0.5, 2.0), margin_mm=2.0)
    # x: 0..5 grown by 4 voxels, clipped at 0; y: 20..30 grown by 4; z: slice 5 grown by 1.
    assert box == Box((0, 16, 4), (9, 18, 3))
    with pytest.raises(ValueError, match="at least 0 mm"):
        bounding_box_with_margin(mask, (0.5, 0.5, 2.0), margin_mm=-1.0)


def test_patient_left_follows_the_direction_not_the_array_index():
    array = np.zeros((4, 4, 4), np.uint8)
    image = sitk.GetImageFromArray(array)
    low_index, high_index = np.array([[0, 0, 0]]), np.array([[0, 0, 3]])
    assert patient_left_mm(image, high_index) > patient_left_mm(image, low_index)
    flipped = sitk.Flip(image, [True, False, False])  # same voxels, x axis now points to the right
    assert patient_left_mm(flipped, high_index) < patient_left_mm(flipped, low_index)


def test_grid_array_is_the_same_whatever_the_storage_orientation():
    """A KiTS-like (I, P, L) volume and its LPS-stored copy reach the network as the same array."""
    mask = _ellipsoid((40, 120, 100), (18, 40, 70), (6, 15, 12)).astype(np.float32)
    kits_like = _oblique_image(mask)
    lps = sitk.DICOMOrient(kits_like, "LPS")
    assert lps.GetDirection() != kits_like.GetDirection()
    grid_a, sidecar_a = resample_to_grid(kits_like, 32, "linear")
    grid_b, sidecar_b = resample_to_grid(lps, 32, "linear")
    np.testing.assert_allclose(sitk.GetArrayFromImage(grid_a), sitk.GetArrayFromImage(grid_b), atol=1e-5)
    np.testing.assert_allclose(grid_a.GetDirection(), np.eye(3).ravel(), atol=1e-9)
    for grid_image, sidecar, source in ((grid_a, sidecar_a, kits_like), (grid_b, sidecar_b, lps)):
        back = resample_from_grid(sitk.GetArrayFromImage(grid_image), sidecar, "linear") > 0.5
        assert _dice(back, sitk.GetArrayFromImage(source) > 0.5) > 0.95


def test_a_box_map_lands_on_its_voxels_of_the_full_grid_even_reoriented():
    full = _oblique_image(np.arange(20 * 30 * 25, dtype=np.float32).reshape(20, 30, 25))
    start, size = (3, 7, 11), (9, 5, 4)  # ITK (x, y, z)
    box = sitk.RegionOfInterest(full, size, start)
    for region in (box, sitk.DICOMOrient(box, "LPS")):  # e.g. a map computed on the canonical grid
        pasted = paste_on_grid(region, full)
        assert pasted.GetSize() == full.GetSize() and pasted.GetOrigin() == full.GetOrigin()
        expected = np.zeros((20, 30, 25), np.float32)
        window = tuple(slice(s, s + n) for s, n in zip(reversed(start), reversed(size)))
        expected[window] = sitk.GetArrayViewFromImage(full)[window]
        np.testing.assert_array_equal(sitk.GetArrayFromImage(pasted), expected)
    shifted = sitk.Image(box)
    shifted.SetOrigin(np.asarray(box.GetOrigin()) + 0.3)  # between voxel centres
    with pytest.raises(ValueError, match="not a sub-grid"):
        paste_on_grid(shifted, full)


def test_one_geometry_type_for_images_sidecars_and_phantoms(tmp_path):
    """A grid sidecar holds the source's ImageGeometry, its crop box and the grid (its JSON fields
    unchanged), and ``image_like`` puts an array on that geometry."""
    import json

    from renal_nnunet.anatomy.geometry import GridSidecar, ImageGeometry, image_like, resample_to_grid

    ct = sitk.GetImageFromArray(np.arange(6 * 7 * 8, dtype=np.float32).reshape(6, 7, 8))
    ct.SetSpacing((0.5, 0.8, 2.5))
    ct.SetOrigin((10.0, -3.0, 7.0))
    ct.SetDirection((0, 0, 1, 0, -1, 0, -1, 0, 0))
    _, sidecar = resample_to_grid(ct, 4, "linear", Box((1, 2, 0), (5, 4, 6)))
    assert ImageGeometry.of(ct) == sidecar.source == ImageGeometry.from_parts(
        sidecar.source.size, sidecar.source.spacing_mm, sidecar.source.origin_mm, sidecar.source.direction)
    assert sidecar.box == Box((1, 2, 0), (5, 4, 6)) and sidecar.grid == 4
    assert sidecar.source.shape_zyx == (6, 7, 8)
    assert list(json.loads(sidecar.to_json(tmp_path / "s.json").read_text())) == [
        "size", "spacing_mm", "origin_mm", "direction", "crop_start", "crop_size", "grid"]
    assert GridSidecar.from_json(tmp_path / "s.json") == sidecar
    again = image_like(sitk.GetArrayFromImage(ct), sidecar.source.reference_image())
    assert ImageGeometry.of(again) == ImageGeometry.of(ct)
    with pytest.raises(ValueError, match="not on the grid"):
        image_like(np.zeros((8, 7, 6), np.float32), ct)


def test_a_box_of_a_grid_starts_at_its_first_voxel_in_patient_space():
    """A box's geometry (what map-back resamples onto) is the region ITK would cut, reoriented CT included."""
    image = sitk.Image((40, 30, 20), sitk.sitkUInt8)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-12.0, 40.5, 300.0))
    image.SetDirection((0, 0, 1, 0, -1, 0, -1, 0, 0))
    start, size = (3, 7, 11), (10, 12, 5)
    expected = sitk.RegionOfInterest(image, size, start)
    box = ImageGeometry.of(image).box(Box(start, size))
    assert box.size == size and box.spacing_mm == expected.GetSpacing() and box.direction == expected.GetDirection()
    np.testing.assert_allclose(box.origin_mm, expected.GetOrigin(), atol=1e-9)
