"""Kidney sides and masses of a label map, in either label convention, for evaluation.

Both conventions are reduced to one :class:`Anatomy`: a side for every kidney or mass voxel, the
mass mask and a mass class per voxel (pipeline labels 3 AML, 4 cystic, 5 solid, 6 unknown/too
small).

Sides (ITK LPS: +x is the patient's LEFT; decided from the geometry, never from array indices):

* pipeline labels (1 right kidney, 2 left kidney, 3-6 masses): kidney voxels keep their label. A
  mass component (``connectivity``-connected) takes its side by the pipeline's rule,
  :func:`renal_nnunet.anatomy.sides.mass_side` (the kidney label most common within two voxels of
  it); a mass out of every kidney's reach takes the side of the nearest kidney centroid (mm); with
  no kidney at all, the side of its centroid's LPS x relative to the image's physical centre.
* KiTS labels (1 kidney, 2 tumour, 3 cyst): kidney, tumour and cyst voxels together form the
  kidneys; their sides come from :func:`renal_nnunet.anatomy.sides.kidney_side_labels`
  with the midline of :func:`midline_between_kidneys_mm` (no CT is needed). By default the kidney
  is the paper's, as the converter makes it (:func:`renal_nnunet.anatomy.sides.paper_kidneys`:
  renal sinus filled, masses included); ``kidney="kits"`` keeps KiTS's own kidney (sinus fat
  excluded). With two kidneys the midline between them puts every kidney on the side the CT's
  body midline does; only a kidney crossing the midline (horseshoe) is split at another x. Tumours have class
  ``unknown`` (their pathology is per patient, not in the labels; give a lesion table for classes),
  cysts are ``cystic``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import image_like, patient_left_mm, physical_points_mm
from renal_nnunet.anatomy.labels import KIDNEY_SIDE_LABELS, KITS_LABELS, OUTPUT_LABELS, OUTPUT_MASS_LABELS
from renal_nnunet.anatomy.sides import MASS_SIDE_REACH_VOXELS, kidney_side_labels, mass_side, paper_kidneys
from renal_nnunet.anatomy.sinus import SINUS_CLOSING_RADIUS_MM

__all__ = ["Anatomy", "pipeline_anatomy", "kits_anatomy", "midline_between_kidneys_mm", "image_centre_x_mm",
           "SECOND_KIDNEY_MIN_FRACTION", "KIDNEY_CONVENTIONS"]

KIDNEY_CONVENTIONS: tuple[str, ...] = ("paper", "kits")
"""What a KiTS reference's kidney is: the paper's (sinus filled, as the converter trains on) or KiTS's own."""
SECOND_KIDNEY_MIN_FRACTION = 0.2
"""A second kidney component counts for the midline only if it has at least this fraction of the
largest component's voxels (small fragments do not)."""


@dataclass(frozen=True)
class Anatomy:
    """Kidneys and masses of one label map, arrays in numpy (z, y, x) order.

    Attributes:
        side: uint8, 1 right / 2 left for every kidney or mass voxel, 0 elsewhere.
        mass: bool mask of all masses.
        mass_class: uint8 pipeline mass label (3 AML, 4 cystic, 5 solid, 6 unknown) on mass voxels.
    """

    side: np.ndarray
    mass: np.ndarray
    mass_class: np.ndarray


def image_centre_x_mm(image: sitk.Image) -> float:
    """LPS x (mm) of the physical centre of the image."""
    centre_zyx = (np.asarray(image.GetSize()[::-1], float) - 1.0) / 2.0
    return float(patient_left_mm(image, centre_zyx[None])[0])


def midline_between_kidneys_mm(kidney_mask: sitk.Image, fallback_x_mm: float | None = None) -> float:
    """LPS x (mm) halfway between the two largest kidney components' centroids.

    Used when no CT is at hand. With one kidney component (one kidney, or a horseshoe kidney), or a
    second component under :data:`SECOND_KIDNEY_MIN_FRACTION` of the first, ``fallback_x_mm`` is
    returned: by default the image's physical centre (patients lie near the centre of the field of
    view); pass the uncropped image's centre when ``kidney_mask`` is a crop.
    """
    fallback = image_centre_x_mm(kidney_mask) if fallback_x_mm is None else float(fallback_x_mm)
    array = sitk.GetArrayViewFromImage(kidney_mask) != 0
    components, count = cc3d.connected_components(array, connectivity=26, return_N=True)
    if count < 2:
        return fallback
    stats = cc3d.statistics(components)
    voxels = stats["voxel_counts"][1:]
    first, second = np.argsort(voxels)[::-1][:2]
    if voxels[second] < SECOND_KIDNEY_MIN_FRACTION * voxels[first]:
        return fallback
    centroids = stats["centroids"][1:][[first, second]]
    return float(patient_left_mm(kidney_mask, centroids).mean())


def kits_anatomy(seg: sitk.Image, midline_mm: float | None = None, centre_x_mm: float | None = None,
                 kidney: str = "paper", sinus_radius_mm: float = SINUS_CLOSING_RADIUS_MM) -> Anatomy:
    """Anatomy of a KiTS label map (0 bg, 1 kidney, 2 tumour, 3 cyst).

    Args:
        seg: the label map (or a crop of it; for ``kidney="paper"`` with a margin of
            :func:`~renal_nnunet.anatomy.sinus.fill_margin_voxels` around the kidneys, or the
            image edge, so the sinus fill is the whole image's).
        midline_mm: LPS x of the body midline (e.g. ``body_midline_mm(ct)``); default
            :func:`midline_between_kidneys_mm`.
        centre_x_mm: LPS x of the uncropped image's centre (the midline's fallback); default
            ``seg``'s own centre.
        kidney: ``paper`` (sinus filled, as the converter does) or ``kits`` (KiTS's kidney).
        sinus_radius_mm: closing radius of the sinus fill, mm (the converter's default).

    Raises:
        ValueError: ``kidney`` is not one of :data:`KIDNEY_CONVENTIONS`.
    """
    if kidney not in KIDNEY_CONVENTIONS:
        raise ValueError(f"kidney must be one of {list(KIDNEY_CONVENTIONS)}, got {kidney!r}")
    array = sitk.GetArrayViewFromImage(seg)
    kidneys = image_like((array > 0).astype(np.uint8), seg)
    if midline_mm is None:
        midline_mm = midline_between_kidneys_mm(kidneys, centre_x_mm)
    sides = (paper_kidneys(kidneys, midline_mm, sinus_radius_mm) if kidney == "paper"
             else kidney_side_labels(kidneys, midline_mm))
    side = sitk.GetArrayFromImage(sides)
    mass_class = np.zeros(array.shape, np.uint8)
    mass_class[array == KITS_LABELS["tumor"]] = OUTPUT_LABELS["mass_too_small"]
    mass_class[array == KITS_LABELS["cyst"]] = OUTPUT_LABELS["cystic"]
    return Anatomy(side=side, mass=mass_class > 0, mass_class=mass_class)


def pipeline_anatomy(seg: sitk.Image, connectivity: int = 26, centre_x_mm: float | None = None) -> Anatomy:
    """Anatomy of a pipeline output (0 bg, 1 right, 2 left kidney, 3-6 masses); sides of masses
    by the rule in the module docstring.

    Args:
        seg: the label map (or a crop of it).
        connectivity: connectivity of mass components (6, 18 or 26).
        centre_x_mm: LPS x of the uncropped image's centre; default ``seg``'s own centre.
    """
    centre_x_mm = image_centre_x_mm(seg) if centre_x_mm is None else float(centre_x_mm)
    array = sitk.GetArrayFromImage(seg)
    mass = np.isin(array, OUTPUT_MASS_LABELS)
    side = np.where(np.isin(array, list(KIDNEY_SIDE_LABELS.values())), array, 0).astype(np.uint8)
    components, count = cc3d.connected_components(mass, connectivity=connectivity, return_N=True)
    if count:
        kidney_centroids = {s: np.argwhere(array == s).mean(axis=0) for s in KIDNEY_SIDE_LABELS.values()
                            if (array == s).any()}
        kidney_centroids_mm = {s: physical_points_mm(seg, c[None])[0] for s, c in kidney_centroids.items()}
        stats = cc3d.statistics(components)
        for component_id in range(1, count + 1):
            box = tuple(slice(max(s.start - MASS_SIDE_REACH_VOXELS, 0), s.stop + MASS_SIDE_REACH_VOXELS)
                        for s in stats["bounding_boxes"][component_id])
            inside = components[box] == component_id
            component_side = mass_side(inside, array[box])  # kidney labels only: not other masses' sides
            if component_side is None:
                centroid_mm = physical_points_mm(seg, stats["centroids"][component_id][None])[0]
                component_side = _nearest_side(centroid_mm, kidney_centroids_mm, centre_x_mm)
            side[box][inside] = component_side
    return Anatomy(side=side, mass=mass, mass_class=np.where(mass, array, 0).astype(np.uint8))


def _nearest_side(centroid_mm: np.ndarray, kidney_centroids_mm: dict[int, np.ndarray], centre_x_mm: float) -> int:
    if kidney_centroids_mm:
        return min(kidney_centroids_mm, key=lambda s: float(np.linalg.norm(kidney_centroids_mm[s] - centroid_mm)))
    return KIDNEY_SIDE_LABELS["left" if centroid_mm[0] > centre_x_mm else "right"]
