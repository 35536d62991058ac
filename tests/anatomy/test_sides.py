"""Left/right is a safety property: checked on every real KiTS23 case and under axis permutations."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import KIDNEY_STAGE_LABELS
from renal_nnunet.anatomy.sides import body_midline_mm, kidney_side_labels, paper_kidney_sides
from renal_nnunet.io import read_image, read_label_map

RIGHT, LEFT = KIDNEY_STAGE_LABELS["kidney_right"], KIDNEY_STAGE_LABELS["kidney_left"]
SINGLE_KIDNEY_CASES = {"case_00165", "case_00194", "case_00293"}
"""Only one kidney is labelled (checked by eye on the label maps: 00165 and 00194 right, 00293 left).
case_00582 is one kidney-and-tumour component crossing the midline by ~10 cm: split, both sides."""


def _ras_x_mm(image: nib.Nifti1Image, mask: np.ndarray) -> np.ndarray:
    """RAS x (mm, +x = patient RIGHT) of a mask's voxels, from nibabel's affine (independent of ITK)."""
    return nib.affines.apply_affine(image.affine, np.argwhere(mask))[:, 0]


def _sides_for(case_dir, tmp_path):
    ct = read_image(case_dir / "imaging.nii.gz")
    labels = read_label_map(case_dir / "segmentation.nii.gz", {0, 1, 2, 3}, reference=ct)
    sides = paper_kidney_sides(ct, sitk.GetArrayFromImage(labels), 7.0)
    path = tmp_path / f"{case_dir.name}_sides.nii.gz"
    sitk.WriteImage(sides, str(path))
    return sides, path


def test_left_kidney_lies_on_patient_left_in_every_real_kits23_case(painted_kits23, tmp_path):
    case_dirs = sorted(painted_kits23.glob("case_*"))
    assert len(case_dirs) == 32
    for case_dir in case_dirs:
        _, path = _sides_for(case_dir, tmp_path)
        sides_nib = nib.load(path)
        sides = np.asarray(sides_nib.dataobj)
        ct_nib = nib.load(case_dir / "imaging.nii.gz")
        body_ras_x = np.median(_ras_x_mm(ct_nib, np.asarray(ct_nib.dataobj) > -500))
        present = set(np.unique(sides)) - {0}
        if case_dir.name in SINGLE_KIDNEY_CASES:
            assert len(present) == 1, f"{case_dir.name}: a single kidney must get one side, got {present}"
        else:
            assert present == {RIGHT, LEFT}, f"{case_dir.name}: sides {present}"
        for side in present:
            x = _ras_x_mm(sides_nib, sides == side)
            on_own_side = np.mean(x < body_ras_x) if side == LEFT else np.mean(x > body_ras_x)
            assert on_own_side > 0.95, f"{case_dir.name}: label {side} has {on_own_side:.0%} of voxels on its side"


@pytest.mark.parametrize("transform", ["permute", "flip", "permute_flip", "dicom_orient_RAI"])
def test_permuted_or_flipped_axes_give_the_same_sides_in_patient_space(painted_kits23, transform):
    case_dir = painted_kits23 / "case_00263"  # three kidney-like components: the hardest case
    ct = read_image(case_dir / "imaging.nii.gz")
    labels = read_label_map(case_dir / "segmentation.nii.gz", {0, 1, 2, 3}, reference=ct)
    reference = paper_kidney_sides(ct, sitk.GetArrayFromImage(labels), 7.0)

    def moved(image):
        if transform == "permute":
            return sitk.PermuteAxes(image, [2, 0, 1])
        if transform == "flip":
            return sitk.Flip(image, [True, False, True])
        if transform == "permute_flip":
            return sitk.Flip(sitk.PermuteAxes(image, [1, 2, 0]), [False, True, True])
        return sitk.DICOMOrient(image, "RAI")

    moved_ct, moved_labels = moved(ct), moved(labels)
    assert moved_ct.GetSize() != ct.GetSize() or moved_ct.GetDirection() != ct.GetDirection()
    sides = paper_kidney_sides(moved_ct, sitk.GetArrayFromImage(moved_labels), 7.0)
    back = sitk.Resample(sides, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sides.GetPixelID())
    expected, got = sitk.GetArrayFromImage(reference), sitk.GetArrayFromImage(back)
    assert (expected > 0).sum() > 1000
    np.testing.assert_array_equal(got, expected)


def _image(array: np.ndarray, spacing=(2.0, 2.0, 2.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), origin=(0, 0, 0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin(origin)
    return image


def test_sides_follow_the_direction_cosines_not_the_array_index():
    # x axis flipped: array column 0 is the patient's far LEFT.
    flipped = (-1, 0, 0, 0, 1, 0, 0, 0, 1)
    ct = np.full((10, 40, 60), -1000, np.int16)
    ct[:, 5:35, 5:55] = 40  # body, centred on column 29.5
    kidneys = np.zeros_like(ct, dtype=np.uint8)
    kidneys[3:7, 15:25, 10:18] = 1  # low columns: patient left under this direction
    kidneys[3:7, 15:25, 42:50] = 1
    kidneys[4, 10, 27] = 1  # a one-voxel fragment just left of the midline (column 27 < 29.5)
    ct_image, kidney_image = _image(ct, direction=flipped), _image(kidneys, direction=flipped)
    midline = body_midline_mm(ct_image)
    assert midline == pytest.approx(-2.0 * 29.5, abs=4.0)  # LPS x of column 29.5
    sides = sitk.GetArrayFromImage(kidney_side_labels(kidney_image, midline))
    assert np.all(sides[3:7, 15:25, 10:18] == LEFT)
    assert np.all(sides[3:7, 15:25, 42:50] == RIGHT)
    assert sides[4, 10, 27] == LEFT


def test_horseshoe_kidney_is_split_at_the_midline_and_a_lone_kidney_keeps_its_side():
    kidneys = np.zeros((10, 40, 60), np.uint8)
    kidneys[3:7, 15:25, 10:50] = 1  # a bar straddling the midline (x = 59 mm, between columns 29 and 30)
    image = _image(kidneys)
    sides = sitk.GetArrayFromImage(kidney_side_labels(image, midline_mm=59.0))
    assert np.all(sides[3:7, 15:25, 10:30] == RIGHT) and np.all(sides[3:7, 15:25, 30:50] == LEFT)
    lone = np.zeros_like(kidneys)
    lone[3:7, 15:25, 34:46] = 1  # fully on the left; would be "the first kidney" by index order
    sides = sitk.GetArrayFromImage(kidney_side_labels(_image(lone), midline_mm=59.0))
    assert set(np.unique(sides)) == {0, LEFT}


def test_body_midline_rejects_an_image_that_is_not_hu():
    with pytest.raises(ValueError, match="HU"):
        body_midline_mm(_image(np.full((5, 8, 8), -1024, np.int16)))


def test_a_mass_takes_the_side_most_common_within_two_voxels_ties_to_the_right():
    """The one rule of the pipeline, the evaluation and the converter (``mass_side``)."""
    from renal_nnunet.anatomy.sides import mass_side

    sides = np.zeros((5, 5, 12), np.uint8)
    mass = np.zeros(sides.shape, bool)
    mass[2, 2, 5] = True
    assert mass_side(mass, sides) is None  # no kidney within reach: the caller's fallback decides
    sides[2, 2, 8] = 2  # three 6-connected steps away: out of reach
    assert mass_side(mass, sides) is None
    sides[2, 2, 7] = 2  # two steps
    assert mass_side(mass, sides) == 2
    sides[2, 2, 3] = 1
    assert mass_side(mass, sides) == 1  # one right, one left: a tie goes to the right
    sides[2, 2, 5] = 2  # the mass's own voxel counts where it carries a side (the converter's labels)
    assert mass_side(mass, sides) == 2
    sides[1, 1, 4] = 1  # a diagonal neighbour is three 6-connected steps away: out of reach
    assert mass_side(mass, sides) == 2
    assert mass_side(mass[1:, 1:, 2:], sides[1:, 1:, 2:]) == 2  # a window reaching two voxels past the mass suffices
