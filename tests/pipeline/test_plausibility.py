"""Plausibility checks on hand-built scans: chest and head levels, kidney volumes, mass share."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.outputs.records import LesionRecord
from renal_nnunet.pipeline.plausibility import kidney_level_problem, kidney_problems

SPACING_MM = (2.0, 2.0, 5.0)


def _scan(body_axes_mm=(160.0, 110.0), lungs=False):
    """(CT, kidney labels): an elliptic body of soft tissue (x, y semi-axes in mm), optionally
    holding two lungs, with a right and a left 'kidney' blob at the middle slices."""
    shape = (12, 128, 180)
    z, y, x = np.indices(shape)
    yy, xx = (y - shape[1] / 2) * SPACING_MM[1], (x - shape[2] / 2) * SPACING_MM[0]
    body = (xx / body_axes_mm[0]) ** 2 + (yy / body_axes_mm[1]) ** 2 < 1
    ct = np.where(body, 40, -1000).astype(np.int16)
    if lungs:
        for centre in (-70.0, 70.0):
            ct[((xx - centre) / 55) ** 2 + (yy / 75) ** 2 < 1] = -850
    kidneys = np.zeros(shape, np.uint8)
    for value, centre in ((1, -60.0), (2, 60.0)):
        kidneys[(((xx - centre) / 25) ** 2 + ((yy - 40) / 30) ** 2 < 1) & (abs(z - 6) < 3)] = value
    images = []
    for array in (ct, kidneys):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(SPACING_MM)
        images.append(image)
    return images


def test_abdomen_level_passes_chest_and_head_levels_are_no_kidney_in_view():
    assert kidney_level_problem(*_scan()) is None
    assert "no kidney in view" in kidney_level_problem(*_scan(lungs=True)) and "lungs" in kidney_level_problem(
        *_scan(lungs=True))
    head = kidney_level_problem(*_scan(body_axes_mm=(75.0, 90.0)))
    assert "no kidney in view" in head and "head" in head


def _record(side, volume_ml):
    return LesionRecord(1, side, 5, volume_ml, 20.0, 40.0, 60.0, (0.0, 0.0, 0.0), "solid")


@pytest.mark.parametrize("kidney_voxels, lesions, expected", [
    (7000, [], []),                                                     # 140 ml: a normal adult kidney
    (1000, [], ["right kidney volume 20 ml"]),                          # far below the adult range
    (30000, [], ["right kidney volume 600 ml"]),                        # far above
    (7000, [_record("right", 200.0)], ["masses make up 59 % of the right"]),
    (7000, [_record("left", 200.0)], ["masses make up 100 % of the left"]),  # a "kidney" that is all mass
])
def test_kidney_volume_and_mass_share(kidney_voxels, lesions, expected):
    array = np.zeros(40 * 40 * 40, np.uint8)
    array[:kidney_voxels] = 1
    seg = sitk.GetImageFromArray(array.reshape(40, 40, 40))
    seg.SetSpacing((2.0, 2.0, 5.0))  # 20 mm³ = 0.02 ml per voxel
    problems = kidney_problems(seg, lesions, {"right": 1, "left": 2})
    assert len(problems) == len(expected) and all(e in p for e, p in zip(expected, problems))
