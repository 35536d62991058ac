"""renal_nnunet: the cascade 3D U-Net + 3D ResNet-10 method of Zhao et al. (Front. Oncol. 2023) for
CT renal-mass segmentation and classification, as a plugin for nnU-Net v2."""

from renal_nnunet._lazy import lazy_exports

__version__ = "0.1.0"

# Lazy, so `import renal_nnunet` stays light (no torch or nnU-Net until predict is used).
__getattr__, _public = lazy_exports(__name__, {"predict": "pipeline.predict", "PredictConfig": "pipeline.predict"})
__all__ = [*_public, "__version__"]
