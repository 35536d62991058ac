"""CT -> grid -> CT on random geometries: every grid voxel holds what lies at its centre, and a
grid no coarser than the box gives the label map back unchanged.

Random affines: axis permutations and flips (slightly oblique half the time), spacing 0.5-5 mm,
non-zero origins, odd and even sizes, boxes touching the image border.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.grid import labels_to_grid, prepare_grid_ct
from renal_nnunet.inference.map_back import map_labels_to_source
from tests.geometry_roundtrip.truth import SEEDS, expected_on_grid, image_of, random_layout


@pytest.mark.parametrize("seed", SEEDS)
def test_each_grid_voxel_takes_the_label_of_the_source_voxel_nearest_its_centre(seed):
    layout = random_layout(seed)
    labels = np.random.default_rng(seed).integers(0, 4, layout.image.GetSize()[::-1]).astype(np.uint8)
    grid_labels, sidecar = labels_to_grid(image_of(labels, layout), layout.grid, layout.box)
    expected, tie = expected_on_grid(labels, layout, order=0)
    got = sitk.GetArrayFromImage(grid_labels)
    assert tie.mean() < 0.5
    np.testing.assert_array_equal(got[~tie], expected[~tie])
    assert sidecar == prepare_grid_ct(image_of(labels.astype(np.float32), layout), layout.grid, layout.box)[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_each_grid_voxel_of_the_ct_is_the_windowed_ct_interpolated_at_its_centre(seed):
    layout = random_layout(seed)
    ct = np.random.default_rng(seed).uniform(-400.0, 500.0, layout.image.GetSize()[::-1]).astype(np.float32)
    grid_ct, _ = prepare_grid_ct(image_of(ct, layout), layout.grid, layout.box)
    expected, _ = expected_on_grid(np.clip(ct, -120.0, 180.0), layout, order=1)
    np.testing.assert_allclose(sitk.GetArrayFromImage(grid_ct), expected, atol=2e-3)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_grid_no_coarser_than_the_box_gives_the_labels_back_unchanged(seed):
    """Each source voxel's cell has its centre within half a source voxel of the voxel's own
    centre, so nearest there and back is the identity (a shift applied both ways cancels here:
    the two tests above and the grid -> CT tests pin each direction to the truth)."""
    layout = random_layout(seed, voxels=(9, 24))
    layout = layout.with_box(layout.start, layout.size, grid=max(layout.size) + seed % 3)
    labels = np.random.default_rng(seed).integers(0, 4, layout.image.GetSize()[::-1]).astype(np.uint8)
    grid_labels, sidecar = labels_to_grid(image_of(labels, layout), layout.grid, layout.box)
    back = sitk.GetArrayFromImage(map_labels_to_source(grid_labels, sidecar))
    inside = layout.box.slices
    np.testing.assert_array_equal(back[inside], labels[inside])
    outside = np.ones(back.shape, bool)
    outside[inside] = False
    assert not back[outside].any()
