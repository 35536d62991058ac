"""Lesion classification: 3D ResNet-10 (MedicalNet-compatible) for AML / cystic / solid masses,
with Grad-CAM maps in the CT's geometry.

Public names are imported lazily so ``import renal_nnunet.classification`` (and the CLI's
``--help``) does not pull in torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_classifier": "renal_nnunet.classification.model",
    "load_medicalnet": "renal_nnunet.classification.medicalnet",
    "grad_cam": "renal_nnunet.classification.gradcam",
    "ClassifierTrainConfig": "renal_nnunet.classification.train",
    "train_classifier": "renal_nnunet.classification.train",
    "load_classifier": "renal_nnunet.classification.train",
    "LesionClassification": "renal_nnunet.classification.predict",
    "classify_lesions": "renal_nnunet.classification.predict",
    "classify_lesion_files": "renal_nnunet.classification.predict",
    "lesions_touching_border": "renal_nnunet.classification.predict",
    "save_cam_overlay_png": "renal_nnunet.classification.overlay",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
