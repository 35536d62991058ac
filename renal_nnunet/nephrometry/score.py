"""Nephrometry of every renal mass of a case: R.E.N.A.L., PADUA and C-index points from the
measurements, and the table row every output shares.

Input: the CT (HU), the kidneys (1 right / 2 left on every voxel of each whole kidney: parenchyma,
filled sinus and its masses) and the mass components (one id per mass), on one grid in any storage
orientation. Everything is computed on the LPS-reoriented copies (a lossless permutation of the
axes), so the scores do not depend on how the volumes are stored. A mass belongs to the kidney of
:func:`renal_nnunet.anatomy.sides.mass_side` (the side label most common within two voxels), and
to the connected piece of that kidney it touches most.

Decisions from contact use :data:`CONTACT_MM` on the face-to-face gap of
:mod:`renal_nnunet.nephrometry.measure`:

* PADUA renal sinus: 2 (involved) if the mass touches the sinus fat; PADUA urinary collecting
  system: 2 if it touches the collecting system (the sinus fat where none was found, as KiTS).
  "Dislocated" cannot be read from masks: contact is the proxy (as in seg-to-nephrometry's < 2 mm
  between voxel centres).
* R.E.N.A.L. **h** suffix (Kutikov & Uzzo: the mass touches the main renal artery or vein): the
  vessels are not segmented, so h is decided from the hilar opening they pass through: ``h`` if
  the mass touches it, none if it does not. Not decidable (blank) where no hilar opening was found
  (no sinus fat, or sinus fat not reaching the kidney's surface). This over-calls h for a mass on
  the hilar lip that spares the main vessels. seg-to-nephrometry does not score h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import ImageGeometry, to_canonical_orientation
from renal_nnunet.anatomy.labels import KIDNEY_STAGE_LABELS
from renal_nnunet.anatomy.lesions import lesion_properties
from renal_nnunet.anatomy.sides import MASS_SIDE_REACH_VOXELS, mass_side
from renal_nnunet.io import check_same_geometry
from renal_nnunet.nephrometry import points as tables
from renal_nnunet.nephrometry.kidney import KidneyAnatomy, kidney_anatomy
from renal_nnunet.nephrometry.measure import MassMeasurements, measure_mass
from renal_nnunet.nephrometry.view import MassView, mass_view

__all__ = ["CONTACT_MM", "CONTEXT_MM", "SOLID_ONLY_NOTE", "NephrometryPoints", "MassNephrometry", "score_points",
           "score_masses", "POINT_COLUMNS", "MEASUREMENT_COLUMNS", "NEPHROMETRY_COLUMNS", "INTEGER_COLUMNS",
           "nephrometry_dtypes"]

CONTACT_MM = 1.0
"""A mass touches a structure when the gap between their voxels is below this (mm)."""

CONTEXT_MM = 15.0
"""The kidney box reaches this far past the kidney (mm): room for the pictures and the hull."""

SOLID_ONLY_NOTE = "R.E.N.A.L. and PADUA are defined for solid renal masses"
SIDE_NAMES = {KIDNEY_STAGE_LABELS["kidney_right"]: "right", KIDNEY_STAGE_LABELS["kidney_left"]: "left"}


@dataclass(frozen=True)
class NephrometryPoints:
    """Discrete points of one mass (:mod:`renal_nnunet.nephrometry.points`).

    Attributes:
        renal_r, renal_e, renal_n, renal_l: R.E.N.A.L. points, 1-3 each.
        renal_a: ``a``, ``p`` or ``x``.
        renal_h: the h suffix: True, False, or None where not decidable.
        padua_location, padua_exophytic, padua_rim, padua_sinus, padua_collecting_system,
            padua_size: PADUA points (1-2, 1-3, 1-2, 1-2, 1-2, 1-3).
        padua_suffix: ``a`` or ``p``.
    """

    renal_r: int
    renal_e: int
    renal_n: int
    renal_a: str
    renal_l: int
    renal_h: bool | None
    padua_location: int
    padua_exophytic: int
    padua_rim: int
    padua_sinus: int
    padua_collecting_system: int
    padua_size: int
    padua_suffix: str

    @property
    def renal_score(self) -> int:
        """R + E + N + L (4-12)."""
        return self.renal_r + self.renal_e + self.renal_n + self.renal_l

    @property
    def renal_code(self) -> str:
        """The score as urologists write it: sum, A descriptor and h (e.g. ``10ph``)."""
        return f"{self.renal_score}{self.renal_a}{'h' if self.renal_h else ''}"

    @property
    def padua_score(self) -> int:
        """Sum of the six PADUA items (6-14)."""
        return (self.padua_location + self.padua_exophytic + self.padua_rim + self.padua_sinus
                + self.padua_collecting_system + self.padua_size)


def score_points(m: MassMeasurements, hilum_found: bool, collecting_system_found: bool) -> NephrometryPoints:
    """The points of one mass's measurements (rules in the module docstrings)."""
    collecting = m.collecting_system_distance_mm if collecting_system_found else m.sinus_fat_distance_mm
    return NephrometryPoints(
        renal_r=tables.renal_r(m.max_diameter_mm), renal_e=tables.renal_e(m.endophytic_fraction),
        renal_n=tables.renal_n(m.sinus_distance_mm), renal_a=tables.renal_a(m.anterior_offset_mm),
        renal_l=tables.renal_l(m.polar_fraction, m.crosses_polar_midline),
        renal_h=(m.hilum_distance_mm < CONTACT_MM) if hilum_found else None,
        padua_location=tables.padua_location(m.sinus_line_fraction),
        padua_exophytic=tables.renal_e(m.endophytic_fraction), padua_rim=tables.padua_rim(m.medial_offset_mm),
        padua_sinus=tables.padua_contact(m.sinus_fat_distance_mm < CONTACT_MM),
        padua_collecting_system=tables.padua_contact(collecting < CONTACT_MM),
        padua_size=tables.padua_size(m.max_diameter_mm), padua_suffix=tables.padua_suffix(m.anterior_offset_mm),
    )


@dataclass(frozen=True)
class MassNephrometry:
    """Nephrometry of one mass.

    Attributes:
        lesion_id: the mass's component id.
        side: ``right`` or ``left`` ("" when no kidney is within reach).
        measurements: continuous measurements (None: not measurable, see ``notes``).
        points: discrete points (None: measurements only, see ``notes``).
        polar_lines_source: where the kidney's polar lines came from (``hilum``, ``sinus``, ``kidney thirds``).
        notes: why something is missing or which fallback was used.
        view: the two planes the points were read from, for the pictures (None unless asked for).
    """

    lesion_id: int
    side: str
    measurements: MassMeasurements | None
    points: NephrometryPoints | None
    polar_lines_source: str = ""
    notes: tuple[str, ...] = ()
    view: MassView | None = field(default=None, compare=False, repr=False)

    def measurements_only(self, note: str) -> "MassNephrometry":
        """This result without its points, saying why."""
        return replace(self, points=None, notes=(*self.notes, note))

    @property
    def c_index(self) -> float:
        """The C-index (NaN when not measurable)."""
        m = self.measurements
        return math.nan if m is None else tables.c_index(m.centre_distance_mm, m.radius_mm)

    def to_row(self) -> dict:
        """The table columns :data:`NEPHROMETRY_COLUMNS` (None where missing)."""
        p, m = self.points, self.measurements
        row = dict.fromkeys(NEPHROMETRY_COLUMNS)
        if p is not None:
            row.update({name: getattr(p, name) for name in _POINT_FIELDS})
            row.update(renal_category=tables.renal_category(p.renal_score), padua_category=tables.padua_category(p.padua_score),
                       renal_code=p.renal_code, padua_code=f"{p.padua_score}{p.padua_suffix}")
        if m is not None:
            row.update({name: getattr(m, name) for name in _MEASUREMENT_FIELDS})
            row.update(c_index=self.c_index, c_index_distance_mm=m.centre_distance_mm, c_index_radius_mm=m.radius_mm)
        row.update(polar_lines_source=self.polar_lines_source, nephrometry_note="; ".join(self.notes))
        return row


_POINT_FIELDS = ("renal_r", "renal_e", "renal_n", "renal_a", "renal_l", "renal_h", "renal_score", "padua_location",
                 "padua_exophytic", "padua_rim", "padua_sinus", "padua_collecting_system", "padua_size", "padua_score")
_MEASUREMENT_FIELDS = ("max_diameter_mm", "endophytic_fraction", "sinus_distance_mm", "anterior_offset_mm",
                       "polar_fraction", "crosses_polar_midline", "hilum_distance_mm", "sinus_line_fraction",
                       "medial_offset_mm", "sinus_fat_distance_mm", "collecting_system_distance_mm")
POINT_COLUMNS: tuple[str, ...] = (*_POINT_FIELDS[:7], "renal_category", "renal_code", *_POINT_FIELDS[7:],
                                  "padua_category", "padua_code", "c_index")
"""Points, sums, categories and codes, and the C-index."""
MEASUREMENT_COLUMNS: tuple[str, ...] = (*_MEASUREMENT_FIELDS, "c_index_distance_mm", "c_index_radius_mm",
                                        "polar_lines_source", "nephrometry_note")
"""Continuous measurements (mm, fractions) and how they were obtained."""
NEPHROMETRY_COLUMNS: tuple[str, ...] = POINT_COLUMNS + MEASUREMENT_COLUMNS
"""Every nephrometry column of the lesion table and of ``nephrometry.csv``."""
INTEGER_COLUMNS: tuple[str, ...] = tuple(c for c in _POINT_FIELDS if c not in ("renal_a", "renal_h"))


def nephrometry_dtypes(table):
    """A pandas table with the point columns as nullable integers (written ``3``, not ``3.0``,
    and blank where missing) and ``renal_h`` as a nullable boolean."""
    types = {c: "Int64" for c in INTEGER_COLUMNS if c in table.columns}
    if "renal_h" in table.columns:
        types["renal_h"] = "boolean"
    return table.astype(types)


def score_masses(ct: sitk.Image, kidneys: sitk.Image, components: sitk.Image,
                 views: bool = False) -> list[MassNephrometry]:
    """Nephrometry of every mass of ``components`` (module docstring).

    Args:
        ct: the CT in HU.
        kidneys: 1 right / 2 left on each whole kidney (sinus and masses included), same grid.
        components: mass ids (0 background), same grid, e.g. from ``lesion_components``.
        views: also keep each mass's two picture planes (``MassNephrometry.view``).

    Returns:
        One result per mass, by increasing lesion id.

    Raises:
        InputError: the three images do not share one grid.
    """
    check_same_geometry(ct, kidneys, "the CT", "the kidney labels")
    check_same_geometry(ct, components, "the CT", "the mass components")
    ct, kidneys, components = (to_canonical_orientation(image) for image in (ct, kidneys, components))
    geometry = ImageGeometry.of(ct)
    side_array, mass_ids = sitk.GetArrayViewFromImage(kidneys), sitk.GetArrayViewFromImage(components)
    lesions = lesion_properties(components)
    context = np.ceil(CONTEXT_MM / np.asarray(geometry.spacing_mm)).astype(int)
    region = Box.of_nonzero((side_array > 0) | (mass_ids > 0)).grow(context)
    sides, ids = _window(side_array, region, 0), _window(mass_ids, region, 0)
    ct_hu = _window(sitk.GetArrayViewFromImage(ct), region, -1000)
    pieces = {side: cc3d.connected_components(sides == side, connectivity=26) for side in SIDE_NAMES}
    groups, results = {}, {}
    for lesion in lesions:
        box = lesion.bbox.relative_to(region).grow(MASS_SIDE_REACH_VOXELS).clipped_to(region.size)
        kidney = _kidney_of(ids[box.slices] == lesion.lesion_id, sides[box.slices], pieces, box)
        if kidney is None:
            results[lesion.lesion_id] = MassNephrometry(lesion.lesion_id, "", None, None,
                                                        notes=("no kidney within reach: not scored",))
        else:
            groups.setdefault(kidney, []).append(lesion.lesion_id)
    for (side, piece), lesion_ids in groups.items():
        kidney = (pieces[side] == piece) | np.isin(ids, lesion_ids)
        box = Box.of_nonzero(kidney).grow(context)
        box_ct, box_ids = _window(ct_hu, box, -1000), _window(ids, box, 0)
        anatomy = kidney_anatomy(box_ct, _window(kidney, box, False), box_ids > 0, geometry.box(region).box(box), side)
        for lesion_id in lesion_ids:
            results[lesion_id] = _score_one(lesion_id, box_ids == lesion_id, anatomy, box_ct if views else None)
    return [results[lesion.lesion_id] for lesion in lesions]


def _score_one(lesion_id: int, mass: np.ndarray, anatomy: KidneyAnatomy, ct_hu: np.ndarray | None) -> MassNephrometry:
    measurements = measure_mass(mass, anatomy)
    points = score_points(measurements, anatomy.polar_lines_source == "hilum", bool(anatomy.collecting_system.any()))
    view = None if ct_hu is None else mass_view(ct_hu, mass, anatomy)
    return MassNephrometry(lesion_id, SIDE_NAMES[anatomy.side], measurements, points, anatomy.polar_lines_source,
                           anatomy.notes, view)


def _kidney_of(mass: np.ndarray, sides: np.ndarray, pieces: dict[int, np.ndarray], box: Box) -> tuple[int, int] | None:
    """(side, connected piece of that side's kidney) of a mass, from a window ``box`` of the
    region reaching two voxels past it; None where no kidney is within reach."""
    side = mass_side(mass, sides)
    if side is None:
        return None
    under = pieces[side][box.slices][ndimage.binary_dilation(mass, iterations=MASS_SIDE_REACH_VOXELS)]
    return side, int(np.bincount(under[under > 0]).argmax())


def _window(array: np.ndarray, box: Box, fill) -> np.ndarray:
    """``array``'s voxels in ``box`` (numpy z, y, x), ``fill`` where the box leaves the array."""
    inside = box.clipped_to(array.shape[::-1])
    out = np.full(box.shape_zyx, fill, dtype=array.dtype)
    out[inside.relative_to(box).slices] = array[inside.slices]
    return out
