"""The published point tables of R.E.N.A.L., PADUA and the C-index, as scalar pure functions.

Each function takes one continuous measurement (mm, a fraction, a signed offset) from
:mod:`renal_nnunet.nephrometry.measure` and returns the points of the published table, with the
boundaries exactly as published (cut-offs at 4 and 7 cm, 4 and 7 mm, 50 %):

* R.E.N.A.L.: Kutikov A, Uzzo RG. *The R.E.N.A.L. nephrometry score.* J Urol 2009;182:844-853.
  Sum R+E+N+L, 4-12; low 4-6, intermediate 7-9, high 10-12; suffix a/p/x (and h).
* PADUA: Ficarra V et al. *Preoperative aspects and dimensions used for an anatomical (PADUA)
  classification of renal tumours.* Eur Urol 2009;56:786-793. Sum of six items, 6-14; low 6-7,
  intermediate 8-9, high >= 10; suffix a/p.
* C-index: Simmons MN et al. *Kidney tumor location measurement using the C index method.* J Urol
  2010;183:1708-1713. ``c / r``, continuous (no published point table).

>>> renal_r(40.0), renal_r(40.1), renal_r(69.9), renal_r(70.0)
(1, 2, 2, 3)
>>> padua_size(70.0), padua_size(70.1)
(2, 3)
>>> renal_n(7.0), renal_n(4.1), renal_n(4.0)
(1, 2, 3)
>>> renal_e(0.5), renal_e(0.51), renal_e(1.0)
(1, 2, 3)
>>> renal_category(6), renal_category(7), padua_category(10)
('low', 'intermediate', 'high')
"""

from __future__ import annotations

import math

__all__ = [
    "ANTERIOR_POSTERIOR_MARGIN_MM", "ENTIRELY_ENDOPHYTIC_FRACTION", "RENAL_CATEGORIES", "PADUA_CATEGORIES",
    "renal_r", "renal_e", "renal_n", "renal_a", "renal_l", "renal_category", "padua_location", "padua_rim",
    "padua_contact", "padua_size", "padua_suffix", "padua_category", "c_index",
]

ANTERIOR_POSTERIOR_MARGIN_MM = 10.0
"""A mass whose centroid lies within this distance (mm, along the patient's antero-posterior axis)
of the kidney's centroid is ``x`` (neither anterior nor posterior). Kutikov gives no number; 10 mm
is the KiTS organisers' (seg-to-nephrometry) choice."""

ENTIRELY_ENDOPHYTIC_FRACTION = 1.0
"""E = 3 needs every mass voxel inside the kidney's outline (no exophytic voxel at all), as in
seg-to-nephrometry (``exophytic == 0``)."""

RENAL_CATEGORIES: tuple[tuple[int, int, str], ...] = ((4, 6, "low"), (7, 9, "intermediate"), (10, 12, "high"))
"""R.E.N.A.L. sum ranges (inclusive) and their complexity (Kutikov & Uzzo 2009)."""

PADUA_CATEGORIES: tuple[tuple[int, int, str], ...] = ((6, 7, "low"), (8, 9, "intermediate"), (10, 14, "high"))
"""PADUA sum ranges (inclusive) and their risk class (Ficarra et al. 2009: 6-7, 8-9, >= 10)."""


def renal_r(diameter_mm: float) -> int:
    """R, radius (maximal diameter): 1 for <= 4 cm, 2 for > 4 and < 7 cm, 3 for >= 7 cm."""
    return 1 if diameter_mm <= 40.0 else 2 if diameter_mm < 70.0 else 3


def renal_e(endophytic_fraction: float) -> int:
    """E, exophytic/endophytic: 1 for >= 50 % exophytic, 2 for < 50 % exophytic, 3 for entirely
    endophytic. ``endophytic_fraction`` is the share of mass voxels inside the kidney's outline;
    exactly half exophytic scores 1 ("50 % or more exophytic"). Also PADUA's exophytic rate."""
    if endophytic_fraction >= ENTIRELY_ENDOPHYTIC_FRACTION:
        return 3
    return 2 if endophytic_fraction > 0.5 else 1


def renal_n(distance_mm: float) -> int:
    """N, nearness to the collecting system or sinus: 1 for >= 7 mm, 2 for > 4 and < 7 mm, 3 for
    <= 4 mm (``inf`` when neither was found scores 1)."""
    return 1 if distance_mm >= 7.0 else 2 if distance_mm > 4.0 else 3


def renal_a(anterior_offset_mm: float, margin_mm: float = ANTERIOR_POSTERIOR_MARGIN_MM) -> str:
    """A, anterior/posterior descriptor from the mass centroid's offset from the kidney centroid
    along the patient's posterior axis (LPS y, mm; negative = anterior): ``a``, ``p`` or ``x``.

    >>> renal_a(-12.0), renal_a(3.0), renal_a(15.0)
    ('a', 'x', 'p')
    """
    if abs(anterior_offset_mm) < margin_mm:
        return "x"
    return "a" if anterior_offset_mm < 0 else "p"


def renal_l(fraction_between_polar_lines: float, crosses_midline: bool) -> int:
    """L, location relative to the polar lines: 3 if the mass crosses the axial renal midline or
    more than half of it lies between the polar lines (this includes entirely between them); 2 if
    it crosses a polar line (some, at most half, between them); 1 if it lies entirely above the
    upper or below the lower polar line.

    >>> renal_l(0.0, False), renal_l(0.3, False), renal_l(0.6, False), renal_l(0.2, True)
    (1, 2, 3, 3)
    """
    if crosses_midline or fraction_between_polar_lines > 0.5:
        return 3
    return 2 if fraction_between_polar_lines > 0.0 else 1


def _category(total: int, table: tuple[tuple[int, int, str], ...]) -> str:
    for low, high, name in table:
        if low <= total <= high:
            return name
    raise ValueError(f"score {total} is outside the published range {table[0][0]}-{table[-1][1]}")


def renal_category(total: int) -> str:
    """Complexity of a R.E.N.A.L. sum (4-12): ``low``, ``intermediate`` or ``high``."""
    return _category(total, RENAL_CATEGORIES)


def padua_location(fraction_between_sinus_lines: float) -> int:
    """PADUA longitudinal (polar) location: 2 (middle) if more than half of the mass lies between
    the sinus lines, else 1 (superior or inferior)."""
    return 2 if fraction_between_sinus_lines > 0.5 else 1


def padua_rim(medial_offset_mm: float) -> int:
    """PADUA renal rim: 2 (medial) if the mass's nearest rim lies medial of the kidney's centroid
    (offset > 0 towards the patient's midline), else 1 (lateral)."""
    return 2 if medial_offset_mm > 0.0 else 1


def padua_contact(involved: bool) -> int:
    """PADUA renal sinus or urinary collecting system: 2 if involved, else 1."""
    return 2 if involved else 1


def padua_size(diameter_mm: float) -> int:
    """PADUA tumour size: 1 for <= 4 cm, 2 for 4.1-7 cm, 3 for > 7 cm (so exactly 70 mm scores 2,
    where R.E.N.A.L.'s R scores 3)."""
    return 1 if diameter_mm <= 40.0 else 2 if diameter_mm <= 70.0 else 3


def padua_suffix(anterior_offset_mm: float) -> str:
    """PADUA's face suffix: ``a`` (anterior, offset <= 0) or ``p``; PADUA has no ``x``."""
    return "a" if anterior_offset_mm <= 0.0 else "p"


def padua_category(total: int) -> str:
    """Risk class of a PADUA sum (6-14): ``low``, ``intermediate`` or ``high``."""
    return _category(total, PADUA_CATEGORIES)


def c_index(centre_distance_mm: float, radius_mm: float) -> float:
    """C-index: distance from the kidney's centre to the mass's centre over the mass's radius
    (0: the mass is centred on the kidney's centre; 1: its edge touches it). ``inf`` for r = 0.

    >>> c_index(30.0, 15.0)
    2.0
    """
    return centre_distance_mm / radius_mm if radius_mm > 0 else math.inf
