"""A known point in patient coordinates (LPS mm) lands on the same grid voxel through every path
that computes it: each sidecar's grid geometry (whole CT, crop box, label grid, lesion crop, the
JSON the converter writes), the grid CT the network sees (read back from CTs that are ramps in
LPS x, y and z); and map-back of that one grid voxel labels the source voxel nearest the point
exactly when the convention puts that voxel's centre in the same cell."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.crops import lesion_crop
from renal_nnunet.anatomy.geometry import GridSidecar
from renal_nnunet.anatomy.grid import labels_to_grid, prepare_grid_ct
from renal_nnunet.inference.map_back import map_labels_to_source
from tests.geometry_roundtrip.truth import (
    SEEDS,
    TIE,
    image_of,
    lps_to_source_index,
    paste,
    random_layout,
    source_lps_mm,
    to_grid_index,
    to_source_index,
)

RAMP_HU = (-100.0, 160.0)
"""Ramp CTs stay inside the paper window, so windowing leaves them linear in LPS mm."""


def _interior(grid_index: np.ndarray, layout) -> bool:
    """Whether linear interpolation at these grid voxels' centres reads no voxel beyond the image
    (so it reproduces a ramp exactly)."""
    source = to_source_index(grid_index, layout)
    return bool(((source >= 0) & (source <= np.asarray(layout.image.GetSize()) - 1)).all())


def _known_point(seed: int, layout) -> tuple[np.ndarray, np.ndarray]:
    """A random LPS point (mm) in the box and the grid voxel whose cell holds it by the convention:
    not on a cell boundary, the cell and its six neighbours' centres inside the image."""
    rng = np.random.default_rng(seed)
    steps = np.vstack([np.zeros(3), np.eye(3), -np.eye(3)])
    for _ in range(1000):
        index = rng.uniform(np.asarray(layout.start) - 0.5, np.add(layout.start, layout.size) - 0.5)
        point_mm = np.asarray(layout.image.TransformContinuousIndexToPhysicalPoint(index.tolist()))
        grid_index = to_grid_index(lps_to_source_index(layout.image, point_mm), layout)[0]
        cell = np.floor(grid_index + 0.5).astype(int)
        if (np.abs(grid_index - cell) < 0.5 - TIE).all() and ((cell >= 1) & (cell <= layout.grid - 2)).all() \
                and _interior(cell + steps, layout):
            return point_mm, cell
    raise AssertionError("no interior point in this layout")


def _cell_from_ramps(layout, cell: np.ndarray, point_mm: np.ndarray) -> np.ndarray:
    """The grid voxel holding ``point_mm`` as the grid CT shows it: CTs that are ramps in LPS x, y
    and z give each grid voxel centre's LPS position, its neighbours give the grid's axes."""
    lps = source_lps_mm(layout.image)
    low, high = lps.reshape(-1, 3).min(axis=0), lps.reshape(-1, 3).max(axis=0)
    to_hu = (RAMP_HU[1] - RAMP_HU[0]) / (high - low)
    ramps = RAMP_HU[0] + (lps - low) * to_hu
    grid_mm = np.stack([sitk.GetArrayFromImage(prepare_grid_ct(image_of(ramps[..., axis].astype(np.float32), layout),
                                                               layout.grid, layout.box)[0])
                        for axis in range(3)], axis=-1)
    grid_mm = low + (grid_mm - RAMP_HU[0]) / to_hu  # (z, y, x, 3): LPS mm of each grid voxel's centre
    centre_of = lambda g: grid_mm[g[2], g[1], g[0]]  # noqa: E731
    axes = np.stack([(centre_of(cell + e) - centre_of(cell - e)) / 2 for e in np.eye(3, dtype=int)], axis=1)
    np.testing.assert_allclose(centre_of(cell), layout.image.TransformContinuousIndexToPhysicalPoint(
        to_source_index(cell, layout)[0].tolist()), atol=0.01)
    return cell + np.round(np.linalg.solve(axes, point_mm - centre_of(cell))).astype(int)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_patient_point_lands_on_the_same_grid_voxel_through_every_path(seed, tmp_path):
    """On the whole CT (the kidney stage's grid) and on a crop box (the mass stage's and the
    classifier's)."""
    box_layout = random_layout(seed, grid=(8, 26))
    for layout in (box_layout.with_box((0, 0, 0), box_layout.image.GetSize()), box_layout):
        point_mm, cell = _known_point(seed, layout)
        ct = image_of(np.zeros(layout.image.GetSize()[::-1], np.float32), layout)
        labels = image_of(np.zeros(layout.image.GetSize()[::-1], np.uint8), layout)
        lesion = image_of(paste(np.ones(layout.box.shape_zyx, np.uint8), layout), layout)
        sidecars = {"CT grid": prepare_grid_ct(ct, layout.grid, layout.box)[1],
                    "label grid": labels_to_grid(labels, layout.grid, layout.box)[1],
                    "lesion crop": lesion_crop(ct, lesion, layout.grid)[1]}
        sidecars["written sidecar"] = GridSidecar.from_json(sidecars["CT grid"].to_json(tmp_path / "case.json"))
        for path, sidecar in sidecars.items():
            found = np.round(sidecar.grid_geometry().mm_to_index(point_mm)[0]).astype(int)
            np.testing.assert_array_equal(found, cell, err_msg=path)
        np.testing.assert_array_equal(_cell_from_ramps(layout, cell, point_mm), cell, err_msg="grid CT values")
        one_voxel = np.zeros((layout.grid,) * 3, np.uint8)
        one_voxel[tuple(cell[::-1])] = 1
        back = map_labels_to_source(sitk.GetImageFromArray(one_voxel), sidecars["written sidecar"])
        voxel = np.floor(lps_to_source_index(layout.image, point_mm) + 0.5).astype(int)  # the nearest source voxel
        voxel_grid_index = to_grid_index(voxel, layout)[0]
        if (np.abs(voxel_grid_index - np.floor(voxel_grid_index + 0.5)) < 0.5 - TIE).all():
            in_cell = (np.floor(voxel_grid_index + 0.5) == cell).all()
            assert sitk.GetArrayFromImage(back)[tuple(voxel[::-1])] == in_cell, "map-back"
