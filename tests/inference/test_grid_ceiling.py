"""The grid's kidney ceiling: the reference's kidneys through the kidney stage's grid and back, as
a perfect network's would come back; left stays left on a reoriented grid, masses count to their
kidney, a coarser grid costs Dice, and the folder figure is the evaluation's own Dice."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.inference.grid_ceiling import kidney_dice_ceiling, kidney_grid_ceiling
from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.io import InputError, write_image

RIGHT, LEFT, SOLID = OUTPUT_LABELS["kidney_right"], OUTPUT_LABELS["kidney_left"], OUTPUT_LABELS["solid"]


def _reference(flip_x: bool) -> sitk.Image:
    """Two ellipsoid kidneys (2 x 2 x 3 mm voxels) with a solid mass on the left one. With
    ``flip_x`` the grid's x axis runs to the patient's right (direction -1 on x): the arrays differ,
    the patient does not."""
    shape_zyx = (24, 36, 40)
    z, y, x = np.indices(shape_zyx, dtype=float)
    seg = np.zeros(shape_zyx, np.uint8)
    for label, centre_x in ((RIGHT, 10.0), (LEFT, 29.0)):  # index x 10 is the patient's right at identity
        seg[((x - centre_x) / 5.5) ** 2 + ((y - 18) / 7.5) ** 2 + ((z - 12) / 7.0) ** 2 <= 1] = label
    seg[((x - 34.0) / 2.5) ** 2 + ((y - 18) / 2.5) ** 2 + ((z - 12) / 2.5) ** 2 <= 1] = SOLID
    if flip_x:
        seg = seg[:, :, ::-1].copy()
    image = sitk.GetImageFromArray(seg)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((39 * 2.0 if flip_x else 0.0, -40.0, 100.0))
    image.SetDirection((-1.0 if flip_x else 1.0, 0, 0, 0, 1, 0, 0, 0, 1))
    return image


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def _centroid_lps_x_mm(image: sitk.Image, label: int) -> float:
    index_zyx = np.argwhere(sitk.GetArrayViewFromImage(image) == label).mean(axis=0)
    return image.TransformContinuousIndexToPhysicalPoint(index_zyx[::-1].tolist())[0]


@pytest.mark.parametrize("flip_x", [False, True])
def test_a_fine_grid_gives_the_kidneys_back_and_a_coarse_one_costs_dice_with_left_still_left(flip_x):
    reference = _reference(flip_x)
    ref = sitk.GetArrayFromImage(reference)
    kidney = {RIGHT: ref == RIGHT, LEFT: (ref == LEFT) | (ref == SOLID)}  # the mass is part of its kidney
    dice = {}
    for grid in (48, 8):
        ceiling = kidney_grid_ceiling(reference, grid)
        assert ceiling.GetSize() == reference.GetSize() and ceiling.GetDirection() == reference.GetDirection()
        got = sitk.GetArrayFromImage(ceiling)
        assert set(np.unique(got)) <= {0, RIGHT, LEFT}
        dice[grid] = {side: _dice(got == side, mask) for side, mask in kidney.items()}
        assert _centroid_lps_x_mm(ceiling, RIGHT) < _centroid_lps_x_mm(ceiling, LEFT)  # LPS x grows to the left
    assert min(dice[48].values()) > 0.97
    assert all(dice[8][side] < dice[48][side] - 0.05 for side in kidney)
    fine = sitk.GetArrayFromImage(kidney_grid_ceiling(reference, 48))
    assert (fine[ref == SOLID] == LEFT).mean() > 0.9


def test_the_folder_ceiling_is_the_evaluations_mean_dice_of_the_ceilings(tmp_path):
    """Each case's CT gives the box its kidney stage resamples; these CTs are tissue to the edge, so
    that box is the whole CT; a reference without its CT is named."""
    references, images = tmp_path / "references", tmp_path / "images"
    expected = {"right": [], "left": []}
    for case, flip_x in (("case_a", False), ("case_b", True)):
        reference = _reference(flip_x)
        write_image(reference, references / f"{case}.nii.gz")
        write_image(image_like(np.full(reference.GetSize()[::-1], 40, np.int16), reference), images / f"{case}_0000.nii.gz")
        ref = sitk.GetArrayFromImage(reference)
        got = sitk.GetArrayFromImage(kidney_grid_ceiling(reference, 12))
        expected["right"].append(_dice(got == RIGHT, ref == RIGHT))
        expected["left"].append(_dice(got == LEFT, np.isin(ref, (LEFT, SOLID))))
    ceiling = kidney_dice_ceiling(references, images, 12, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "ceiling").iterdir()) == ["case_a_seg.nii.gz", "case_b_seg.nii.gz"]
    for side in ("right", "left"):
        assert ceiling[side] == pytest.approx(np.mean(expected[side]), abs=1e-6)
        assert 0.5 < ceiling[side] < 0.99
    (images / "case_b_0000.nii.gz").unlink()
    with pytest.raises(InputError, match="case_b.nii.gz: no CT of case 'case_b'"):
        kidney_dice_ceiling(references, images, 12, tmp_path / "again")
