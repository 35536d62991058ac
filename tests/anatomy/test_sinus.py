"""Sinus filling adds only interior voxels and recovers the sinus."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy.spatial import ConvexHull, Delaunay

from renal_nnunet.anatomy.sides import body_midline_mm, kidney_side_labels
from renal_nnunet.anatomy.sinus import closing_mm, fill_renal_sinus
from renal_nnunet.io import read_image, read_label_map
from renal_nnunet.synthetic import make_phantom


def _independent_hull_mask(kidney: np.ndarray) -> np.ndarray:
    """Voxels inside the convex hull of the kidney's voxel centres (a Delaunay triangulation of the
    hull's vertices, unlike the library's facet half-spaces)."""
    points = np.argwhere(kidney)
    triangulation = Delaunay(points[ConvexHull(points).vertices])
    low, high = points.min(axis=0), points.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(low, high))
    inside = np.zeros(kidney.shape, bool)
    query = np.argwhere(np.ones(high - low, bool)) + low
    inside[box] = (triangulation.find_simplex(query) >= 0).reshape(high - low)
    return inside


def _c_shaped_kidney(spacing_zyx_mm=(3.0, 0.9, 0.9)):
    """An ellipsoidal kidney (semi-axes 50/30/22 mm, z/y/x) with a sinus cavity opening medially (-x)."""
    shape = (45, 90, 70)
    z, y, x = (np.indices(shape).T * np.asarray(spacing_zyx_mm)).T
    z, y, x = z - 66.0, y - 40.5, x - 31.5
    outer = (z / 50) ** 2 + (y / 30) ** 2 + (x / 22) ** 2 <= 1
    sinus = (z / 25) ** 2 + (y / 12) ** 2 + ((x + 22) / 18) ** 2 <= 1  # centred on the medial surface
    return outer, outer & ~sinus, spacing_zyx_mm


def test_fill_recovers_the_outer_boundary_of_a_c_shaped_kidney_and_adds_only_hull_voxels():
    outer, kidney, spacing = _c_shaped_kidney()
    labels = sitk.GetImageFromArray(kidney.astype(np.uint8) * 2)
    labels.SetSpacing(spacing[::-1])
    filled = sitk.GetArrayFromImage(fill_renal_sinus(labels)) == 2
    assert np.all(filled[kidney]), "the original kidney must be kept"
    added = filled & ~kidney
    assert np.all(_independent_hull_mask(kidney)[added]), "added voxels must lie inside the convex hull"
    dice = 2 * (filled & outer).sum() / (filled.sum() + outer.sum())
    assert (outer & ~kidney).sum() / outer.sum() > 0.03  # the sinus is a real notch
    assert dice > 0.97, f"filled kidney vs outer boundary Dice {dice:.3f}"


def test_closing_uses_a_ball_in_mm_on_anisotropic_grids():
    mask = np.zeros((21, 61, 71), bool)
    mask[5:16, 10:51, 15:30] = mask[5:16, 10:51, 41:56] = True  # blocks 12 columns (6 mm) apart
    spacing = np.array([4.0, 0.5, 0.5])  # a 4 mm ball spans only one slice up and down
    assert closing_mm(mask, spacing, 4.0)[10, 30, 35]
    assert not closing_mm(mask, spacing, 2.0)[10, 30, 35]
    assert not closing_mm(mask, spacing, 4.0)[3, 30, 35]


def test_fill_on_phantoms_recovers_the_painted_sinus_fat():
    phantom = make_phantom(1, masses_per_kidney=(0, 0))
    kits = sitk.GetArrayFromImage(phantom.labels)
    kidney_mask = sitk.Cast(phantom.labels > 0, sitk.sitkUInt8)
    sides = kidney_side_labels(kidney_mask, body_midline_mm(phantom.ct))
    filled = sitk.GetArrayFromImage(fill_renal_sinus(sides))
    ct = sitk.GetArrayFromImage(phantom.ct)
    for side in (1, 2):
        kidney = sitk.GetArrayFromImage(sides) == side
        sinus_fat = _independent_hull_mask(kidney) & (kits == 0)  # the painted sinus: fat inside the hull
        assert np.mean(ct[sinus_fat] < -30) > 0.95
        added = (filled == side) & ~kidney
        assert added.sum() >= 0.85 * sinus_fat.sum(), f"side {side}: {added.sum()} of {sinus_fat.sum()} sinus voxels"
        assert np.all(sinus_fat[added])


def test_fill_on_a_real_kits_case_keeps_kidney_and_masses_and_stays_in_each_hull(painted_kits23):
    case_dir = painted_kits23 / "case_00043"
    ct = read_image(case_dir / "imaging.nii.gz")
    labels = read_label_map(case_dir / "segmentation.nii.gz", {0, 1, 2, 3}, reference=ct)
    kits = sitk.GetArrayFromImage(labels)
    sides = kidney_side_labels(sitk.Cast(labels > 0, sitk.sitkUInt8), body_midline_mm(ct))
    side_array = sitk.GetArrayFromImage(sides)
    filled = sitk.GetArrayFromImage(fill_renal_sinus(sides))
    assert np.all(filled[kits > 0] == side_array[kits > 0]), "kidney, tumour and cyst voxels keep their side"
    added = (filled > 0) & (kits == 0)
    assert added.sum() > 0
    for side in (1, 2):
        assert np.all(_independent_hull_mask(side_array == side)[added & (filled == side)])
