"""Lesion components, sizes in mm/ml, classes, and classifier crops."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy import lesion_classes
from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.crops import OUTSIDE_LESION_HU, lesion_crop
from renal_nnunet.anatomy.geometry import physical_points_mm, resample_from_grid
from renal_nnunet.anatomy.lesion_classes import lesion_class
from renal_nnunet.anatomy.lesions import average_diameter_mm, lesion_components, lesion_properties

OBLIQUE = sitk.VersorRigid3DTransform((0.3, -0.5, 0.2, 0.0)).GetMatrix()  # some rotation as direction cosines


def _ellipsoid_image(diameters_mm, spacing_xyz=(0.6, 0.8, 1.5), direction=OBLIQUE, axes_rotation=None, size=(90, 70, 50)):
    """Ellipsoid with the given diameters (its axes along ``axes_rotation`` columns), voxelised on the grid."""
    image = sitk.Image(size, sitk.sitkUInt8)
    image.SetSpacing(spacing_xyz)
    image.SetDirection(direction)
    centre = physical_points_mm(image, np.array([[s / 2 for s in size[::-1]]]))[0]
    points = physical_points_mm(image, np.argwhere(np.ones(size[::-1], bool))) - centre
    rotation = np.eye(3) if axes_rotation is None else np.asarray(axes_rotation).reshape(3, 3)
    local = points @ rotation
    inside = (((local / (np.asarray(diameters_mm) / 2)) ** 2).sum(axis=1) <= 1).reshape(size[::-1])
    result = sitk.GetImageFromArray(inside.astype(np.uint8))
    result.CopyInformation(image)
    return result


def test_average_diameter_of_a_ball_is_its_diameter_on_oblique_anisotropic_grids():
    assert average_diameter_mm(_ellipsoid_image((30.0, 30.0, 30.0))) == pytest.approx(30.0, rel=0.02)


def test_average_diameter_of_a_rotated_ellipsoid_is_the_mean_of_its_diameters():
    image = _ellipsoid_image((40.0, 24.0, 14.0), axes_rotation=sitk.VersorRigid3DTransform((0.1, 0.4, -0.3, 0.0)).GetMatrix())
    assert average_diameter_mm(image) == pytest.approx((40 + 24 + 14) / 3, rel=0.03)


def test_average_diameter_of_one_voxel_and_of_nothing():
    image = sitk.Image((5, 5, 5), sitk.sitkUInt8)
    image.SetSpacing((2.0, 2.0, 2.0))
    assert average_diameter_mm(image) == 0.0
    image[2, 2, 2] = 1
    assert average_diameter_mm(image) == pytest.approx(2 * np.sqrt(5 * 4 / 12))  # a 2 mm cube's moments


def test_components_are_numbered_by_volume_whatever_the_array_order():
    array = np.zeros((10, 30, 30), np.uint8)
    array[2:4, 2:4, 2:4] = 1  # 8 voxels
    array[5:9, 10:20, 20:28] = 1  # 320 voxels
    array[1, 25, 5] = 1  # 1 voxel
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.5, 2.0))
    for candidate in (image, sitk.Flip(image, [True, True, False]), sitk.PermuteAxes(image, [2, 0, 1])):
        properties = lesion_properties(lesion_components(candidate))
        assert [p.voxel_count for p in properties] == [320, 8, 1]
        assert [p.volume_ml for p in properties] == pytest.approx([320 * 0.5e-3, 8 * 0.5e-3, 0.5e-3])
    centroids = [p.centroid_mm for p in lesion_properties(lesion_components(image))]
    expected = physical_points_mm(image, np.array([[6.5, 14.5, 23.5], [2.5, 2.5, 2.5], [1, 25, 5]]))
    np.testing.assert_allclose(centroids, expected)
    largest = lesion_properties(lesion_components(image))[0]
    assert largest.bbox == Box((20, 10, 5), (8, 10, 4))


def test_components_of_a_long_ct_cost_about_one_output_array():
    """A 700-slice CT's masses fill a small box: labelling them must not make full-size uint32
    copies (they were 10 bytes a voxel: cc3d's labels, the renumbered copy and the uint16 cast)."""
    import tracemalloc

    shape = (300, 256, 256)
    mask = np.zeros(shape, np.uint8)
    mask[100:120, 50:70, 60:80] = 1
    mask[150:155, 200:210, 30:33] = 1
    image = sitk.GetImageFromArray(mask)
    tracemalloc.start()
    components = lesion_components(image)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sorted(np.unique(sitk.GetArrayViewFromImage(components))) == [0, 1, 2]
    assert peak < 3.5 * mask.size, f"{peak / mask.size:.1f} bytes per voxel"


def test_components_use_26_connectivity_by_default():
    array = np.zeros((5, 5, 5), np.uint8)
    array[1, 1, 1] = array[2, 2, 2] = 1  # corner neighbours
    image = sitk.GetImageFromArray(array)
    assert len(lesion_properties(lesion_components(image))) == 1
    assert len(lesion_properties(lesion_components(image, connectivity=6))) == 2


@pytest.mark.parametrize("label, subtype, expected", [
    ("cyst", "angiomyolipoma", ("cystic", "label")),
    ("tumor", "angiomyolipoma", ("AML", "pathology")),
    ("tumor", "cyst", ("cystic", "pathology")),
    ("tumor", "multilocular_cystic_rcc", ("cystic", "pathology")),
    ("tumor", "clear_cell_rcc", ("solid", "pathology")),
    ("tumor", "oncocytoma", ("solid", "pathology")),
    ("tumor", None, ("unknown", "none")),
    ("AML", None, ("AML", "label")),
])
def test_lesion_class_rules(label, subtype, expected):
    assert lesion_class(label, subtype) == expected


def test_docstring_examples():
    assert doctest.testmod(lesion_classes).failed == 0


def test_lesion_crop_masks_by_outline_windows_and_maps_back():
    rng = np.random.default_rng(0)
    ct_array = rng.normal(40, 30, (30, 60, 70)).astype(np.int16)
    ct_array[:, :, :35] = -100  # fat beside the lesion
    ct = sitk.GetImageFromArray(ct_array)
    ct.SetSpacing((0.7, 0.8, 2.0))
    ct.SetDirection((0, 0, 1, 0, 1, 0, -1, 0, 0))
    lesions = np.zeros(ct_array.shape, np.uint8)
    lesions[10:16, 20:40, 36:56] = 2
    lesions[20:22, 5:8, 5:8] = 1
    lesion_image = sitk.GetImageFromArray(lesions)
    lesion_image.CopyInformation(ct)
    crop, sidecar = lesion_crop(ct, lesion_image, grid=16, lesion_id=2)
    values = sitk.GetArrayFromImage(crop)
    assert crop.GetSize() == (16, 16, 16) and crop.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # LPS axes
    assert values.min() >= OUTSIDE_LESION_HU and values.max() <= 180.0
    assert sidecar.box == Box((36, 20, 10), (20, 20, 6))
    assert values[8, 8, 8] == pytest.approx(np.clip(ct_array[10:16, 20:40, 36:56], -120, 180).mean(), abs=40)
    back = resample_from_grid(np.ones((16, 16, 16), np.uint8), sidecar, "nearest")
    np.testing.assert_array_equal(back > 0, lesions == 2)
    with pytest.raises(ValueError, match="empty"):
        lesion_crop(ct, lesion_image, grid=16, lesion_id=3)
