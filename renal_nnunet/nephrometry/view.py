"""The two planes a mass's scores are read from, as small 2D arrays for the pictures.

* **Axial**: the mass's slice of largest area, where E is read: the kidney, its outline without
  the mass (:func:`~renal_nnunet.nephrometry.measure.kidney_outline`),
  sinus fat, collecting system, hilum and the mass; and the kidney centroid's antero-posterior
  position with the +-10 mm band of A's ``x``.
* **Coronal**: the mass's coronal plane of largest area, where L is read: the same structures, the
  polar lines, the axial renal midline between them and the sinus lines (PADUA).

Arrays are in display order: axial rows run anterior to posterior and columns from the patient's
right to left (radiological view); coronal rows run inferior to superior (draw with
``origin="lower"``) and columns right to left. The planes come from an LPS-oriented box, so this
order is the box's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renal_nnunet.nephrometry.kidney import KidneyAnatomy
from renal_nnunet.nephrometry.measure import kidney_outline
from renal_nnunet.nephrometry.points import ANTERIOR_POSTERIOR_MARGIN_MM

__all__ = ["VIEW_LABELS", "MassView", "mass_view"]

VIEW_LABELS: dict[str, int] = {"kidney": 1, "sinus fat": 2, "collecting system": 3, "hilum": 4, "mass": 5}
"""Values of :attr:`MassView.axial_labels` and :attr:`MassView.coronal_labels` (later ones drawn over earlier)."""


@dataclass(frozen=True, eq=False)
class MassView:
    """An axial and a coronal plane through one mass (see the module docstring).

    Attributes:
        axial_ct, coronal_ct: CT values (HU).
        axial_labels, coronal_labels: :data:`VIEW_LABELS` per pixel.
        axial_outline: the kidney's outline without masses (E's hulls) on the axial plane.
        axial_spacing_mm, coronal_spacing_mm: (row, column) pixel size, mm.
        axial_z_mm, coronal_y_mm: LPS position of each plane.
        anterior_rows: axial rows of the kidney centroid and of the ``x`` band's edges (anterior, centre, posterior).
        polar_rows, sinus_rows: coronal rows (fractional) of the polar lines and the sinus lines.
        midline_row: coronal row of the axial renal midline.
    """

    axial_ct: np.ndarray
    axial_labels: np.ndarray
    axial_outline: np.ndarray
    axial_spacing_mm: tuple[float, float]
    axial_z_mm: float
    anterior_rows: tuple[float, float, float]
    coronal_ct: np.ndarray
    coronal_labels: np.ndarray
    coronal_spacing_mm: tuple[float, float]
    coronal_y_mm: float
    polar_rows: tuple[float, float]
    midline_row: float
    sinus_rows: tuple[float, float]


def mass_view(ct_hu: np.ndarray, mass: np.ndarray, anatomy: KidneyAnatomy) -> MassView:
    """The two planes of one mass on ``anatomy``'s box (``ct_hu`` and ``mass`` on the same box)."""
    labels = np.zeros(mass.shape, np.uint8)
    for name, mask in (("kidney", anatomy.kidney), ("sinus fat", anatomy.sinus_fat),
                       ("collecting system", anatomy.collecting_system), ("hilum", anatomy.hilum), ("mass", mass)):
        labels[mask] = VIEW_LABELS[name]
    z = int(np.argmax(mass.sum(axis=(1, 2))))
    y = int(np.argmax(mass.sum(axis=(0, 2))))
    geometry = anatomy.geometry
    spacing_x, spacing_y, spacing_z = geometry.spacing_mm
    centroid = anatomy.centroid_mm

    def index_of(offset: np.ndarray) -> np.ndarray:
        return geometry.mm_to_index(centroid + offset)[0]  # ITK (x, y, z)

    anterior = tuple(float(index_of(np.array([0.0, d, 0.0]))[1]) for d in
                     (-ANTERIOR_POSTERIOR_MARGIN_MM, 0.0, ANTERIOR_POSTERIOR_MARGIN_MM))

    def row(z_mm: float) -> float:
        return float(index_of(np.array([0.0, 0.0, z_mm - centroid[2]]))[2])

    return MassView(
        axial_ct=ct_hu[z], axial_labels=labels[z], axial_outline=kidney_outline(anatomy.kidney[z] & ~anatomy.masses[z]),
        axial_spacing_mm=(spacing_y, spacing_x), axial_z_mm=float(geometry.index_to_mm([[0, 0, z]])[0, 2]),
        anterior_rows=anterior,
        coronal_ct=ct_hu[:, y, :], coronal_labels=labels[:, y, :], coronal_spacing_mm=(spacing_z, spacing_x),
        coronal_y_mm=float(geometry.index_to_mm([[0, y, 0]])[0, 1]),
        polar_rows=tuple(row(v) for v in anatomy.polar_lines_mm), midline_row=row(anatomy.midline_z_mm),
        sinus_rows=tuple(row(v) for v in anatomy.sinus_lines_mm),
    )

