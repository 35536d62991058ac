"""The one union-box crop every metric uses (surface, KiTS, detection, whole-case evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from renal_nnunet.evaluation.crop import crop_to_union, union_box


def test_box_holds_both_masks_grown_by_the_margin():
    a, b = np.zeros((10, 12, 14), bool), np.zeros((10, 12, 14), np.uint8)
    a[2:4, 5, 6] = True
    b[6, 3:8, 9] = 4
    assert union_box((a, b)) == (slice(1, 8), slice(2, 9), slice(5, 11))
    assert union_box((a, b), margin_voxels=0) == (slice(2, 7), slice(3, 8), slice(6, 10))
    assert union_box((a, b), margin_voxels=3) == (slice(0, 10), slice(0, 11), slice(3, 13))


def test_margin_is_clipped_at_the_array_border():
    a = np.zeros((5, 6, 7), bool)
    a[0, 0, 0] = a[4, 5, 6] = True
    assert union_box((a, np.zeros_like(a))) == (slice(0, 5), slice(0, 6), slice(0, 7))


def test_empty_masks_have_no_box_and_crop_to_themselves():
    a = np.zeros((3, 4, 5), bool)
    assert union_box((a, a)) is None
    cropped = crop_to_union(a, a.copy())
    assert cropped[0] is a and cropped[1].shape == a.shape


def test_crop_cuts_both_masks_to_the_same_box():
    a, b = np.zeros((8, 8, 8), bool), np.zeros((8, 8, 8), bool)
    a[3, 3, 3], b[5, 4, 3] = True, True
    ca, cb = crop_to_union(a, b)
    assert ca.shape == cb.shape == (5, 4, 3)
    assert ca.sum() == cb.sum() == 1


def test_masks_of_different_shapes_raise():
    with pytest.raises(ValueError, match="differ in shape"):
        union_box((np.ones((2, 2, 2)), np.ones((2, 2, 3))))
