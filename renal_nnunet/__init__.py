"""renal_nnunet: the cascade 3D U-Net + 3D ResNet-10 method of Zhao et al. (Front. Oncol. 2023) for
CT renal-mass segmentation and classification, as a plugin for nnU-Net v2."""

__version__ = "0.1.0"

__all__ = ["predict", "PredictConfig", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import renal_nnunet` stays light (no torch or nnU-Net until predict is used).
    if name in ("predict", "PredictConfig"):
        from renal_nnunet.pipeline import predict as predict_module

        return getattr(predict_module, name)
    raise AttributeError(f"module 'renal_nnunet' has no attribute {name!r}")
