"""What a segmentation shows on an unlabelled real CT: kidney volume per side, the share inside each
side's box, the masses; counted from voxels the test places itself."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.evaluation.transfer import REAL_CT_KIDNEY_BOXES, real_ct_findings

BOXES = {"right": Box((10, 10, 2), (20, 20, 10)), "left": Box((60, 10, 2), (20, 20, 10))}


def _seg(array_zyx: np.ndarray, spacing=(2.0, 2.0, 5.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    image.SetSpacing(spacing)
    return image


def test_volumes_share_inside_the_boxes_and_masses_are_counted():
    seg = np.zeros((20, 40, 100), np.uint8)
    seg[4:8, 12:22, 12:22] = OUTPUT_LABELS["kidney_right"]  # 400 voxels, all in the right box
    seg[4:8, 12:22, 62:72] = OUTPUT_LABELS["kidney_left"]  # 400 in the left box ...
    seg[15:19, 30:35, 62:67] = OUTPUT_LABELS["kidney_left"]  # ... and 100 outside it
    seg[5:7, 14:16, 14:16] = OUTPUT_LABELS["solid"]  # a solid mass inside the right kidney (8 voxels)
    seg[5:6, 14:15, 64:66] = OUTPUT_LABELS["cystic"]  # a cystic mass in the left one (2 voxels)
    found = real_ct_findings(_seg(seg), BOXES)
    voxel_ml = 2 * 2 * 5 / 1000
    assert found.kidney_ml["right"] == pytest.approx((400 - 8) * voxel_ml)
    assert found.kidney_ml["left"] == pytest.approx((500 - 2) * voxel_ml)
    assert found.inside_box["right"] == 1.0
    assert found.inside_box["left"] == pytest.approx(398 / 498)
    assert found.inside_box_all == pytest.approx((392 + 398) / (392 + 498))
    assert sorted(found.masses) == sorted([("solid", pytest.approx(8 * voxel_ml)), ("cystic", pytest.approx(2 * voxel_ml))])
    assert not found.meets_bounds(), "tiny kidneys and two masses"
    assert found.masses_text().count(" ml") == 2


def test_plausible_kidneys_in_their_boxes_meet_the_bounds_and_a_box_outside_the_image_is_refused():
    seg = np.zeros((20, 40, 100), np.uint8)
    seg[2:12, 10:30, 10:30] = OUTPUT_LABELS["kidney_right"]  # 4000 voxels of 0.02 ml = 80 ml ...
    seg[2:12, 10:30, 60:80] = OUTPUT_LABELS["kidney_left"]
    found = real_ct_findings(_seg(seg, spacing=(2.5, 2.5, 5.0)), BOXES)  # ... 0.03125 ml each: 125 ml
    assert found.kidney_ml == {"right": pytest.approx(125.0), "left": pytest.approx(125.0)}
    assert found.meets_bounds() and found.masses_text() == "none"
    with pytest.raises(ValueError, match="outside the image"):
        real_ct_findings(_seg(seg), REAL_CT_KIDNEY_BOXES)
