"""The paper's data augmentation as batchgeneratorsv2 transforms (shared by U-Nets and classifier).

Zhao et al. augment with "random rotation (-10~10 degrees), random noise injection, and random
horizontal and vertical translation (-0.1~0.1)", for the segmentation U-Nets and the ResNet-10
alike. Here that is:

* rotation: batchgeneratorsv2's ``SpatialTransform`` with an angle drawn uniformly from
  [-10, 10] degrees about each of the three axes (no scaling, no elastic deformation);
* translation: :class:`RandomInplaneTranslation`, a shift drawn uniformly from [-10 %, +10 %] of
  the patch edge along each in-plane axis (numpy axes 1 and 2 of a (z, y, x) volume, i.e. the
  axial plane's vertical and horizontal), none along z;
* noise: batchgeneratorsv2's ``GaussianNoiseTransform`` (additive, variance drawn from
  [0, 0.1] on nnU-Net's z-scored intensities).

The paper gives no probabilities; each is drawn for every sample (the ranges include ~0), like
Keras' ``ImageDataGenerator`` whose ``*_shift_range=0.1`` wording the paper echoes.

Random transforms follow batchgeneratorsv2's contract: ``get_parameters`` samples (from numpy's
and torch's global generators, as nnU-Net's own transforms do), ``apply`` is deterministic.

Reuse outside nnU-Net (e.g. the classifier's Dataset): build once, call per sample::

    transforms = paper_augmentation_transforms(patch_size=(128, 128, 128))
    out = transforms(image=volume_cdhw)          # torch float tensor (C, D, H, W)
    augmented = out["image"]

or simply ``augment_volume(volume)`` for a numpy (D, H, W) or (C, D, H, W) array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.random import RandomTransform

from renal_nnunet.settings import PAPER

__all__ = [
    "PaperAugmentation",
    "RandomInplaneTranslation",
    "shift_volume",
    "paper_augmentation_transforms",
    "augment_volume",
]


@dataclass(frozen=True)
class PaperAugmentation:
    """Ranges and probabilities of the paper's augmentation.

    Attributes:
        max_rotation_deg: rotation angle about each axis is uniform in [-max, +max] degrees.
        p_rotation: probability that a sample is rotated.
        max_translation_fraction: in-plane shift is uniform in [-max, +max] x patch edge.
        p_translation: probability that a sample is shifted.
        noise_variance: range of the Gaussian noise variance (intensity units squared).
        p_noise: probability that noise is added.
    """

    max_rotation_deg: float = PAPER.max_rotation_deg
    p_rotation: float = 1.0
    max_translation_fraction: float = PAPER.max_translation_fraction
    p_translation: float = 1.0
    noise_variance: tuple[float, float] = (0.0, 0.1)
    p_noise: float = 1.0

    @property
    def rotation_range_rad(self) -> tuple[float, float]:
        """Rotation range in radians, as batchgeneratorsv2 and nnU-Net expect it."""
        limit = float(np.deg2rad(self.max_rotation_deg))
        return (-limit, limit)


def shift_volume(tensor: torch.Tensor, shift_zyx: Sequence[int], fill_value: float) -> torch.Tensor:
    """Shift a (C, D, H, W) tensor's content by whole voxels, filling what enters with ``fill_value``.

    Args:
        tensor: channels-first volume, spatial axes (z, y, x).
        shift_zyx: voxels to move the content along each spatial axis (positive = towards higher
            indices).
        fill_value: value for voxels that come in from outside.

    Returns:
        A new tensor of the same shape and dtype.
    """
    out = torch.full_like(tensor, fill_value)
    src, dst = [slice(None)], [slice(None)]
    for shift, size in zip(shift_zyx, tensor.shape[1:]):
        shift = int(shift)
        if abs(shift) >= size:
            return out
        src.append(slice(max(0, -shift), size - max(0, shift)))
        dst.append(slice(max(0, shift), size - max(0, -shift)))
    out[tuple(dst)] = tensor[tuple(src)]
    return out


class RandomInplaneTranslation(BasicTransform):
    """Shift image and segmentation in-plane by up to ``max_fraction`` of the patch edge.

    batchgeneratorsv2's ``SpatialTransform`` has no translation (its random crop moves all three
    axes and is fixed when the image equals the patch), hence this small transform. Shifts are
    whole voxels, so label maps stay exact. The image is filled with ``image_fill`` (0 = the mean
    after nnU-Net's z-scoring); the segmentation with ``seg_fill`` (nnU-Net's -1 "outside" label,
    which its ``RemoveLabelTansform`` turns into background).
    """

    def __init__(self, max_fraction: float = 0.1, inplane_axes: tuple[int, ...] = (1, 2),
                 image_fill: float = 0.0, seg_fill: float = -1):
        super().__init__()
        if not 0 <= max_fraction < 1:
            raise ValueError(f"max_fraction must be in [0, 1), got {max_fraction}")
        self.max_fraction = max_fraction
        self.inplane_axes = inplane_axes
        self.image_fill = image_fill
        self.seg_fill = seg_fill

    def get_parameters(self, **data_dict) -> dict:
        spatial_shape = data_dict["image"].shape[1:]
        shift = [0] * len(spatial_shape)
        for axis in self.inplane_axes:
            fraction = np.random.uniform(-self.max_fraction, self.max_fraction)
            shift[axis] = int(np.trunc(fraction * spatial_shape[axis]))  # trunc keeps |shift| <= max
        return {"shift_zyx": tuple(shift)}

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        return shift_volume(img, params["shift_zyx"], self.image_fill)

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        return shift_volume(segmentation, params["shift_zyx"], self.seg_fill)

    def _apply_to_regr_target(self, regression_target: torch.Tensor, **params) -> torch.Tensor:
        return shift_volume(regression_target, params["shift_zyx"], self.image_fill)


def paper_augmentation_transforms(
    patch_size: Sequence[int], config: PaperAugmentation = PaperAugmentation(), seg_fill: float = -1,
    image_fill: float = 0.0,
) -> ComposeTransforms:
    """The paper's rotation + in-plane translation + noise, for (C, D, H, W) torch tensors.

    Args:
        patch_size: output spatial size (z, y, x) in voxels; inputs larger than this are
            centre-cropped (nnU-Net feeds a larger patch so rotated corners hold real data).
        config: ranges and probabilities.
        seg_fill: label for segmentation voxels that enter from outside (-1 inside nnU-Net,
            0 elsewhere).
        image_fill: image value for voxels that enter from outside (0: the mean after nnU-Net's
            z-scoring).

    Returns:
        A batchgeneratorsv2 transform: call it as ``transforms(image=..., segmentation=...)``.
    """
    return ComposeTransforms([
        SpatialTransform(
            tuple(int(s) for s in patch_size), patch_center_dist_from_border=0, random_crop=False,
            p_elastic_deform=0, p_rotation=config.p_rotation, rotation=config.rotation_range_rad,
            p_rot_per_axis=1, p_scaling=0, border_mode_seg="constant", padding_value_seg=seg_fill,
            padding_mode_image="constant", padding_value_image=image_fill,
        ),
        RandomTransform(
            RandomInplaneTranslation(config.max_translation_fraction, image_fill=image_fill, seg_fill=seg_fill),
            apply_probability=config.p_translation,
        ),
        RandomTransform(
            GaussianNoiseTransform(noise_variance=config.noise_variance, p_per_channel=1, synchronize_channels=True),
            apply_probability=config.p_noise,
        ),
    ])


def augment_volume(volume: np.ndarray, config: PaperAugmentation = PaperAugmentation()) -> np.ndarray:
    """Apply the paper's augmentation to one volume (D, H, W) or (C, D, H, W); same shape out, float32."""
    array = np.asarray(volume, dtype=np.float32)
    if array.ndim not in (3, 4):
        raise ValueError(f"expected a (D, H, W) or (C, D, H, W) volume, got shape {array.shape}")
    tensor = torch.from_numpy(array if array.ndim == 4 else array[None]).clone()
    out = paper_augmentation_transforms(tensor.shape[1:], config, seg_fill=0)(image=tensor)["image"].numpy()
    return out if array.ndim == 4 else out[0]
