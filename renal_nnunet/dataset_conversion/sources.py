"""What a conversion reads: one :class:`SourceCase` per CT series, from KiTS or a CSV manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SourceCase", "LABEL_NAMES", "KITS_LABEL_VALUES", "SEMANTIC_KITS_LABEL"]

LABEL_NAMES: tuple[str, ...] = ("background", "kidney", "tumor", "cyst", "AML", "cystic", "solid")
"""What a source label value may mean. ``tumor`` takes its class from the patient's pathology;
``AML``/``cystic``/``solid`` are masses whose class the label itself states."""

KITS_LABEL_VALUES: dict[int, str] = {0: "background", 1: "kidney", 2: "tumor", 3: "cyst"}

SEMANTIC_KITS_LABEL: dict[str, int] = {
    "background": 0, "kidney": 1, "tumor": 2, "AML": 2, "solid": 2, "cyst": 3, "cystic": 3,
}
"""Every label name mapped to the KiTS convention (0 background, 1 kidney, 2 tumour, 3 cyst)."""


@dataclass(frozen=True)
class SourceCase:
    """One CT series with its label map, ready to convert.

    Attributes:
        case_id: output case name (KiTS case names are kept, e.g. ``case_00017``).
        patient_id: patients group series in the cross-validation split.
        image_path: the CT (HU).
        label_path: the label map on the CT's grid.
        subtype: the patient's tumour histologic subtype in KiTS23 spelling, None if unknown.
        label_values: source label value -> one of :data:`LABEL_NAMES`.
        kidneys_in_view: False for a scan whose field of view holds no kidney (a chest-only or
            pelvis-only scan; KiTS metadata ``"kidneys_in_view": false``): its empty label map is
            then a negative example for the kidney stage instead of an error.
        problem: why this case cannot be converted (e.g. no metadata entry), with ``problem_path``
            the file at fault; conversion reports it as this case's failure.
    """

    case_id: str
    patient_id: str
    image_path: Path
    label_path: Path
    subtype: str | None
    label_values: dict[int, str] = field(default_factory=lambda: dict(KITS_LABEL_VALUES))
    kidneys_in_view: bool = True
    problem: str | None = None
    problem_path: Path | None = None
