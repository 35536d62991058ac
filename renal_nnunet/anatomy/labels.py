"""Label conventions used across the package (one place, so every stage agrees).

KiTS (input references): 0 background, 1 kidney (without renal-sinus fat), 2 tumour, 3 cyst.
Kidney stage (nnU-Net dataset ``*_RenalKidney{G}``): 0 background, 1 right kidney, 2 left kidney;
"kidney" is everything inside the kidney's outer boundary (parenchyma, sinus and masses).
Mass stage (``*_RenalMass{G}``, one crop per kidney): 0 background, 1 mass (tumour or cyst).
One-stage ablation (``*_RenalOneStage{G}`` and native ``*_RenalOneStage``): 0 background,
1 kidney, 2 mass.
Pipeline output (``<case>_seg.nii.gz``): see :data:`OUTPUT_LABELS`; masses are labels 3-6 and a
mass's side is the side of the kidney it lies in.
"""

from __future__ import annotations

KITS_LABELS: dict[str, int] = {"background": 0, "kidney": 1, "tumor": 2, "cyst": 3}

LABEL_MAP_FORMATS: tuple[str, ...] = ("kits", "pipeline")
"""The label maps commands read: KiTS's (:data:`KITS_LABELS`) or the pipeline output's (:data:`OUTPUT_LABELS`)."""

KIDNEY_STAGE_LABELS: dict[str, int] = {"background": 0, "kidney_right": 1, "kidney_left": 2}
SIDES: tuple[str, ...] = ("right", "left")
"""Kidney sides (the patient's), in the order of their labels."""
KIDNEY_SIDE_LABELS: dict[str, int] = {side: KIDNEY_STAGE_LABELS[f"kidney_{side}"] for side in SIDES}
"""Side name -> kidney label, ``{"right": 1, "left": 2}``: the same values in the kidney stage, the
pipeline output and ``renal_nnunet.anatomy.label_maps.Anatomy.side``."""
KIDNEY_SIDE_NAMES: dict[int, str] = {value: side for side, value in KIDNEY_SIDE_LABELS.items()}
"""Kidney label -> side name, the reverse of :data:`KIDNEY_SIDE_LABELS`."""
MASS_STAGE_LABELS: dict[str, int] = {"background": 0, "mass": 1}
ONE_STAGE_LABELS: dict[str, int] = {"background": 0, "kidney": 1, "mass": 2}

LESION_CLASSES: tuple[str, ...] = ("AML", "cystic", "solid")
"""Classifier classes, in the order of its output logits."""

OUTPUT_LABELS: dict[str, int] = {
    "background": 0,
    "kidney_right": KIDNEY_SIDE_LABELS["right"],
    "kidney_left": KIDNEY_SIDE_LABELS["left"],
    "AML": 3,
    "cystic": 4,
    "solid": 5,
    "mass_too_small": 6,
}
"""Labels of the pipeline's ``<case>_seg.nii.gz``."""

OUTPUT_LABEL_NAMES: dict[str, str] = {
    "kidney_right": "right kidney",
    "kidney_left": "left kidney",
    "AML": "AML",
    "cystic": "cystic mass",
    "solid": "solid mass",
    "mass_too_small": "mass too small to classify",
}
"""What viewers, the report and DICOM objects call each non-background output label."""

OUTPUT_LABEL_COLOURS: dict[str, tuple[int, int, int]] = {
    "kidney_right": (0, 255, 0),
    "kidney_left": (0, 191, 255),
    "AML": (255, 255, 0),
    "cystic": (0, 255, 255),
    "solid": (255, 0, 0),
    "mass_too_small": (255, 0, 255),
}
"""RGB (0-255) of each non-background output label in the report and in viewers."""

OUTPUT_MASS_LABELS: tuple[int, ...] = (3, 4, 5, 6)
