"""Lesion classification: 3D ResNet-10 (MedicalNet-compatible) for AML / cystic / solid masses,
with Grad-CAM maps in the CT's geometry.

Public names are imported lazily so ``import renal_nnunet.classification`` (and the CLI's
``--help``) does not pull in torch.
"""

from __future__ import annotations

from renal_nnunet._lazy import lazy_exports

_EXPORTS = {
    "build_classifier": "model",
    "load_medicalnet": "medicalnet",
    "grad_cam": "gradcam",
    "ExplainedForward": "gradcam",
    "ClassifierTrainConfig": "train",
    "train_classifier": "train",
    "load_classifier": "train",
    "LesionClassification": "predict",
    "ClassifierEnsemble": "ensemble",
    "classify_lesions": "predict",
    "classify_lesion_files": "predict",
    "lesions_touching_border": "predict",
    "save_cam_overlay_png": "overlay",
}

__getattr__, __all__ = lazy_exports(__name__, _EXPORTS)
