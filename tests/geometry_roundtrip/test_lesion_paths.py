"""CT -> lesion crop grid -> CT on random geometries: the classifier's crop holds the masked,
windowed CT at its grid centres, and a Grad-CAM made on the crop's grid lands on the lesion's
box of the CT (and on the whole CT after :func:`paste_on_grid`) where it was."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.crops import OUTSIDE_LESION_HU, lesion_crop
from renal_nnunet.anatomy.geometry import paste_on_grid
from renal_nnunet.classification.predict import _ensemble_cam
from tests.geometry_roundtrip.truth import SEEDS, expected_from_grid, expected_on_grid, image_of, paste, random_layout

LESION = 3


def _lesion_case(seed: int):
    """A random CT in HU, a lesion mask (lesion 3 in the layout's box, another lesion elsewhere),
    a margin (0 or up to 12 mm), and the lesion's box grown by it, computed here."""
    rng = np.random.default_rng(seed)
    layout = random_layout(seed)
    shape = layout.image.GetSize()[::-1]
    ct = rng.uniform(-400.0, 500.0, shape).astype(np.float32)
    mask = (rng.random(shape) < 0.02).astype(np.uint8)
    mask[layout.box.slices] = np.where(rng.random(layout.box.shape_zyx) < 0.6, LESION, 0)
    margin_mm = 0.0 if seed % 2 else float(rng.uniform(1.0, 12.0))
    voxels = np.argwhere(mask == LESION)
    pad = np.ceil(margin_mm / np.asarray(layout.image.GetSpacing())).astype(int)
    start = np.maximum(voxels.min(axis=0)[::-1] - pad, 0)
    stop = np.minimum(voxels.max(axis=0)[::-1] + 1 + pad, layout.image.GetSize())
    return layout.with_box(start, stop - start), ct, mask, margin_mm


def _on_box_only(layout):
    """The layout of an array cut to the box: the crop is resampled from the box alone, so
    beyond its faces the box's own edge values extend."""
    return layout.with_box((0, 0, 0), layout.size)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_lesion_crop_holds_the_masked_windowed_ct_at_its_grid_centres(seed):
    layout, ct, mask, margin_mm = _lesion_case(seed)
    crop, sidecar = lesion_crop(image_of(ct, layout), image_of(mask, layout), layout.grid, LESION, margin_mm)
    assert sidecar.box == Box(layout.start, layout.size) and sidecar.grid == layout.grid
    np.testing.assert_allclose(sidecar.source.origin_mm, layout.image.GetOrigin())
    masked = np.where(mask == LESION, np.clip(ct, -120.0, 180.0), OUTSIDE_LESION_HU)[layout.box.slices]
    expected, _ = expected_on_grid(masked, _on_box_only(layout), order=1)
    np.testing.assert_allclose(sitk.GetArrayFromImage(crop), expected, atol=2e-3)


class KnownCam:
    """What :func:`_ensemble_cam` takes from each fold: a pass whose Grad-CAM of the target class
    is a known map on the crop's grid (its own input protocol, ``cam(target_class)``)."""

    def __init__(self, grid_map: np.ndarray, target_class: int):
        self.grid_map, self.target_class = grid_map, target_class

    def cam(self, target_class: int) -> np.ndarray:
        return self.grid_map if target_class == self.target_class else np.zeros_like(self.grid_map)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_grad_cam_on_the_crop_grids_lands_on_the_lesion_box_of_the_ct(seed):
    """Two folds at different grids, each map the fold's own crop rescaled to [0, 1]: their mean
    on the CT is the linear interpolation of each at every source voxel of the lesion's box."""
    layout, ct, mask, margin_mm = _lesion_case(seed)
    ct_image = image_of(ct, layout)
    forwards, expected = [], 0.0
    for grid in (layout.grid, layout.grid + 3):
        crop, sidecar = lesion_crop(ct_image, image_of(mask, layout), grid, LESION, margin_mm)
        grid_map = (sitk.GetArrayFromImage(crop) - OUTSIDE_LESION_HU) / 300.0
        forwards.append((KnownCam(grid_map, target_class=2), sidecar))
        expected = expected + expected_from_grid(grid_map, layout.with_box(layout.start, layout.size, grid), order=1)[0]
    expected /= expected.max()
    cam = _ensemble_cam(ct_image, forwards, 2)
    np.testing.assert_allclose(sitk.GetArrayFromImage(cam), expected, atol=1e-5)
    np.testing.assert_allclose(cam.GetOrigin(), ct_image.TransformIndexToPhysicalPoint(layout.start), atol=1e-6)
    pasted = paste_on_grid(cam, ct_image)
    np.testing.assert_allclose(sitk.GetArrayFromImage(pasted), paste(expected.astype(np.float32), layout), atol=1e-5)
