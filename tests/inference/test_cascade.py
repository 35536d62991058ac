"""Kidney post-processing on known label maps (no model): sides, empty prediction, border."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.sides import paper_kidney_sides
from renal_nnunet.inference.cascade import kidney_boxes, kidneys_from_labels, lesion_sides
from renal_nnunet.synthetic import make_phantom


@pytest.fixture(scope="module")
def phantom_sides():
    phantom = make_phantom(3, shape_zyx=(26, 27, 36), spacing_zyx_mm=(10.0, 10.0, 10.0), masses_per_kidney=(0, 1))
    kits = sitk.GetArrayFromImage(phantom.labels)
    return phantom.ct, sitk.GetArrayFromImage(paper_kidney_sides(phantom.ct, kits, 5.0))


def _labels(result) -> np.ndarray:
    return sitk.GetArrayFromImage(result.labels)


def test_correct_sides_are_kept(phantom_sides):
    ct, sides = phantom_sides
    result = kidneys_from_labels(image_like(sides, ct), ct)
    assert np.array_equal(_labels(result), sides) and result.messages == ()
    assert result.labels.GetOrigin() == ct.GetOrigin() and result.labels.GetDirection() == ct.GetDirection()


def test_swapped_sides_are_reassigned_from_patient_coordinates(phantom_sides):
    ct, sides = phantom_sides
    swapped = np.choose(sides, [0, 2, 1]).astype(np.uint8)
    stray = swapped.copy()
    stray[0, 0, 0] = 1  # a one-voxel false positive far from the kidneys is dropped
    result = kidneys_from_labels(image_like(stray, ct), ct)
    assert np.array_equal(_labels(result), sides)
    assert any("re-assigned from patient coordinates" in m for m in result.messages)


def test_empty_prediction_is_reported(phantom_sides):
    ct, sides = phantom_sides
    result = kidneys_from_labels(image_like(np.zeros_like(sides), ct), ct)
    assert not _labels(result).any() and not result.found and result.messages[0].startswith("no kidney found")


def test_kidney_at_the_border_and_single_kidney_are_reported(phantom_sides):
    ct, sides = phantom_sides
    right_only = np.where(sides == 1, 1, 0).astype(np.uint8)
    z = np.nonzero(right_only.any(axis=(1, 2)))[0]
    cut = right_only[z.min() + 3:]  # the field of view ends inside the kidney
    cut_ct = ct[:, :, int(z.min()) + 3:]
    result = kidneys_from_labels(image_like(cut, cut_ct), cut_ct)
    assert any("right kidney touches the image border" in m for m in result.messages)
    assert any("only one kidney found (the right one)" in m for m in result.messages)


def test_each_lesion_takes_the_side_it_touches_else_the_box_holding_most_of_it():
    kidneys = np.zeros((12, 12, 30), np.uint8)
    kidneys[3:9, 3:9, 2:8] = 1  # right kidney (low x)
    kidneys[3:9, 3:9, 22:28] = 2
    components = np.zeros_like(kidneys)
    components[4:6, 4:6, 8:10] = 1  # touches the right kidney
    components[4:6, 4:6, 18:20] = 2  # 3 voxels from the left kidney: out of reach, inside its box only
    ct = sitk.GetImageFromArray(np.zeros(kidneys.shape, np.int16))
    ct.SetSpacing((1.0, 1.0, 1.0))
    boxes = kidney_boxes(image_like(kidneys, ct), margin_mm=5.0)
    assert boxes == {"right": ((0, 0, 0), (13, 12, 12)), "left": ((17, 0, 0), (13, 12, 12))}
    assert lesion_sides(image_like(components, ct), image_like(kidneys, ct), boxes) == {1: "right", 2: "left"}


def test_mass_probabilities_are_held_on_the_boxes_union_with_its_geometry():
    from renal_nnunet.inference.cascade import _sub_grid

    ct = sitk.GetImageFromArray(np.zeros((10, 20, 30), np.int16))
    ct.SetSpacing((0.5, 0.7, 2.0))
    ct.SetOrigin((3.0, -4.0, 5.0))
    ct.SetDirection((0, 0, 1, 0, -1, 0, -1, 0, 0))
    region = _sub_grid(ct, (2, 3, 4), (5, 6, 3))
    assert region.GetSize() == (5, 6, 3) and region.GetSpacing() == ct.GetSpacing()
    assert region.GetDirection() == ct.GetDirection()
    assert np.allclose(region.GetOrigin(), ct.TransformIndexToPhysicalPoint((2, 3, 4)))
