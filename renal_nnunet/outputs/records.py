"""The main result type: one predicted mass (:class:`LesionRecord`) and its unclassified classes.

Every output writer (lesion table, report, DICOM SEG/SR) and ``renal_nnunet.pipeline.predict``
import it from here, so no writer owns it. Units: volume in ml, diameters and centroids in mm
(centroid in ITK LPS patient coordinates: +x patient left, +y posterior, +z superior),
intensities in HU of the input CT. The nephrometry columns follow
(``renal_nnunet.nephrometry.score.NEPHROMETRY_COLUMNS``; points as integers, blank where not scored).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.nephrometry.score import NEPHROMETRY_COLUMNS, MassNephrometry

__all__ = ["TOO_SMALL_CLASS", "CUT_OFF_CLASS", "LesionRecord"]

TOO_SMALL_CLASS = "too_small"
"""``lesion_class`` of masses below the classification size threshold (not characterised)."""

CUT_OFF_CLASS = "cut_off"
"""``lesion_class`` of masses touching the image border: cut off by the field of view, so not
classified. Like too-small masses they carry output label 6 (mass not classified)."""


@dataclass(frozen=True)
class LesionRecord:
    """One predicted mass (a connected component of the mass prediction).

    Attributes:
        lesion_id: 1-based id, in order of decreasing volume.
        side: ``right`` or ``left`` (the kidney it lies in).
        output_label: its value in ``<case>_seg.nii.gz`` (3 AML, 4 cystic, 5 solid, 6 too small).
        volume_ml: volume in ml.
        average_diameter_mm: average diameter (``renal_nnunet.anatomy.lesions``).
        mean_hu, max_hu: CT values inside the mass, HU.
        centroid_mm: centroid (x, y, z) in LPS mm.
        lesion_class: one of ``LESION_CLASSES``, ``too_small`` or ``cut_off``.
        probabilities: ensemble class probabilities (empty when not classified).
        fold_agreement: share of classifier folds voting for ``lesion_class`` (NaN when not classified).
        probability_calibrated: probability of ``lesion_class`` after temperature scaling (the
            models folder's temperature; NaN when not classified).
        indeterminate: the class needs review: its calibrated probability or its fold agreement is
            below the thresholds of ``PredictConfig`` (the label stays the class).
        mass_prob_mean: mean mass probability of the mass-model ensemble over the lesion voxels.
        mass_prob_spread: mean over the lesion voxels of the standard deviation of the mass
            probability across the mass-model folds (0 = the folds agree; NaN with one fold).
        plausibility: why the lesion is implausible (``renal_nnunet.pipeline.plausibility``:
            ``mean HU is air`` / ``mean HU is bone``), "" when plausible.
        cam_file: Grad-CAM NIfTI file name ("" when none was written).
        nephrometry: R.E.N.A.L., PADUA and C-index of the mass (``renal_nnunet.nephrometry``;
            None when not scored): the columns :data:`~renal_nnunet.nephrometry.score.NEPHROMETRY_COLUMNS`.
    """

    lesion_id: int
    side: str
    output_label: int
    volume_ml: float
    average_diameter_mm: float
    mean_hu: float
    max_hu: float
    centroid_mm: tuple[float, float, float]
    lesion_class: str
    probabilities: dict[str, float] = field(default_factory=dict)
    fold_agreement: float = math.nan
    probability_calibrated: float = math.nan
    indeterminate: bool = False
    mass_prob_mean: float = math.nan
    mass_prob_spread: float = math.nan
    plausibility: str = ""
    cam_file: str = ""
    nephrometry: MassNephrometry | None = field(default=None, compare=False)

    def to_row(self) -> dict:
        """Flat table row (the CSV/JSON columns, see :data:`LESION_TABLE_COLUMNS`)."""
        row = {
            "lesion_id": self.lesion_id, "side": self.side, "output_label": self.output_label,
            "volume_ml": self.volume_ml, "average_diameter_mm": self.average_diameter_mm,
            "mean_hu": self.mean_hu, "max_hu": self.max_hu,
            "centroid_x_mm": self.centroid_mm[0], "centroid_y_mm": self.centroid_mm[1],
            "centroid_z_mm": self.centroid_mm[2], "lesion_class": self.lesion_class,
        }
        row.update({f"prob_{name}": float(self.probabilities.get(name, math.nan)) for name in LESION_CLASSES})
        row.update({"fold_agreement": self.fold_agreement, "probability_calibrated": self.probability_calibrated,
                    "indeterminate": self.indeterminate, "mass_prob_mean": self.mass_prob_mean,
                    "mass_prob_spread": self.mass_prob_spread, "plausibility": self.plausibility,
                    "cam_file": self.cam_file})
        row.update(self.nephrometry.to_row() if self.nephrometry is not None else dict.fromkeys(NEPHROMETRY_COLUMNS))
        return row
