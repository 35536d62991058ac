"""Evaluation: segmentation metrics in mm, lesion detection, classification and KiTS metrics,
and the ``renal-nnunet evaluate`` report.

Public names are imported lazily so ``import renal_nnunet.evaluation`` (and the CLI's ``--help``)
stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "segmentation_metrics": "surface",
    "surface_distances": "surface",
    "EMPTY_POLICY": "surface",
    "DetectionConfig": "detection",
    "detect_lesions": "detection",
    "match_lesions": "detection",
    "detection_scores": "detection",
    "classification_metrics": "classification",
    "stratified_classification_metrics": "classification",
    "sequential_protocol_metrics": "classification",
    "kits_hec_metrics": "kits",
    "kits_surface_dice": "kits",
    "EvaluationConfig": "evaluate",
    "EvaluationResult": "evaluate",
    "evaluate_folders": "evaluate",
    "evaluate_case": "evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
