"""renal_nnunet: the cascade 3D U-Net + 3D ResNet-10 method of Zhao et al. (Front. Oncol. 2023) for
CT renal-mass segmentation and classification, as a plugin for nnU-Net v2."""

__version__ = "0.1.0"
