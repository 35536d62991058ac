"""One kidney's nephrometry anatomy from the CT and its whole-kidney label: renal sinus fat,
collecting system, rim, hilum, polar lines and sinus lines.

Inputs are a box of a CT reoriented to LPS (numpy axis 0 runs to the patient's superior, see
:mod:`renal_nnunet.anatomy.geometry`), the whole kidney (parenchyma, filled renal sinus and its
masses, as the paper's kidney label and ``kits_anatomy(kidney="paper")`` give it) and the masses.
Every position (the polar lines, centroids, offsets) is read from the box's affine in patient mm;
the array axes serve only to walk the voxels, and per-slice steps use axial slices (axis 0).

Definitions, following the KiTS organisers' seg-to-nephrometry (Heller et al.) unless said:

* **Sinus fat**: voxels of the kidney without its masses whose CT, averaged in-plane over about
  :data:`SINUS_SMOOTHING_MM` (pixel noise; KiTS's 3 x 3 pixels at its ~0.7 mm pixels, but never
  wider than one pixel where pixels are coarser, or thin fat would average away), is below
  :data:`SINUS_FAT_MAX_HU` (-30 HU, as KiTS). Only fat more than
  :data:`SINUS_EDGE_MM` inside the kidney's outer surface seeds it (partial volume with perirenal
  fat at the edge); seeds closer than twice :data:`SINUS_GROUP_MM` join (vessels and calyces split
  the fat), the group with most seed voxels is the sinus, and every fat voxel within
  :data:`SINUS_GROUP_MM` of it belongs to it (so it reaches the surface at the hilum). KiTS grows
  its seeds by a 15 x 15 pixel box per slice instead; distances in mm keep this spacing-independent.
* **Collecting system** (urinary collecting system, UCS): per axial slice, the kidney voxels
  (without masses) inside the 2D convex hull of that slice's sinus fat that are not fat: pelvis,
  calyces and hilar vessels wedged in the fat (KiTS's geometric proxy; no excretory phase is used).
* **Sinus** (R.E.N.A.L.'s "collecting system or sinus"): sinus fat or collecting system.
* **Rim**: the kidney's outer surface (voxels with a face-neighbour outside the kidney) that is
  neither sinus nor mass.
* **Hilum** (the hilar opening): sinus voxels with an in-plane neighbour outside the kidney, the
  largest 26-connected piece. The filled kidney closes the hilar notch, so its sinus reaches the
  outer surface exactly where vessels and pelvis leave the kidney.
* **Polar lines** (R.E.N.A.L. L): the axial planes through the most inferior and most superior
  hilum voxel, where "the medial lip of parenchyma is interrupted by sinus fat, vessels or
  collecting system" (Kutikov & Uzzo). Without a hilum, the sinus's axial extent (noted), and
  without a sinus the kidney's middle third (noted). KiTS silently scores L = 1 there.
* **Sinus lines** (PADUA location): the sinus's axial extent; without a sinus, the polar lines.
* **Centroid**: of the kidney without its masses (KiTS includes them: a large anterior mass drags
  the reference towards itself). **Centre** (C-index): the in-plane centroid of the kidney without
  its masses on the axial slice(s) halfway between its most inferior and most superior voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cc3d
import numpy as np
from scipy import ndimage

from renal_nnunet.anatomy.geometry import ImageGeometry, canonical_axes
from renal_nnunet.anatomy.labels import KIDNEY_STAGE_LABELS
from renal_nnunet.anatomy.sinus import inside_convex_hull

__all__ = ["KidneyAnatomy", "kidney_anatomy", "SINUS_FAT_MAX_HU", "SINUS_SMOOTHING_MM", "SINUS_EDGE_MM", "SINUS_GROUP_MM",
           "POLAR_LINE_SOURCES"]

SINUS_FAT_MAX_HU = -30.0
"""Sinus fat is below this (HU, after the 3 x 3 in-plane mean), as in seg-to-nephrometry."""

SINUS_SMOOTHING_MM = 2.0
"""In-plane width (mm) of the mean that quiets pixel noise before the fat threshold."""

SINUS_EDGE_MM = 2.0
"""Fat within this distance of the kidney's outer surface does not seed the sinus (mm)."""

SINUS_GROUP_MM = 5.0
"""Sinus-fat seeds within twice this distance form one sinus; fat within it joins (mm)."""

POLAR_LINE_SOURCES: tuple[str, ...] = ("hilum", "sinus", "kidney thirds")
"""Where the polar lines came from, best first (see the module docstring)."""

_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = True
_FACES = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True, eq=False)
class KidneyAnatomy:
    """One kidney's structures on a box of an LPS-oriented CT (boolean arrays, numpy (z, y, x)).

    Attributes:
        geometry: the box's geometry (LPS mm).
        side: 1 right or 2 left kidney (``KIDNEY_STAGE_LABELS``).
        kidney: the whole kidney (sinus and masses included).
        masses: every mass voxel of this kidney.
        sinus_fat, collecting_system, rim, hilum: see the module docstring.
        polar_lines_mm: LPS z (mm) of the inferior and superior polar line.
        polar_lines_source: one of :data:`POLAR_LINE_SOURCES`.
        sinus_lines_mm: LPS z (mm) of the sinus's inferior and superior end (the polar lines without a sinus).
        centroid_mm: LPS centroid of the kidney without its masses.
        centre_mm: the C-index's kidney centre (LPS mm).
        notes: fallbacks used, for the user.
    """

    geometry: ImageGeometry
    side: int
    kidney: np.ndarray
    masses: np.ndarray
    sinus_fat: np.ndarray
    collecting_system: np.ndarray
    rim: np.ndarray
    hilum: np.ndarray
    polar_lines_mm: tuple[float, float]
    polar_lines_source: str
    sinus_lines_mm: tuple[float, float]
    centroid_mm: np.ndarray
    centre_mm: np.ndarray
    notes: tuple[str, ...] = field(default=())

    @property
    def sinus(self) -> np.ndarray:
        """Sinus fat or collecting system: what R.E.N.A.L.'s N measures to."""
        return self.sinus_fat | self.collecting_system

    @property
    def medial_sign(self) -> float:
        """+1 where medial is the patient's left (+x: the right kidney), -1 for the left kidney."""
        return 1.0 if self.side == KIDNEY_STAGE_LABELS["kidney_right"] else -1.0

    @property
    def midline_z_mm(self) -> float:
        """LPS z (mm) of the axial renal midline, halfway between the polar lines."""
        return 0.5 * (self.polar_lines_mm[0] + self.polar_lines_mm[1])

    def points_mm(self, mask: np.ndarray) -> np.ndarray:
        """LPS positions (mm) of a mask's voxels on the box, (N, 3)."""
        return self.geometry.index_to_mm(np.argwhere(mask)[:, ::-1])


def kidney_anatomy(ct_hu: np.ndarray, kidney: np.ndarray, masses: np.ndarray, geometry: ImageGeometry,
                   side: int) -> KidneyAnatomy:
    """Derive one kidney's nephrometry anatomy (definitions in the module docstring).

    Args:
        ct_hu: CT values (HU) on the box, numpy (z, y, x).
        kidney: the whole kidney (sinus and masses included), with at least one background voxel
            on every side of the box.
        masses: mass voxels (only those inside ``kidney`` count).
        geometry: the box's geometry; its axes must run along LPS (``to_canonical_orientation``).
        side: 1 right or 2 left.

    Raises:
        ValueError: the geometry is not LPS-oriented or the kidney is empty.
    """
    axes, signs = canonical_axes(geometry.direction)
    if axes != (0, 1, 2) or signs != (1, 1, 1):
        raise ValueError("nephrometry anatomy needs a box of an LPS-oriented image (to_canonical_orientation)")
    if not kidney.any():
        raise ValueError("the kidney is empty")
    masses = masses & kidney
    spacing_zyx = np.asarray(geometry.spacing_mm[::-1])
    without_masses = kidney & ~masses
    sinus_fat = _sinus_fat(ct_hu, kidney, without_masses, spacing_zyx)
    collecting_system = _collecting_system(sinus_fat, without_masses)
    sinus = sinus_fat | collecting_system
    outside = ~kidney
    rim = kidney & ndimage.binary_dilation(outside, _FACES) & ~sinus & ~masses
    hilum = _largest_piece(sinus & ndimage.binary_dilation(outside, _IN_PLANE))
    reference = without_masses if without_masses.any() else kidney
    notes = []
    if hilum.any():
        polar_lines, source = _extent(_z_mm(geometry, hilum)), "hilum"
    elif sinus.any():
        polar_lines, source = _extent(_z_mm(geometry, sinus)), "sinus"
        notes.append("no hilar opening found: polar lines at the sinus's ends; h not decidable")
    else:
        low, high = _extent(_z_mm(geometry, reference))
        polar_lines, source = (low + (high - low) / 3, high - (high - low) / 3), "kidney thirds"
        notes.append("no renal sinus fat found: polar lines at the kidney's thirds, N, h and the PADUA sinus "
                     "items not decidable (scored as far from the sinus)")
    sinus_lines = _extent(_z_mm(geometry, sinus)) if sinus.any() else polar_lines
    points = geometry.index_to_mm(np.argwhere(reference)[:, ::-1])
    return KidneyAnatomy(
        geometry=geometry, side=int(side), kidney=kidney, masses=masses, sinus_fat=sinus_fat,
        collecting_system=collecting_system, rim=rim, hilum=hilum, polar_lines_mm=polar_lines,
        polar_lines_source=source, sinus_lines_mm=sinus_lines, centroid_mm=points.mean(axis=0),
        centre_mm=_centre(points, spacing_zyx[0]), notes=tuple(notes),
    )


def _sinus_fat(ct_hu: np.ndarray, kidney: np.ndarray, without_masses: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    width = [1, *(2 * max(0, int(round((SINUS_SMOOTHING_MM / s - 1) / 2))) + 1 for s in spacing_zyx[1:])]
    smoothed = ndimage.uniform_filter(ct_hu.astype(np.float32), size=width)
    fat = without_masses & (smoothed < SINUS_FAT_MAX_HU)
    seeds = fat & (ndimage.distance_transform_edt(kidney, sampling=spacing_zyx) > SINUS_EDGE_MM)
    if not seeds.any():
        return np.zeros_like(fat)
    near = ndimage.distance_transform_edt(~seeds, sampling=spacing_zyx) <= SINUS_GROUP_MM
    groups = cc3d.connected_components(near, connectivity=26)
    seeds_per_group = np.bincount(groups[seeds])
    seeds_per_group[0] = 0
    return fat & (groups == seeds_per_group.argmax())


def _collecting_system(sinus_fat: np.ndarray, without_masses: np.ndarray) -> np.ndarray:
    """Per axial slice: kidney voxels inside the 2D convex hull of the sinus fat that are not fat."""
    out = np.zeros_like(sinus_fat)
    for z in np.flatnonzero(sinus_fat.any(axis=(1, 2))):
        fat = np.argwhere(sinus_fat[z])
        low, high = fat.min(axis=0), fat.max(axis=0) + 1
        window = (slice(low[0], high[0]), slice(low[1], high[1]))
        candidates = np.argwhere(without_masses[z][window] & ~sinus_fat[z][window]) + low
        if len(fat) >= 3 and len(candidates):
            inside = inside_convex_hull(fat.astype(float), candidates.astype(float))
            out[z][tuple(candidates[inside].T)] = True
    return out


def _z_mm(geometry: ImageGeometry, mask: np.ndarray) -> np.ndarray:
    """LPS z (mm) of a mask's voxels."""
    return geometry.index_to_mm(np.argwhere(mask)[:, ::-1])[:, 2]


def _largest_piece(mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return mask
    return cc3d.largest_k(mask, k=1, connectivity=26) > 0


def _extent(values: np.ndarray) -> tuple[float, float]:
    return float(values.min()), float(values.max())


def _centre(points_mm: np.ndarray, slice_mm: float) -> np.ndarray:
    """In-plane centroid of the points on the slice(s) halfway between their lowest and highest z."""
    z = points_mm[:, 2]
    middle = 0.5 * (z.min() + z.max())
    near = np.abs(z - middle) <= 0.5 * slice_mm + 1e-6
    if not near.any():
        near = np.abs(z - middle) == np.abs(z - middle).min()
    return np.array([*points_mm[near, :2].mean(axis=0), middle])
