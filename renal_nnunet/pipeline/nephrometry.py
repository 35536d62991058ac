"""Nephrometry of ``predict``'s masses: which masses get points, which only measurements.

R.E.N.A.L. and PADUA are defined for solid renal masses, so ``predict`` scores the masses the
classifier calls solid or AML (fat-poor AML are operated as solid masses); cystic masses and masses
left unclassified (too small, cut off by the field of view) get the measurements and the C-index,
with a note saying why they have no points (``renal_nnunet.nephrometry``).
"""

from __future__ import annotations

import SimpleITK as sitk

from renal_nnunet.nephrometry.score import SOLID_ONLY_NOTE, MassNephrometry, score_masses

__all__ = ["SCORED_CLASSES", "predicted_mass_nephrometry"]

SCORED_CLASSES: tuple[str, ...] = ("solid", "AML")
"""Classes whose masses get R.E.N.A.L. and PADUA points."""


def predicted_mass_nephrometry(ct: sitk.Image, kidneys: sitk.Image, components: sitk.Image,
                               classes: dict[int, str], views: bool) -> dict[int, MassNephrometry]:
    """Nephrometry by lesion id (points only for :data:`SCORED_CLASSES`).

    Args:
        ct: the CT (HU); kidneys: the kidney stage's labels (1 right, 2 left); components: lesion
            ids; all on one grid.
        classes: ``lesion_class`` by lesion id.
        views: keep each mass's picture planes (for the report).
    """
    results = {}
    for result in score_masses(ct, kidneys, components, views=views):
        lesion_class = classes.get(result.lesion_id, "")
        if lesion_class == "cystic":
            result = result.measurements_only(f"cystic mass: {SOLID_ONLY_NOTE}; measurements only")
        elif lesion_class not in SCORED_CLASSES:
            result = result.measurements_only(f"{lesion_class or 'unclassified'} mass: points only for classified "
                                              "solid and AML masses")
        results[result.lesion_id] = result
    return results
