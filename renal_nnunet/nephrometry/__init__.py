"""Nephrometry per renal mass: R.E.N.A.L., PADUA and the C-index from the segmentation.

``points`` (the published point tables), ``kidney`` (a kidney's sinus fat, collecting system, rim,
hilum, polar and sinus lines, from the CT and the whole-kidney label), ``measure`` (one mass's
continuous measurements in mm), ``score`` (every mass of a case, its points and its table row),
``view`` and ``figure`` (the planes the scores are read from, and their pictures), ``cases``
(CT + reference or pipeline label map -> ``nephrometry.csv``: the ``renal-nnunet nephrometry``
command).

Below ``pipeline`` and ``evaluation`` in the layering: this package imports only ``anatomy`` and
``io``. Public names are imported lazily.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "KidneyAnatomy": "kidney", "kidney_anatomy": "kidney",
    "MassMeasurements": "measure", "measure_mass": "measure",
    "NephrometryPoints": "score", "MassNephrometry": "score", "score_masses": "score", "score_points": "score",
    "NEPHROMETRY_COLUMNS": "score",
    "MassView": "view", "mass_view": "view",
    "case_nephrometry": "cases", "write_nephrometry": "cases", "score_label_maps": "cases",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
