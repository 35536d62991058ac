"""Evaluation: segmentation metrics in mm, lesion detection, classification and KiTS metrics,
and the ``renal-nnunet evaluate`` report.

Public names are imported lazily so ``import renal_nnunet.evaluation`` (and the CLI's ``--help``)
stays light.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "segmentation_metrics": "surface",
    "surface_distances": "surface",
    "EMPTY_POLICY": "surface",
    "DetectionConfig": "detection",
    "detect_lesions": "detection",
    "match_lesions": "detection",
    "detection_scores": "detection",
    "joined_and_split": "detection",
    "classification_metrics": "classification",
    "stratified_classification_metrics": "classification",
    "sequential_protocol_metrics": "classification",
    "kits_hec_metrics": "kits",
    "kits_surface_dice": "kits",
    "EvaluationConfig": "evaluate",
    "EvaluationResult": "evaluate",
    "evaluate_folders": "evaluate",
    "evaluate_case": "evaluate",
    "summary_value": "report",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
