"""Which kidney is which: left/right decided in patient coordinates from the image geometry.

A kidney's side is the sign of its centroid's LPS x relative to the body midline (ITK LPS:
+x points to the patient's LEFT). Array indices are never used to decide a side, so flipped or
permuted volumes get the same answer as long as their direction cosines are right.
"""

from __future__ import annotations

import logging

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.geometry import image_like, patient_left_mm
from renal_nnunet.anatomy.labels import KIDNEY_STAGE_LABELS
from renal_nnunet.anatomy.sinus import fill_renal_sinus
from renal_nnunet.io import InputError

__all__ = ["body_mask", "body_midline_mm", "kidney_side_labels", "axial_axis_numpy", "paper_kidney_sides", "paper_kidneys",
           "mass_side", "MASS_SIDE_REACH_VOXELS"]

log = logging.getLogger(__name__)

BODY_THRESHOLD_HU = -500.0
"""Voxels above this are tissue (air and lung lie below)."""

BODY_VOXEL_MM = 4.0
"""The body mask is computed on a CT shrunk to about this voxel size: the midline needs no more."""

MASS_SIDE_REACH_VOXELS = 2
"""A mass takes the side of the kidney labels within this many voxels (6-connected steps) of it:
an exophytic mass still touches its kidney."""

HORSESHOE_MIN_FRACTION = 0.2
"""A kidney component with at least this fraction of its voxels on each side of the midline is a
horseshoe (or fused) kidney and is split at the midline; below it the whole component takes the
side of its centroid (a kidney or mass reaching a little over the midline stays one kidney)."""


def axial_axis_numpy(image: sitk.Image) -> int:
    """Numpy axis (of the (z, y, x) array) closest to the patient's superior-inferior direction."""
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    itk_axis = int(np.argmax(np.abs(direction[2, :])))
    return 2 - itk_axis


def body_mask(ct: sitk.Image) -> sitk.Image:
    """Binary body mask of a CT (HU) on a grid shrunk to about 4 mm voxels.

    Tissue above -500 HU, the largest 26-connected component, then holes (lungs, bowel gas) filled
    in every axial slice; slices are chosen from the direction cosines, not the array order.

    Raises:
        ValueError: no voxel above -500 HU (the image is not a CT in HU).
    """
    factors = [max(1, int(BODY_VOXEL_MM // s)) for s in ct.GetSpacing()]
    small = sitk.BinShrink(ct, factors)
    tissue = sitk.GetArrayFromImage(small) > BODY_THRESHOLD_HU
    if not tissue.any():
        raise ValueError(f"no voxel above {BODY_THRESHOLD_HU:g} HU: the image does not look like a CT in HU")
    largest = cc3d.largest_k(tissue, k=1, connectivity=26) > 0
    in_slice = np.zeros((3, 3, 3), bool)
    index = [slice(None)] * 3
    index[axial_axis_numpy(ct)] = 1
    in_slice[tuple(index)] = ndimage.generate_binary_structure(2, 1)
    filled = ndimage.binary_fill_holes(largest, structure=in_slice)
    return image_like(filled.astype(np.uint8), small)


def body_midline_mm(ct: sitk.Image) -> float:
    """LPS x (mm) of the body midline: the median LPS x of the body-mask voxels.

    The median is robust to an arm or the table edge on one side.
    """
    mask = body_mask(ct)
    indices = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)
    return float(np.median(patient_left_mm(mask, indices)))


def kidney_side_labels(kidney_mask: sitk.Image, midline_mm: float) -> sitk.Image:
    """Label every kidney voxel right (1) or left (2) by its position relative to the midline.

    Args:
        kidney_mask: nonzero = kidney (KiTS kidney, tumour and cyst all count: masses belong to the
            kidney they touch). Any orientation.
        midline_mm: LPS x of the body midline, mm (see :func:`body_midline_mm`).

    Returns:
        uint8 image on ``kidney_mask``'s grid: 0 background, 1 right kidney, 2 left kidney.
        Each 26-connected component takes the side of its centroid (a lone kidney keeps its true
        side, small fragments follow their own centroid); a component with at least
        :data:`HORSESHOE_MIN_FRACTION` of its voxels on each side is split at the midline.
    """
    mask = sitk.GetArrayViewFromImage(kidney_mask) > 0
    components = cc3d.connected_components(mask, connectivity=26)
    indices = np.argwhere(components > 0)
    component_of_voxel = components[tuple(indices.T)]
    x_mm = patient_left_mm(kidney_mask, indices)
    is_left = x_mm > midline_mm
    voxels = np.bincount(component_of_voxel)
    present = voxels > 0
    left_fraction = np.bincount(component_of_voxel, weights=is_left, minlength=len(voxels))[present] / voxels[present]
    centroid_x_mm = np.bincount(component_of_voxel, weights=x_mm, minlength=len(voxels))[present] / voxels[present]
    horseshoe = np.minimum(left_fraction, 1.0 - left_fraction) >= HORSESHOE_MIN_FRACTION
    for count, fraction in zip(voxels[present][horseshoe], left_fraction[horseshoe]):
        log.info("kidney component of %d voxels crosses the midline (%.0f%% left): split there", count, 100 * fraction)
    component_is_left = np.zeros(len(voxels), bool)
    component_is_left[present] = centroid_x_mm > midline_mm
    split = np.zeros(len(voxels), bool)
    split[present] = horseshoe
    voxel_is_left = np.where(split[component_of_voxel], is_left, component_is_left[component_of_voxel])
    out = np.zeros(mask.shape, np.uint8)
    out[tuple(indices.T)] = np.where(voxel_is_left, KIDNEY_STAGE_LABELS["kidney_left"], KIDNEY_STAGE_LABELS["kidney_right"])
    return image_like(out, kidney_mask)


def paper_kidneys(kidney_mask: sitk.Image, midline_mm: float, sinus_radius_mm: float) -> sitk.Image:
    """Kidneys as the paper draws them (parenchyma + sinus + masses), labelled 1 right / 2 left.

    Args:
        kidney_mask: nonzero = KiTS kidney, tumour or cyst; any orientation.
        midline_mm: LPS x of the body midline, mm.
        sinus_radius_mm: closing radius of :func:`~renal_nnunet.anatomy.sinus.fill_renal_sinus`, mm.
    """
    return fill_renal_sinus(kidney_side_labels(kidney_mask, midline_mm), sinus_radius_mm)


def paper_kidney_sides(ct: sitk.Image, kits: np.ndarray, sinus_radius_mm: float) -> sitk.Image:
    """The converter's kidneys: :func:`paper_kidneys` at the CT's body midline."""
    kidney_mask = image_like((kits > 0).astype(np.uint8), ct)
    try:
        midline_mm = body_midline_mm(ct)
    except ValueError as err:
        raise InputError(None, str(err)) from None
    return paper_kidneys(kidney_mask, midline_mm, sinus_radius_mm)


def mass_side(mass_zyx: np.ndarray, side_labels_zyx: np.ndarray) -> int | None:
    """Side of the kidney a mass belongs to: the one rule of the pipeline, the evaluation and the
    converter.

    The side label (1 right, 2 left) most common under the mass grown by
    :data:`MASS_SIDE_REACH_VOXELS` voxels (the mass's own voxels count too, where they carry a
    side); a tie goes to the right kidney.

    Args:
        mass_zyx: bool mask of one mass, numpy (z, y, x); a window of the image is enough if it
            reaches :data:`MASS_SIDE_REACH_VOXELS` voxels past the mass (or the image edge).
        side_labels_zyx: same grid; 1 right / 2 left kidney, anything else ignored.

    Returns:
        1 or 2, or None where no side label lies within reach (the caller's fallback decides).
    """
    voxels = np.argwhere(mass_zyx)
    low = np.maximum(voxels.min(axis=0) - MASS_SIDE_REACH_VOXELS, 0)
    high = voxels.max(axis=0) + MASS_SIDE_REACH_VOXELS + 1
    window = tuple(slice(a, b) for a, b in zip(low, high))
    grown = ndimage.binary_dilation(mass_zyx[window], iterations=MASS_SIDE_REACH_VOXELS)
    under = side_labels_zyx[window][grown]
    right, left = KIDNEY_STAGE_LABELS["kidney_right"], KIDNEY_STAGE_LABELS["kidney_left"]
    counts = (np.count_nonzero(under == right), np.count_nonzero(under == left))
    if max(counts) == 0:
        return None
    return left if counts[1] > counts[0] else right
