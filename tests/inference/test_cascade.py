"""Kidney post-processing on known label maps (no model): sides, empty prediction, border."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.sides import paper_kidney_sides
from renal_nnunet.inference.cascade import kidneys_from_labels
from renal_nnunet.synthetic import make_phantom


@pytest.fixture(scope="module")
def phantom_sides():
    phantom = make_phantom(3, shape_zyx=(26, 27, 36), spacing_zyx_mm=(10.0, 10.0, 10.0), masses_per_kidney=(0, 1))
    kits = sitk.GetArrayFromImage(phantom.labels)
    return phantom.ct, sitk.GetArrayFromImage(paper_kidney_sides(phantom.ct, kits, 5.0))


def test_correct_sides_are_kept(phantom_sides):
    ct, sides = phantom_sides
    result = kidneys_from_labels(sides, ct)
    assert np.array_equal(result.labels, sides) and result.messages == ()


def test_swapped_sides_are_reassigned_from_patient_coordinates(phantom_sides):
    ct, sides = phantom_sides
    swapped = np.choose(sides, [0, 2, 1]).astype(np.uint8)
    stray = swapped.copy()
    stray[0, 0, 0] = 1  # a one-voxel false positive far from the kidneys is dropped
    result = kidneys_from_labels(stray, ct)
    assert np.array_equal(result.labels, sides)
    assert any("re-assigned from patient coordinates" in m for m in result.messages)


def test_empty_prediction_is_reported(phantom_sides):
    ct, sides = phantom_sides
    result = kidneys_from_labels(np.zeros_like(sides), ct)
    assert not result.labels.any() and result.messages[0].startswith("no kidney found")


def test_kidney_at_the_border_and_single_kidney_are_reported(phantom_sides):
    ct, sides = phantom_sides
    right_only = np.where(sides == 1, 1, 0).astype(np.uint8)
    z = np.nonzero(right_only.any(axis=(1, 2)))[0]
    cut = right_only[z.min() + 3:]  # the field of view ends inside the kidney
    cut_ct = ct[:, :, int(z.min()) + 3:]
    result = kidneys_from_labels(cut, cut_ct)
    assert any("right kidney touches the image border" in m for m in result.messages)
    assert any("only one kidney found (the right one)" in m for m in result.messages)
