"""nnU-Net v2 trainers with the segmentation settings of Zhao et al. (Front. Oncol. 2023).

The paper's U-Nets (kidney, kidney-cropped mass, and the one-stage ablation) were trained with
"filters=16, batch size=4, epochs=400, and learning rate=0.0001" and rotation / noise / in-plane
translation augmentation on 128^3 volumes. :class:`nnUNetTrainerRenalPaper` is nnU-Net's default
trainer with exactly those differences; everything else (Dice + CE loss, deep supervision,
PlainConvUNet topology from the plans, sliding-window inference) is nnU-Net's.

Where each paper setting lives:

=========================  ====================================  =================================
paper setting              nnU-Net default                       set in
=========================  ====================================  =================================
optimizer Adam             SGD, Nesterov momentum 0.99           ``configure_optimizers``
learning rate 1e-4         1e-2, poly decay                      ``__init__`` (constant: poly
                                                                 exponent 0)
weight decay 0 (none       3e-5                                  ``__init__`` (Adam's
stated)                                                          ``weight_decay``)
epochs 400                 1000                                  ``__init__`` (``num_epochs``)
batch size 4               plans ``batch_size`` (2 at 128^3)     ``_set_batch_size_and_oversample``
16 base filters, doubling  plans ``features_per_stage`` (32...)  ``build_network_architecture``
                                                                 (also used by the predictor)
rotation +-10 deg, 3 axes  +-30 deg, p=0.2, scaling, elastic...  ``configure_rotation_dummyDA_...``
                                                                 + ``get_training_transforms``
noise, in-plane shift 10%  noise p=0.1, blur, gamma, ...         ``get_training_transforms``
no mirroring               mirror all axes (train + TTA)         ``configure_rotation_dummyDA_...``
whole-image patches        33 % foreground oversampling          ``__init__`` (0 %: image = patch)
=========================  ====================================  =================================

The batch size is written into the trainer's own configuration, so the ``plans.json`` copied
into the results folder still shows nnU-Net's planned value; the training log and ``debug.json``
show 4. Input size 128^3 and the CT window are not trainer settings: the converter writes 128^3 grid
images (nominal 1 mm spacing) and stock planning then picks the whole image as patch.

The values come from :data:`renal_nnunet.settings.PAPER`; each override starts with a comment
naming the paper's value and nnU-Net's default.

Shorter runs are named variants, the nnU-Net way (``..._5epochs``): each sets its length in the
constructor from its class's ``LENGTH`` (:class:`TrainingLength`), so the trainer name saved in a
checkpoint says how long the model trained. ``_CPUtiny`` (tests), ``_CPUsmoke`` (tests that only
need a trained model) and ``_CPUdemo2min`` / ``_CPUdemo12min`` (the demo's lengths, with stock
``nnUNetTrainer_CPU...`` twins for the demo's nnU-Net baseline).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from batchgeneratorsv2.helpers.scalar_type import RandomScalar
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform
from batchgeneratorsv2.transforms.utils.seg_to_regions import ConvertSegmentationToRegionsTransform
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from renal_nnunet.settings import PAPER
from renal_nnunet.trainers.augmentation import PaperAugmentation, paper_augmentation_transforms

__all__ = [
    "PAPER_AUGMENTATION",
    "TrainingLength",
    "paper_features_per_stage",
    "nnUNetTrainerRenalPaper",
    "nnUNetTrainerRenalPaper_5epochs",
    "nnUNetTrainerRenalPaper_CPUtiny",
    "nnUNetTrainerRenalPaper_CPUsmoke",
    "nnUNetTrainerRenalPaper_CPUdemo2min",
    "nnUNetTrainerRenalPaper_CPUdemo12min",
    "nnUNetTrainer_CPUsmoke",
    "nnUNetTrainer_CPUdemo2min",
    "nnUNetTrainer_CPUdemo12min",
]

PAPER_AUGMENTATION = PaperAugmentation()
"""The U-Nets' augmentation: the paper's ranges (:data:`renal_nnunet.settings.PAPER`), noise on
nnU-Net's z-scored intensities."""


def paper_features_per_stage(n_stages: int, max_features: int) -> list[int]:
    """Feature maps per U-Net stage: 16 doubling per stage, capped like nnU-Net's plans (320 in 3D)."""
    return [min(PAPER.unet_base_features * 2 ** stage, max_features) for stage in range(n_stages)]


class nnUNetTrainerRenalPaper(nnUNetTrainer):
    """nnU-Net's trainer with the paper's optimizer, schedule, batch, width and augmentation."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        # paper: lr 1e-4, constant; nnU-Net: 1e-2, poly decay
        self.initial_lr = PAPER.learning_rate
        # paper: no weight decay stated (none used); nnU-Net: 3e-5
        self.weight_decay = PAPER.weight_decay
        # paper: 400 epochs; nnU-Net: 1000
        self.num_epochs = PAPER.epochs
        # paper: whole grid image as input; nnU-Net: 33 % foreground oversampling. The grid image is
        # the patch, so oversampling would only shift the whole image off-centre by up to half its size.
        self.oversample_foreground_percent = 0.0

    def configure_optimizers(self):
        # paper: Adam; nnU-Net: SGD, Nesterov momentum 0.99
        optimizer = torch.optim.Adam(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        # nnU-Net steps its scheduler every epoch; poly decay with exponent 0 keeps the paper's constant rate.
        lr_scheduler = PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs, exponent=0.0)
        return optimizer, lr_scheduler

    def _set_batch_size_and_oversample(self):
        # paper: batch 4; nnU-Net: the plans' batch_size (2 at 128^3).
        # nnU-Net keeps the batch size in the plans; write the paper's into this trainer's copy so
        # the base class (and its DDP split) uses it and the logged configuration shows it.
        self.configuration_manager.configuration["batch_size"] = PAPER.batch_size
        super()._set_batch_size_and_oversample()

    @staticmethod
    def build_network_architecture(plans_manager: PlansManager,
                                   configuration_manager: ConfigurationManager,
                                   num_input_channels: int,
                                   num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        # paper: 16 base filters, doubling; nnU-Net: the plans' features_per_stage (32, 64, ...)
        arch_kwargs = dict(configuration_manager.network_arch_init_kwargs)
        arch_kwargs["features_per_stage"] = paper_features_per_stage(
            arch_kwargs["n_stages"], max(arch_kwargs["features_per_stage"]))
        return get_network_from_plans(
            configuration_manager.network_arch_class_name,
            arch_kwargs,
            configuration_manager.network_arch_init_kwargs_req_import,
            num_input_channels,
            num_output_channels,
            allow_init=True,
            deep_supervision=enable_deep_supervision,
        )

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        # paper: rotation +-10 deg about 3 axes, no mirroring; nnU-Net: +-30 deg, mirroring (train + TTA)
        patch_size = self.configuration_manager.patch_size
        rotation_for_DA = PAPER_AUGMENTATION.rotation_range_rad
        # Sample a patch large enough that rotated corners still hold image data, as nnU-Net does.
        initial_patch_size = get_patch_size(patch_size, rotation_for_DA, rotation_for_DA, rotation_for_DA, (1.0, 1.0))
        mirror_axes = None
        self.inference_allowed_mirroring_axes = mirror_axes
        return rotation_for_DA, False, initial_patch_size, mirror_axes

    @staticmethod
    def get_training_transforms(
            patch_size: np.ndarray | tuple[int, ...],
            rotation_for_DA: RandomScalar,
            deep_supervision_scales: list | tuple | None,
            mirror_axes: tuple[int, ...],
            do_dummy_2d_data_aug: bool,
            use_mask_for_norm: list[bool] | None = None,
            is_cascaded: bool = False,
            foreground_labels: tuple[int, ...] | list[int] | None = None,
            regions: list[list[int] | tuple[int, ...] | int] | None = None,
            ignore_label: int | None = None,
    ) -> BasicTransform:
        # paper: rotation, noise, in-plane shift 10 %; nnU-Net: scaling, elastic, blur, gamma, mirror, ...
        if is_cascaded:
            raise ValueError("nnUNetTrainerRenalPaper trains single-stage configurations (e.g. 3d_fullres); "
                             "the paper's cascade is two separate datasets, not nnU-Net's lowres cascade")
        transforms = list(paper_augmentation_transforms(patch_size, PAPER_AUGMENTATION, seg_fill=-1).transforms)
        # nnU-Net's bookkeeping after augmentation, unchanged.
        if use_mask_for_norm is not None and any(use_mask_for_norm):
            transforms.append(MaskImageTransform(
                apply_to_channels=[i for i, use in enumerate(use_mask_for_norm) if use],
                channel_idx_in_seg=0, set_outside_to=0))
        transforms.append(RemoveLabelTansform(-1, 0))
        if regions is not None:
            transforms.append(ConvertSegmentationToRegionsTransform(
                regions=list(regions) + [ignore_label] if ignore_label is not None else regions, channel_in_seg=0))
        if deep_supervision_scales is not None:
            transforms.append(DownsampleSegForDSTransform(ds_scales=deep_supervision_scales))
        return ComposeTransforms(transforms)


@dataclass(frozen=True)
class TrainingLength:
    """How long a named variant trains: ``epochs`` x ``iterations_per_epoch`` training steps (one
    batch each) and ``val_iterations_per_epoch`` validation batches per epoch."""

    epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int


class _NamedLength:
    """Mixin of the short variants: the class's ``LENGTH`` is its training length, so the trainer
    name a checkpoint records says how long it trained, and callers read the length off the class
    without building a trainer."""

    LENGTH: ClassVar[TrainingLength]

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = self.LENGTH.epochs
        self.num_iterations_per_epoch = self.LENGTH.iterations_per_epoch
        self.num_val_iterations_per_epoch = self.LENGTH.val_iterations_per_epoch


class nnUNetTrainerRenalPaper_5epochs(_NamedLength, nnUNetTrainerRenalPaper):
    """The paper trainer for 5 epochs of nnU-Net's 250 iterations (GPU smoke runs)."""

    LENGTH = TrainingLength(epochs=5, iterations_per_epoch=250, val_iterations_per_epoch=50)


class nnUNetTrainerRenalPaper_CPUtiny(_NamedLength, nnUNetTrainerRenalPaper):
    """The paper trainer shrunk for CPU tests on 32^3-48^3 grids: 4 epochs x 25 iterations, seeded.

    The learning rate is raised to 3e-3 so 100 Adam steps learn the kidneys; every other paper
    setting (Adam, batch 4, 16 filters, augmentation, no mirroring) is kept. Measured on 32^3
    phantoms, fold 0 trained 8 times unseeded: after 40 steps 2 of 8 runs still predicted no kidney
    at all (held-out Dice 0.0); after 100 steps all 8 reached held-out Dice 0.80-0.91. (1e-2 for 40
    steps was no better: 1 of 8 at Dice 0, 3 more below 0.5.)

    Training is seeded from the fold (network initialisation, case sampling, augmentation), so a
    CPU run repeats exactly when augmentation runs in the training process: ``renal-nnunet``'s
    training on the CPU, or ``nnUNet_n_proc_DA=0`` for ``nnUNetv2_train`` (nnU-Net's augmentation
    workers reseed themselves from the operating system).
    """

    LENGTH = TrainingLength(epochs=4, iterations_per_epoch=25, val_iterations_per_epoch=1)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        # paper: lr 1e-4 for 400 epochs; here 3e-3, so 100 steps learn the kidneys
        self.initial_lr = 3e-3
        _seed_generators(fold if isinstance(fold, int) else 0)  # nnU-Net passes fold "all" as text


class nnUNetTrainerRenalPaper_CPUsmoke(nnUNetTrainerRenalPaper_CPUtiny):
    """The CPU variant for 1 epoch x 5 iterations: tests that need a trained model, not a good one."""

    LENGTH = TrainingLength(epochs=1, iterations_per_epoch=5, val_iterations_per_epoch=1)


class nnUNetTrainerRenalPaper_CPUdemo2min(nnUNetTrainerRenalPaper_CPUtiny):
    """The CPU variant for the demo's 2-minute length: 5 epochs x 20 iterations (100 steps)."""

    LENGTH = TrainingLength(epochs=5, iterations_per_epoch=20, val_iterations_per_epoch=4)


class nnUNetTrainerRenalPaper_CPUdemo12min(nnUNetTrainerRenalPaper_CPUtiny):
    """The CPU variant for the demo's default 12-minute length: 28 epochs x 20 iterations (560 steps),
    the learning rate decayed from 3e-3 to 0 by nnU-Net's poly schedule.

    Calibrated on 2 CPU cores with the demo's default cohort (grid 32): about 0.42 s per step.
    """

    LENGTH = TrainingLength(epochs=28, iterations_per_epoch=20, val_iterations_per_epoch=4)

    def configure_optimizers(self):
        optimizer, _ = super().configure_optimizers()
        # 560 steps at a constant 3e-3 end at a noisy point (pseudo Dice swung 0.4-0.7 between the
        # last epochs); nnU-Net's poly decay (exponent 0.9) lets the last epochs settle.
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


class nnUNetTrainer_CPUsmoke(_NamedLength, nnUNetTrainer):
    """Stock nnU-Net (the 3d_fullres baseline) for 1 epoch x 5 iterations; not seeded."""

    LENGTH = nnUNetTrainerRenalPaper_CPUsmoke.LENGTH


class nnUNetTrainer_CPUdemo2min(_NamedLength, nnUNetTrainer):
    """Stock nnU-Net for the demo's 2-minute length (5 epochs x 20 iterations); not seeded."""

    LENGTH = nnUNetTrainerRenalPaper_CPUdemo2min.LENGTH


class nnUNetTrainer_CPUdemo12min(_NamedLength, nnUNetTrainer):
    """Stock nnU-Net for the demo's 12-minute length (28 epochs x 20 iterations); not seeded."""

    LENGTH = nnUNetTrainerRenalPaper_CPUdemo12min.LENGTH


def _seed_generators(seed: int) -> None:
    """Seed the generators nnU-Net training draws from: Python's, NumPy's global and torch's."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
