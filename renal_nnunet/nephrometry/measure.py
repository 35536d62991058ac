"""Continuous nephrometry measurements of one renal mass in its kidney (mm, fractions, offsets).

Every measurement is in patient mm (LPS: +x patient left, +y posterior, +z superior). Each one
feeds one or more point tables of :mod:`renal_nnunet.nephrometry.points`:

* ``max_diameter_mm`` (R, PADUA size): the largest extent of the mass in any direction, 3D (the
  published "maximal diameter"): the longest distance between two voxel centres of its surface,
  plus one voxel's length along that line (the spacing, for a line along an image axis; the voxel
  centres of a ball lie up to half a voxel inside its surface at either end).
  KiTS measures in 2D on the axial slice of largest area, which misses cranio-caudal length.
* ``endophytic_fraction`` (E, PADUA exophytic rate): the share of mass voxels inside the 2D convex
  hull of the kidney without masses (each in-plane connected piece of it) on their axial slice, as
  seg-to-nephrometry does: the hull is the kidney's outline as it would be without the mass.
* ``sinus_distance_mm`` (N): the gap between the mass and the sinus (fat or collecting system,
  :mod:`renal_nnunet.nephrometry.kidney`); ``sinus_fat_distance_mm`` and
  ``collecting_system_distance_mm`` (PADUA sinus and UCS items), ``hilum_distance_mm`` (h).
  A **gap** is the distance between the nearest faces of two sets of voxels (each voxel a box of
  its spacing): 0 where they touch, so a contact reads 0 mm at any spacing. KiTS measures between
  voxel centres, where a contact reads one voxel (0.7 mm in-plane, 5 mm across thick slices).
  ``inf`` where the structure was not found.
* ``anterior_offset_mm`` (A, PADUA suffix): the mass centroid's LPS y minus the kidney centroid's
  (negative = anterior).
* ``polar_fraction`` and ``crosses_polar_midline`` (L): the share of mass voxels whose centres lie
  between the polar lines (inclusive), and whether the mass's axial extent (voxel centres plus half
  a slice) passes the plane halfway between them.
* ``sinus_line_fraction`` (PADUA location): the share between the sinus lines.
* ``medial_offset_mm`` (PADUA rim): where the rim is closest to the mass (the mean position of the
  rim voxels at the smallest gap), its LPS x minus the kidney centroid's, positive towards the
  patient's midline (the kidney's side decides which way that is, never the image centre).
* ``centre_distance_mm`` (C-index c): from the mass's 3D centroid to the kidney's centre. KiTS
  takes the in-plane centroid on the slice of largest mass area; the 3D centroid is the centre of
  the mass itself. The C-index radius is ``max_diameter_mm / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError, cKDTree

from renal_nnunet.anatomy.sinus import inside_convex_hull
from renal_nnunet.nephrometry.kidney import KidneyAnatomy

__all__ = ["MassMeasurements", "measure_mass", "voxel_gap_mm", "max_diameter_mm", "endophytic_fraction", "kidney_outline"]

_FACES = ndimage.generate_binary_structure(3, 1)
_IN_PLANE_NEIGHBOURS = np.ones((3, 3), bool)


@dataclass(frozen=True)
class MassMeasurements:
    """One mass's continuous measurements (definitions in the module docstring; mm unless named)."""

    max_diameter_mm: float
    endophytic_fraction: float
    sinus_distance_mm: float
    anterior_offset_mm: float
    polar_fraction: float
    crosses_polar_midline: bool
    hilum_distance_mm: float
    sinus_line_fraction: float
    medial_offset_mm: float
    sinus_fat_distance_mm: float
    collecting_system_distance_mm: float
    centre_distance_mm: float
    centroid_mm: tuple[float, float, float]

    @property
    def radius_mm(self) -> float:
        """The C-index's mass radius: half the maximal diameter."""
        return self.max_diameter_mm / 2.0


def measure_mass(mass: np.ndarray, anatomy: KidneyAnatomy) -> MassMeasurements:
    """Measure one mass (a boolean mask on ``anatomy``'s box) in its kidney.

    Raises:
        ValueError: the mass is empty.
    """
    if not mass.any():
        raise ValueError("the mass is empty")
    spacing_zyx = np.asarray(anatomy.geometry.spacing_mm[::-1])
    surface = np.argwhere(_surface(mass))
    points = anatomy.points_mm(mass)
    centroid = points.mean(axis=0)
    rim_gap, nearest_rim = _closest(surface, np.argwhere(anatomy.rim), spacing_zyx)
    if math.isfinite(rim_gap):
        rim_x = anatomy.geometry.index_to_mm(nearest_rim[:, ::-1])[:, 0].mean()
    else:
        rim_x = centroid[0]

    def gap(target: np.ndarray) -> float:
        return _closest(surface, np.argwhere(_surface(target)), spacing_zyx)[0]

    return MassMeasurements(
        max_diameter_mm=max_diameter_mm(surface, spacing_zyx),
        endophytic_fraction=endophytic_fraction(mass, anatomy.kidney & ~anatomy.masses),
        sinus_distance_mm=gap(anatomy.sinus),
        anterior_offset_mm=float(centroid[1] - anatomy.centroid_mm[1]),
        polar_fraction=_fraction_between(points[:, 2], anatomy.polar_lines_mm),
        crosses_polar_midline=_crosses(points[:, 2], anatomy.midline_z_mm, spacing_zyx[0]),
        hilum_distance_mm=gap(anatomy.hilum),
        sinus_line_fraction=_fraction_between(points[:, 2], anatomy.sinus_lines_mm),
        medial_offset_mm=float((rim_x - anatomy.centroid_mm[0]) * anatomy.medial_sign),
        sinus_fat_distance_mm=gap(anatomy.sinus_fat),
        collecting_system_distance_mm=gap(anatomy.collecting_system),
        centre_distance_mm=float(np.linalg.norm(centroid - anatomy.centre_mm)),
        centroid_mm=tuple(float(v) for v in centroid),
    )


def voxel_gap_mm(a: np.ndarray, b: np.ndarray, spacing_zyx_mm) -> float:
    """Gap (mm) between two boolean masks on one grid: the distance between their nearest voxel
    faces, 0 where they touch (share a face, edge or corner) or overlap; ``inf`` if one is empty.

    >>> a = np.zeros((1, 1, 6), bool); b = a.copy(); a[0, 0, 0] = True; b[0, 0, 3] = True
    >>> voxel_gap_mm(a, b, (5.0, 1.0, 2.0))
    4.0
    """
    spacing = np.asarray(spacing_zyx_mm, float)
    if (a & b).any():
        return 0.0
    return _closest(np.argwhere(_surface(a)), np.argwhere(_surface(b)), spacing)[0]


def max_diameter_mm(surface_zyx: np.ndarray, spacing_zyx_mm) -> float:
    """Maximal 3D diameter (mm) of a mass from its surface voxels' indices (module docstring).

    >>> max_diameter_mm(np.array([[0, 0, 0], [0, 0, 9]]), (3.0, 1.0, 1.0))
    10.0
    >>> round(max_diameter_mm(np.array([[0, 0, 0], [3, 4, 0]]), (1.0, 1.0, 1.0)), 3)  # 5 mm + a 1 mm voxel
    6.0
    """
    spacing = np.asarray(spacing_zyx_mm, float)
    points = np.asarray(surface_zyx, float) * spacing
    if len(points) > 4:
        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # flat or linear mass: every point is a candidate
            pass
    length, first, second = 0.0, 0, 0
    for start in range(0, len(points), 1024):  # bounded memory: 1024 x hull vertices per step
        distances = np.linalg.norm(points[start:start + 1024, None, :] - points[None, :, :], axis=-1)
        row, column = np.unravel_index(int(np.argmax(distances)), distances.shape)
        if distances[row, column] > length:
            length, first, second = float(distances[row, column]), start + row, column
    if length == 0.0:
        return float(spacing.max())
    direction = (points[first] - points[second]) / length
    return length + float(1.0 / np.linalg.norm(direction / spacing))


def endophytic_fraction(mass: np.ndarray, kidney_without_masses: np.ndarray) -> float:
    """Share of ``mass`` voxels inside :func:`kidney_outline` of ``kidney_without_masses`` on their
    axial slice (numpy axis 0); 0.0 for an empty mass."""
    total = int(np.count_nonzero(mass))
    inside = sum(int(np.count_nonzero(mass[z] & kidney_outline(kidney_without_masses[z])))
                 for z in np.flatnonzero(mass.any(axis=(1, 2))))
    return inside / total if total else 0.0


def kidney_outline(kidney_slice: np.ndarray) -> np.ndarray:
    """The kidney's outline on one axial slice: the 2D convex hull of each in-plane connected piece
    (8-neighbours) of the kidney without its masses, filled (what E calls endophytic)."""
    out = kidney_slice.copy()
    pieces, _ = ndimage.label(kidney_slice, structure=_IN_PLANE_NEIGHBOURS)
    for piece, box in enumerate(ndimage.find_objects(pieces), start=1):
        low = np.array([box[0].start, box[1].start])
        pixels = np.argwhere(pieces[box] == piece) + low
        query = np.argwhere(~kidney_slice[box]) + low
        if len(pixels) >= 3 and len(query):
            out[tuple(query[inside_convex_hull(pixels.astype(float), query.astype(float))].T)] = True
    return out


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face-neighbour outside it (or on the array's edge)."""
    return mask & ~ndimage.binary_erosion(mask, _FACES)


def _gaps(first: np.ndarray, second: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Face-to-face gaps (mm) of paired voxels (index rows): per axis the index distance less one
    voxel (the two half-voxels), never below 0."""
    return np.linalg.norm(np.clip(np.abs(first - second) - 1, 0, None) * spacing, axis=-1)


def _closest(query: np.ndarray, target: np.ndarray, spacing: np.ndarray) -> tuple[float, np.ndarray]:
    """Smallest gap (mm) between two sets of voxels (index rows) and the target voxels at it.

    Index space scaled by the spacing is patient space up to a rotation, so a k-d tree on it
    finds the nearest voxel centres; a gap is never less than the centre distance minus the
    voxel diagonal, so every pair that can beat the nearest centres' gap lies within that reach.
    """
    if not len(query) or not len(target):
        return math.inf, target[:0]
    tree = cKDTree(target * spacing)
    centre_distance, nearest = tree.query(query * spacing)
    reach = float(_gaps(query, target[nearest], spacing).min() + np.linalg.norm(spacing)) + 1e-6
    close = np.flatnonzero(centre_distance <= reach)
    neighbours = tree.query_ball_point(query[close] * spacing, r=reach)
    query_rows = np.repeat(close, [len(n) for n in neighbours])
    target_rows = np.concatenate([np.asarray(n, int) for n in neighbours])
    gaps = _gaps(query[query_rows], target[target_rows], spacing)
    best = float(gaps.min())
    return best, target[np.unique(target_rows[gaps <= best + 1e-6])]


def _fraction_between(z_mm: np.ndarray, lines_mm: tuple[float, float]) -> float:
    return float(np.mean((z_mm >= lines_mm[0] - 1e-6) & (z_mm <= lines_mm[1] + 1e-6)))


def _crosses(z_mm: np.ndarray, plane_mm: float, slice_mm: float) -> bool:
    return bool(z_mm.min() - slice_mm / 2 < plane_mm < z_mm.max() + slice_mm / 2)
