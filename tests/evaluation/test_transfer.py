"""What a segmentation shows on an unlabelled real CT: kidney volume per side, the share inside each
side's box, the masses, and whether each lies on a known cyst; counted from voxels the test places
itself. The shared real CT's cyst is outlined from the series itself."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.evaluation.transfer import (REAL_CT_CYST_SEED, REAL_CT_KIDNEY_BOXES, real_ct_findings,
                                              simple_cyst_outline)
from renal_nnunet.io import read_series_or_image

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
    assert sorted((mass.name, mass.ml) for mass in found.masses) == sorted(
        [("solid", pytest.approx(8 * voxel_ml)), ("cystic", pytest.approx(2 * voxel_ml))])
    assert found.false_masses == found.masses and found.cyst_ml is None, "no cyst outline: every mass is false"
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


def _water_sphere_ct(radius_mm: float = 12.0, spacing=(1.0, 1.0, 2.0)) -> tuple[sitk.Image, np.ndarray]:
    """A 40 x 60 x 60 voxel CT (z, y, x; 1 x 1 x 2 mm): fat (-100 HU) holding an enhancing kidney block
    (180 HU) with a water sphere (8 HU) in it; noise of 12 HU. Returns the CT and the sphere's mask."""
    rng = np.random.default_rng(0)
    hu = np.full((40, 60, 60), -100.0)
    hu[8:32, 15:45, 15:45] = 180.0
    z, y, x = np.ogrid[:40, :60, :60]
    sphere = ((x - 30) ** 2 + (y - 30) ** 2 + ((z - 16) * spacing[2]) ** 2) <= radius_mm ** 2
    hu[sphere] = 8.0
    ct = sitk.GetImageFromArray((hu + rng.normal(0, 12, hu.shape)).astype(np.int16))
    ct.SetSpacing(spacing)
    return ct, sphere


def test_a_water_cyst_is_outlined_and_a_mass_on_it_is_no_false_mass():
    ct, sphere = _water_sphere_ct()
    outline = sitk.GetArrayFromImage(simple_cyst_outline(ct, seed=(30, 30, 16), search_box=Box.whole(ct.GetSize())))
    assert 2 * (outline.astype(bool) & sphere).sum() / (outline.sum() + sphere.sum()) > 0.9
    seg = np.zeros(sphere.shape, np.uint8)
    seg[8:32, 15:45, 15:30] = OUTPUT_LABELS["kidney_right"]
    seg[sphere & (np.arange(60) < 30)[None, None, :]] = OUTPUT_LABELS["cystic"]  # half the cyst, labelled cystic
    seg[25:28, 35:38, 35:38] = OUTPUT_LABELS["solid"]  # and a solid speck elsewhere
    found = real_ct_findings(_seg(seg, ct.GetSpacing()), {"right": Box((15, 15, 8), (30, 30, 24)),
                                                           "left": Box((15, 15, 8), (30, 30, 24))},
                             simple_cyst_outline(ct, seed=(30, 30, 16), search_box=Box.whole(ct.GetSize())))
    by_name = {mass.name: mass for mass in found.masses}
    assert by_name["cystic"].on_cyst and not by_name["solid"].on_cyst
    assert [mass.name for mass in found.false_masses] == ["solid"]
    half = seg == OUTPUT_LABELS["cystic"]
    assert found.cyst_dice == pytest.approx(2 * (half & outline.astype(bool)).sum() / (half.sum() + outline.sum()))
    assert found.cyst_ml == pytest.approx(outline.sum() * 2 / 1000)
    assert "found as cystic" in found.cyst_text() and "(on the cyst)" in found.masses_text()
    with pytest.raises(ValueError, match="not of water density"):
        simple_cyst_outline(ct, seed=(20, 20, 25), search_box=Box.whole(ct.GetSize()))


def test_the_shared_real_ct_holds_a_simple_cyst_at_the_right_kidneys_upper_pole(realct_series):
    """The scan's README knows no renal mass; its right kidney's upper pole holds a round cyst of water
    density. Its outline lies in the right kidney's box, on the patient's right (patient x), and holds
    about 85 ml of 0-20 HU fluid."""
    ct = read_series_or_image(realct_series)
    outline = sitk.GetArrayFromImage(simple_cyst_outline(ct)).astype(bool)
    hu = sitk.GetArrayFromImage(ct)
    assert 75 <= outline.sum() * np.prod(ct.GetSpacing()) / 1000 <= 95
    assert 0 <= hu[outline].mean() <= 20 and hu[outline].std() < 20
    right_box = np.zeros(outline.shape, bool)
    right_box[REAL_CT_KIDNEY_BOXES["right"].slices] = True
    assert not (outline & ~right_box).any()
    centroid_x = ct.TransformContinuousIndexToPhysicalPoint([float(v) for v in np.argwhere(outline).mean(0)[::-1]])[0]
    box_centres_x = [ct.TransformContinuousIndexToPhysicalPoint([start + size / 2 for start, size in zip(box.start, box.size)])[0]
                     for box in REAL_CT_KIDNEY_BOXES.values()]
    assert centroid_x < np.mean(box_centres_x), "LPS: the patient's right has the smaller x"
    assert outline[REAL_CT_CYST_SEED[::-1]]
