"""Synthetic CT painted onto a real KiTS label map (0 background, 1 kidney, 2 tumour, 3 cyst).

KiTS label maps carry only the kidneys and their masses, so a plausible body is built around
them. The body frame is derived from the kidneys in patient coordinates, never from array indices:

* the labelled voxels' LPS x positions are split into two clusters (1D 2-means);
* two kidneys (each cluster holding at least 5 % of the voxels, centroids at least 100 mm apart;
  adult kidneys lie ~150 mm apart, a kidney with an exophytic tumour spans less): the midline
  (spine) lies halfway between the two centroids;
* one kidney: its side is the side of the image's left-right physical centre (the CT table's
  centre, near the patient's midline) it lies on, and the midline is put 75 mm medial to it (a
  typical kidney-to-midline distance), so the spine, liver and spleen surround it the way they
  would in the patient;
* antero-posteriorly the kidneys' centroid sits 50 mm behind the body centre, cranio-caudally it
  is the frame's kidney level; the body ellipse is widened until every labelled voxel lies well
  inside the abdominal cavity.
"""

from __future__ import annotations

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.geometry import ImageGeometry, image_like, physical_points_mm
from renal_nnunet.anatomy.labels import KITS_LABELS
from renal_nnunet.synthetic.anatomy import (
    ABDOMINAL_WALL_MM,
    KIDNEY_CENTRE_MM,
    SUBCUTANEOUS_FAT_MM,
    BodyLayout,
    paint_background,
)
from renal_nnunet.synthetic.shapes import Ellipsoid, paint
from renal_nnunet.synthetic.textures import add_noise_hu, lesion_texture_hu, sample_tissue_hu, tumour_kind_for_subtype

MIN_SIDE_FRACTION = 0.05
MIN_KIDNEY_SEPARATION_MM = 100.0
SINGLE_KIDNEY_MIDLINE_OFFSET_MM = 75.0
SUBSAMPLED_VOXELS = 4_000_000


def _labelled_box(array: np.ndarray) -> tuple[slice, ...] | None:
    """Numpy slices of the bounding box of the labelled voxels, or None if there are none."""
    box = []
    for axis in range(3):
        present = np.flatnonzero(array.any(axis=tuple(a for a in range(3) if a != axis)))
        if not len(present):
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def _labelled_points_mm(labels: sitk.Image, array: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """LPS positions (mm) of labelled voxels, on a sub-sampled lattice for large label maps."""
    sub = array[box]
    step = max(1, int(np.ceil((sub.size / SUBSAMPLED_VOXELS) ** (1 / 3))))
    indices = np.argwhere(sub[::step, ::step, ::step] > 0) * step + [s.start for s in box]
    return physical_points_mm(labels, indices)


def _two_means_1d(values: np.ndarray, iterations: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Split 1D values into a low and a high cluster (Lloyd's 2-means from the extremes)."""
    low_centre, high_centre = values.min(), values.max()
    for _ in range(iterations):
        high = values > (low_centre + high_centre) / 2
        if high.all() or not high.any():
            break
        low_centre, high_centre = values[~high].mean(), values[high].mean()
    return values[~high], values[high]


def body_midline_from_kidneys_mm(labels: sitk.Image, points_mm: np.ndarray) -> float:
    """LPS x (mm) of the body midline for a KiTS label map (rule in the module docstring)."""
    right, left = _two_means_1d(points_mm[:, 0])
    two_kidneys = (
        min(len(right), len(left)) >= MIN_SIDE_FRACTION * len(points_mm)
        and left.mean() - right.mean() >= MIN_KIDNEY_SEPARATION_MM
    )
    if two_kidneys:
        return float((left.mean() + right.mean()) / 2)
    kidney_x = points_mm[:, 0].mean()
    side = 1.0 if kidney_x > ImageGeometry.of(labels).centre_mm()[0] else -1.0  # +1: patient's left
    return float(kidney_x - side * SINGLE_KIDNEY_MIDLINE_OFFSET_MM)


def body_layout_from_kidneys(labels: sitk.Image, points_mm: np.ndarray) -> BodyLayout:
    """Body frame for a KiTS label map from its labelled voxels' LPS positions (see module doc)."""
    midline = body_midline_from_kidneys_mm(labels, points_mm)
    kidney_level = points_mm.mean(0)
    centre_y = kidney_level[1] - KIDNEY_CENTRE_MM["left"][1]
    margin = SUBCUTANEOUS_FAT_MM + ABDOMINAL_WALL_MM + 20.0
    semi_x = max(165.0, np.abs(points_mm[:, 0] - midline).max() + margin)
    semi_y = max(120.0, np.abs(points_mm[:, 1] - centre_y).max() + margin)
    return BodyLayout((float(midline), float(centre_y), float(kidney_level[2])), (float(semi_x), float(semi_y)))


def _perirenal_fat(points_mm: np.ndarray, midline_mm: float) -> list[Ellipsoid]:
    """Fat ellipsoids around each side's labelled voxels (this also fills the unlabelled sinus)."""
    shells = []
    for side_points in (points_mm[points_mm[:, 0] <= midline_mm], points_mm[points_mm[:, 0] > midline_mm]):
        if len(side_points):
            low, high = side_points.min(0), side_points.max(0)
            shells.append(Ellipsoid(tuple((low + high) / 2), tuple(0.5 * 1.2 * (high - low) + 10.0)))
    return shells


def paint_masses(ct: np.ndarray, array: np.ndarray, box, spacing_zyx_mm, subtype: str | None, rng) -> None:
    """Texture each tumour (label 2) and cyst (label 3) component with its own parameters."""
    labels_in_box = array[box]
    masses = np.where(labels_in_box >= KITS_LABELS["tumor"], labels_in_box, 0)
    components = cc3d.connected_components(masses, connectivity=26)
    for component_id, component_box in enumerate(ndimage.find_objects(components), start=1):
        inside = components[component_box] == component_id
        label = int(masses[component_box][inside][0])
        kind = tumour_kind_for_subtype(subtype) if label == KITS_LABELS["tumor"] else "cystic"
        multilocular = label == KITS_LABELS["tumor"] and subtype == "multilocular_cystic_rcc"
        values = lesion_texture_hu(kind, inside, spacing_zyx_mm, rng, multilocular=multilocular)
        ct[box][component_box][inside] = np.rint(values[inside]).astype(np.int16)


def paint_ct(labels: sitk.Image, subtype: str | None, seed: int) -> sitk.Image:
    """Synthetic CT (int16 HU) on the grid of a real KiTS label map.

    Args:
        labels: KiTS label map (0 background, 1 kidney, 2 tumour, 3 cyst), any orientation.
        subtype: the patient's ``tumor_histologic_subtype``; tumours look like AML for
            ``angiomyolipoma``, like cysts for ``cyst``/``multilocular_cystic_rcc``, solid otherwise.
        seed: random seed (same labels + seed -> identical CT).

    Returns:
        The CT, sharing ``labels``' size, spacing, origin and direction. Kidney voxels are enhancing
        cortex (160-240 HU); unlabelled voxels around and inside the kidneys (sinus) are fat.

    Raises:
        ValueError: the label map has no labelled voxel, or values outside {0, 1, 2, 3}.
    """
    rng = np.random.default_rng(seed)
    array = sitk.GetArrayViewFromImage(labels)
    box = _labelled_box(array)
    if box is None:
        raise ValueError("the label map holds no kidney, tumour or cyst voxel; cannot place the body")
    if array[box].max() > KITS_LABELS["cyst"] or array[box].min() < 0:
        raise ValueError(f"label values must be in {{0, 1, 2, 3}}; found {sorted(np.unique(array[box]).tolist())}")
    points_mm = _labelled_points_mm(labels, array, box)
    geometry = ImageGeometry.of(labels)
    layout = body_layout_from_kidneys(labels, points_mm)
    hu = sample_tissue_hu(rng)
    ct = np.empty(array.shape, np.int16)
    paint_background(ct, geometry, layout, hu, rng)
    for shell in _perirenal_fat(points_mm, layout.origin_mm[0]):
        paint(ct, geometry, shell, hu.visceral_fat)
    np.copyto(ct[box], np.int16(hu.renal_cortex), where=array[box] == KITS_LABELS["kidney"])
    paint_masses(ct, array, box, geometry.spacing_mm[::-1], subtype, rng)
    add_noise_hu(ct, hu.noise_sd, rng)
    return image_like(ct, labels)
