"""Sides of kidneys and masses in both label conventions, decided in patient coordinates."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.label_maps import (
    image_centre_x_mm,
    kits_anatomy,
    midline_between_kidneys_mm,
    pipeline_anatomy,
)
from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.evaluation.evaluate import crop_to_labels
from tests.evaluation.helpers import ball

SHAPE = (16, 32, 48)
RIGHT, LEFT, SOLID, CYSTIC = (OUTPUT_LABELS[n] for n in ("kidney_right", "kidney_left", "solid", "cystic"))


def image(array: np.ndarray, flip_x: bool) -> sitk.Image:
    """LPS geometry; with ``flip_x`` the x index runs towards the patient's right."""
    img = sitk.GetImageFromArray(array.astype(np.uint8))
    img.SetSpacing((1.0, 1.0, 2.0))
    if flip_x:
        img.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
        img.SetOrigin((47.0, 0.0, 0.0))
    return img


def test_pipeline_masses_take_the_side_of_the_kidney_they_touch_or_the_nearest():
    seg = np.zeros(SHAPE, np.uint8)
    seg[ball(SHAPE, (8, 16, 10), (5, 8, 6))] = RIGHT
    seg[ball(SHAPE, (8, 16, 38), (5, 8, 6))] = LEFT
    seg[ball(SHAPE, (8, 16, 15), (2, 3, 3))] = SOLID  # on the edge of the x=10 kidney
    seg[ball(SHAPE, (8, 3, 30), (1, 1, 1))] = CYSTIC  # touches nothing, nearer the x=38 kidney
    anatomy = pipeline_anatomy(image(seg, flip_x=False))
    assert set(anatomy.side[(seg == SOLID)]) == {RIGHT}
    assert set(anatomy.side[(seg == CYSTIC)]) == {LEFT}
    assert anatomy.mass.sum() == np.isin(seg, (SOLID, CYSTIC)).sum()
    assert set(np.unique(anatomy.mass_class)) == {0, SOLID, CYSTIC}


def test_pipeline_masses_follow_the_pipeline_s_side_rule():
    """The evaluation assigns a mass's side as the pipeline does (``mass_side``: kidney labels within
    two 6-connected voxel steps), not by its one-voxel shell: here the shell holds one right-kidney
    voxel (diagonal), the two-step reach two left-kidney voxels."""
    from renal_nnunet.anatomy.sides import mass_side

    array = np.zeros((5, 5, 12), np.uint8)
    array[2, 2, 5] = SOLID
    array[1, 1, 4] = RIGHT
    array[2, 2, 7] = array[2, 4, 5] = LEFT
    anatomy = pipeline_anatomy(image(array, flip_x=False))
    assert anatomy.side[2, 2, 5] == LEFT == mass_side(array == SOLID, array)


def test_kits_sides_follow_patient_x_not_array_index():
    kits = np.zeros(SHAPE, np.uint8)
    kits[ball(SHAPE, (8, 16, 10), (5, 8, 6))] = 1
    kits[ball(SHAPE, (8, 16, 38), (5, 8, 6))] = 1
    kits[ball(SHAPE, (8, 16, 38), (2, 3, 3))] = 3
    plain, flipped = kits_anatomy(image(kits, flip_x=False)), kits_anatomy(image(kits, flip_x=True))
    low_x = ball(SHAPE, (8, 16, 10), (5, 8, 6))
    assert set(plain.side[low_x]) == {RIGHT} and set(flipped.side[low_x]) == {LEFT}
    cyst = kits == 3
    assert set(plain.side[cyst]) == {LEFT} and set(flipped.side[cyst]) == {RIGHT}
    assert set(plain.mass_class[cyst]) == {CYSTIC}


def test_a_lone_kidney_in_a_crop_keeps_the_side_of_the_uncropped_image():
    # Regression: cropping to the labels moved the fallback midline (image centre) onto the kidney.
    kits = np.zeros(SHAPE, np.uint8)
    kits[ball(SHAPE, (8, 16, 38), (5, 8, 6))] = 1  # one kidney, at +x: the patient's left
    full = image(kits, flip_x=False)
    assert midline_between_kidneys_mm(full) == image_centre_x_mm(full)
    _, cropped = crop_to_labels(full, full)
    anatomy = kits_anatomy(cropped, centre_x_mm=image_centre_x_mm(full))
    assert set(anatomy.side[sitk.GetArrayViewFromImage(cropped) > 0]) == {LEFT}
