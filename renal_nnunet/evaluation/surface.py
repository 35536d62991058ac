"""Overlap and surface-distance metrics of two binary masks, in mm.

Definitions follow MedPy 0.5 (``medpy.metric.binary``), the reference the tests compare against:

* surface voxels: the mask minus its erosion by the connectivity-1 (face) structure; voxels on the
  array border count as surface (``binary_erosion`` pads with background);
* directed distances: for every surface voxel of A, the Euclidean distance in mm to the nearest
  surface voxel of B (``distance_transform_edt`` with ``sampling=spacing``);
* ``hd_mm``: the largest directed distance (both directions);
* ``hd95_mm``: MedPy's definition, the 95th percentile of the pooled distances of both directions;
  ``hd95_max_mm``: MONAI's definition, the larger of the two directed 95th percentiles;
* ``assd_mm``: MedPy 0.5's definition, the mean of the pooled distances of both directions;
  ``assd_mean_of_means_mm``: the mean of the two directed means (MedPy < 0.5, many papers);
* ``surface_dice``: share of surface voxels of both masks within ``tolerance_mm`` of the other
  surface (voxel surfaces; the KiTS challenge's surfel-area variant is in
  :mod:`renal_nnunet.evaluation.kits`).

The work is done once per pair: both masks are cropped to their union bounding box plus one
voxel (:func:`renal_nnunet.evaluation.crop.crop_to_union`; the margin keeps a background voxel
beside every surface voxel not on the array border, so neither the surfaces nor the
nearest-surface distances change), then one erosion and
one distance transform per direction.

Empty-mask policy (:data:`EMPTY_POLICY`): both empty -> Dice 1, surface Dice 1, distances NaN
(nothing to measure); one empty -> Dice 0, surface Dice 0, distances NaN (undefined, and an
infinite or image-sized stand-in would swamp any average). ``empty`` in the result says which case
applied, and summaries report how many values each mean is over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from renal_nnunet.evaluation.crop import crop_to_union

__all__ = ["EMPTY_POLICY", "SurfaceDistances", "surface_distances", "segmentation_metrics", "dice"]

EMPTY_POLICY = (
    "both masks empty: dice 1, surface_dice 1, distances NaN; "
    "one mask empty: dice 0, surface_dice 0, distances NaN"
)


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed surface distances in mm between two non-empty masks.

    Attributes:
        pred_to_ref_mm: for each surface voxel of ``pred``, distance to the nearest ``ref`` surface voxel.
        ref_to_pred_mm: the same from ``ref`` to ``pred``.
    """

    pred_to_ref_mm: np.ndarray
    ref_to_pred_mm: np.ndarray

    @property
    def pooled_mm(self) -> np.ndarray:
        return np.concatenate([self.pred_to_ref_mm, self.ref_to_pred_mm])


def _check_pair(pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"masks differ in shape: pred {pred.shape}, ref {ref.shape}")
    spacing = np.asarray(spacing_mm, float)
    if spacing.shape != (pred.ndim,) or np.any(spacing <= 0):
        raise ValueError(f"spacing_mm must give one positive value (mm) per array axis {pred.shape}, got {spacing_mm}")
    return pred, ref, spacing


def _surface(mask: np.ndarray) -> np.ndarray:
    face_structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask ^ ndimage.binary_erosion(mask, structure=face_structure, iterations=1)


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float]) -> SurfaceDistances:
    """Directed surface distances (mm) between two non-empty boolean masks.

    Args:
        pred, ref: boolean masks of the same shape, numpy (z, y, x) order.
        spacing_mm: voxel spacing in mm per array axis (numpy order, e.g. (z, y, x)).

    Raises:
        ValueError: shapes differ, bad spacing, or a mask is empty.
    """
    pred, ref, spacing = _check_pair(pred, ref, spacing_mm)
    if not pred.any() or not ref.any():
        raise ValueError("surface distances need two non-empty masks (see EMPTY_POLICY)")
    pred, ref = crop_to_union(pred, ref, margin_voxels=1)
    pred_surface, ref_surface = _surface(pred), _surface(ref)
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return SurfaceDistances(pred_to_ref_mm=to_ref[pred_surface], ref_to_pred_mm=to_pred[ref_surface])


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice coefficient of two boolean masks; 1.0 when both are empty."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    total = int(pred.sum()) + int(ref.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(pred, ref).sum()) / total


def segmentation_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], tolerance_mm: float = 1.0
) -> dict[str, float | str]:
    """Dice, Hausdorff distances, ASSD and surface Dice of two masks (definitions in the module doc).

    Args:
        pred, ref: boolean masks of the same shape, numpy (z, y, x) order.
        spacing: voxel spacing in mm per array axis (numpy order).
        tolerance_mm: tolerance of ``surface_dice``, mm.

    Returns:
        ``dice``, ``hd_mm``, ``hd95_mm`` (pooled, MedPy), ``hd95_max_mm`` (MONAI), ``assd_mm``
        (pooled mean, MedPy 0.5), ``assd_mean_of_means_mm``, ``surface_dice``, ``pred_volume_ml``,
        ``ref_volume_ml`` and ``empty`` (``""``, ``"both"``, ``"pred"`` or ``"ref"``).

    Example:
        >>> a = np.zeros((5, 5, 5), bool); a[1:4, 1:4, 1:4] = True
        >>> segmentation_metrics(a, a, (2.0, 1.0, 1.0))["hd_mm"]
        0.0
    """
    pred, ref, spacing = _check_pair(pred, ref, spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    pred_voxels, ref_voxels = int(pred.sum()), int(ref.sum())
    result: dict[str, float | str] = {
        "dice": dice(pred, ref),
        "pred_volume_ml": pred_voxels * voxel_ml,
        "ref_volume_ml": ref_voxels * voxel_ml,
    }
    if pred_voxels == 0 or ref_voxels == 0:
        both = pred_voxels == ref_voxels
        result.update({name: math.nan for name in ("hd_mm", "hd95_mm", "hd95_max_mm", "assd_mm", "assd_mean_of_means_mm")})
        result["surface_dice"] = 1.0 if both else 0.0
        result["empty"] = "both" if both else ("pred" if pred_voxels == 0 else "ref")
        return result
    distances = surface_distances(pred, ref, spacing)
    pooled = distances.pooled_mm
    result.update({
        "hd_mm": float(pooled.max()),
        "hd95_mm": float(np.percentile(pooled, 95)),
        "hd95_max_mm": float(max(np.percentile(distances.pred_to_ref_mm, 95), np.percentile(distances.ref_to_pred_mm, 95))),
        "assd_mm": float(pooled.mean()),
        "assd_mean_of_means_mm": float((distances.pred_to_ref_mm.mean() + distances.ref_to_pred_mm.mean()) / 2.0),
        "surface_dice": float(np.count_nonzero(pooled <= tolerance_mm) / pooled.size),
        "empty": "",
    })
    return result
