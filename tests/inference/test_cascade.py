"""Kidney post-processing on known label maps (no model): sides, empty prediction, border."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import image_like, patient_left_mm
from renal_nnunet.anatomy.sides import paper_kidney_sides
from renal_nnunet.inference.cascade import (
    MASS_KIDNEY_TOLERANCE_MM,
    MassResult,
    keep_masses_on_kidneys,
    kidney_boxes,
    kidneys_from_labels,
    lesion_sides,
)
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


@pytest.mark.parametrize("flip_axes", [(False, False, False), (True, False, True)], ids=["lps", "flipped"])
def test_a_few_voxels_labelled_with_the_other_side_change_neither_side_nor_box(phantom_sides, flip_axes):
    """Two voxels at the far (patient-left) end of the left kidney labelled "right" by the model
    stay left, and the right kidney's box does not stretch across the body to reach them."""
    ct, sides = phantom_sides
    ct = sitk.Flip(ct, flip_axes)  # same patient, other array order: sides come from the affine
    sides = sitk.GetArrayFromImage(sitk.Flip(image_like(sides, phantom_sides[0]), flip_axes))
    left = np.argwhere(sides == 2)
    outermost = left[np.argsort(patient_left_mm(ct, left))[-2:]]
    speckled = sides.copy()
    speckled[tuple(outermost.T)] = 1
    result = kidneys_from_labels(image_like(speckled, ct), ct)
    assert kidney_boxes(result.labels, margin_mm=5.0) == kidney_boxes(image_like(sides, ct), margin_mm=5.0)
    assert np.array_equal(_labels(result), sides) and result.messages == ()


def test_a_small_blob_where_the_other_kidney_is_missing_is_dropped(phantom_sides):
    """Per side, the largest component is kept only from MIN_KIDNEY_VOLUME_ML (10 ml) up: with the
    left kidney missing, a 4 ml false positive on the left gets no box."""
    ct, sides = phantom_sides
    right_only = np.where(sides == 1, 1, 0).astype(np.uint8)
    left = np.argwhere(sides == 2)[:4]  # 4 voxels of 1 ml where the left kidney was
    right_only[tuple(left.T)] = 2
    result = kidneys_from_labels(image_like(right_only, ct), ct)
    assert np.array_equal(_labels(result), np.where(sides == 1, 1, 0))
    assert "only one kidney found (the right one)" in result.messages


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
    assert boxes == {"right": Box((0, 0, 0), (13, 12, 12)), "left": Box((17, 0, 0), (13, 12, 12))}
    assert lesion_sides(image_like(components, ct), image_like(kidneys, ct), boxes) == {1: "right", 2: "left"}


def test_a_mass_apart_from_its_kidney_but_inside_the_box_is_not_a_renal_mass():
    """x voxels are 2 mm: a blob 2 voxels (4 mm) from the right kidney is kept, one 5 voxels
    (10 mm) away inside the same 20 mm box is removed; a mass inside the left kidney is kept."""
    assert MASS_KIDNEY_TOLERANCE_MM == 4.0  # the gaps below are chosen around it
    kidneys = np.zeros((12, 12, 44), np.uint8)
    kidneys[3:9, 3:9, 2:8] = 1
    kidneys[3:9, 3:9, 34:40] = 2
    mass = np.zeros_like(kidneys)
    mass[4:6, 4:6, 10:12] = 1  # gap x = 8, 9: 4 mm
    mass[6:8, 6:8, 13:15] = 1  # gap x = 8..12: 10 mm
    mass[5:7, 5:7, 35:37] = 1  # inside the left kidney
    ct = sitk.GetImageFromArray(np.zeros(kidneys.shape, np.int16))
    ct.SetSpacing((2.0, 1.0, 1.0))
    ct.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, -1))  # distances are in mm whatever the orientation
    boxes = kidney_boxes(image_like(kidneys, ct), margin_mm=20.0)
    assert boxes["right"].stop[0] > 15  # the far blob lies inside the right box
    region = Box.whole(ct.GetSize())
    probability = image_like(np.full(kidneys.shape, 0.25, np.float32), ct)
    masses = MassResult(image_like(mass, ct), probability, probability, boxes, region)
    kept, messages = keep_masses_on_kidneys(masses, image_like(kidneys, ct))
    expected = mass.copy()
    expected[6:8, 6:8, 13:15] = 0
    assert np.array_equal(sitk.GetArrayFromImage(kept.mask), expected)
    assert kept.mask.GetDirection() == ct.GetDirection() and kept.probability is probability
    assert len(messages) == 1 and "0.02 ml mass component" in messages[0] and "not kept as a renal mass" in messages[0]


def test_mass_probabilities_are_held_on_the_boxes_union_with_its_geometry():
    from renal_nnunet.inference.cascade import _sub_grid

    ct = sitk.GetImageFromArray(np.zeros((10, 20, 30), np.int16))
    ct.SetSpacing((0.5, 0.7, 2.0))
    ct.SetOrigin((3.0, -4.0, 5.0))
    ct.SetDirection((0, 0, 1, 0, -1, 0, -1, 0, 0))
    region = _sub_grid(ct, Box((2, 3, 4), (5, 6, 3)))
    assert region.GetSize() == (5, 6, 3) and region.GetSpacing() == ct.GetSpacing()
    assert region.GetDirection() == ct.GetDirection()
    assert np.allclose(region.GetOrigin(), ct.TransformIndexToPhysicalPoint((2, 3, 4)))


def _shrunk_about_centroid(labels: sitk.Image, component: np.ndarray, volume_ml: float) -> sitk.Image:
    """The labels with one component (bool (z, y, x)) scaled uniformly about its centroid to about
    ``volume_ml`` (nearest neighbour: its tumours and cysts shrink with it)."""
    array = sitk.GetArrayFromImage(labels)
    voxel_ml = np.prod(labels.GetSpacing()) / 1000.0
    scale = (volume_ml / (np.count_nonzero(component) * voxel_ml)) ** (1 / 3)
    centroid = labels.TransformContinuousIndexToPhysicalPoint(np.argwhere(component).mean(axis=0)[::-1].tolist())
    transform = sitk.ScaleTransform(3, (1 / scale,) * 3)  # maps output points to input points
    transform.SetCenter(centroid)
    alone = image_like(np.where(component, array, 0).astype(np.uint8), labels)
    shrunk = sitk.GetArrayFromImage(sitk.Resample(alone, labels, transform, sitk.sitkNearestNeighbor, 0))
    return image_like(np.where(component, 0, array) + shrunk, labels)


def test_an_atrophic_kidney_beside_a_large_tumour_keeps_its_label_and_its_masses(kits23_dataset):
    """Real KiTS23 case_00252: a 423 ml kidney with a 209 ml tumour; its other kidney (232 ml,
    with a cyst) shrunk to ~60 ml stays a kidney, its box holds its cyst, and the cyst stays a
    renal mass."""
    from renal_nnunet.inference.cascade import _sub_grid
    from renal_nnunet.synthetic import paint_ct
    from renal_nnunet.synthetic.layouts import subsample_inplane

    labels = subsample_inplane(sitk.ReadImage(str(kits23_dataset / "case_00252" / "segmentation.nii.gz")), 4)
    components = cc3d.largest_k(sitk.GetArrayFromImage(labels) > 0, k=2, connectivity=26)
    sizes = np.bincount(components.ravel())[1:]
    labels = _shrunk_about_centroid(labels, components == 1 + int(np.argmin(sizes)), volume_ml=60.0)
    kits = sitk.GetArrayFromImage(labels)
    ct = paint_ct(labels, None, seed=0)
    predicted = paper_kidney_sides(ct, kits, 5.0)  # a perfect kidney stage
    voxel_ml = np.prod(ct.GetSpacing()) / 1000.0
    volumes = {side: np.count_nonzero(sitk.GetArrayViewFromImage(predicted) == value) * voxel_ml
               for side, value in (("right", 1), ("left", 2))}
    small = min(volumes, key=volumes.get)
    assert 50 < volumes[small] < 80 and volumes[small] < 0.2 * max(volumes.values())

    result = kidneys_from_labels(predicted, ct)
    assert np.array_equal(_labels(result), sitk.GetArrayFromImage(predicted)) and result.messages == ()
    boxes = kidney_boxes(result.labels, margin_mm=10.0)
    masses = np.isin(kits, (2, 3)).astype(np.uint8)
    small_masses = masses.astype(bool) & (_labels(result) == (1 if small == "right" else 2))
    in_box = np.zeros(kits.shape, bool)
    in_box[boxes[small].slices] = True
    assert small_masses.any() and not (small_masses & ~in_box).any()
    probability = _sub_grid(ct, Box.whole(ct.GetSize()))
    kept, messages = keep_masses_on_kidneys(MassResult(image_like(masses, ct), probability, probability, boxes,
                                                       Box.whole(ct.GetSize())), result.labels)
    assert np.array_equal(sitk.GetArrayFromImage(kept.mask), masses) and messages == ()
