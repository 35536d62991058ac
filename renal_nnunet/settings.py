"""The paper's settings in one place (Zhao et al., Front. Oncol. 2023, section 2.6).

Every stage reads its defaults from :data:`PAPER`: the nnU-Net trainer, the classifier's training
config, the converter's config and the CLI defaults. Change a value here (or pass another
:class:`PaperSettings` where a function takes one) and every stage follows.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PaperSettings", "PAPER"]


@dataclass(frozen=True)
class PaperSettings:
    """The method's settings; units in the names.

    Attributes:
        window_level_hu, window_width_hu: CT window (the paper prints them swapped: "width 30 HU,
            level 300 HU"; the intended window is level 30, width 300, i.e. [-120, 180] HU).
        grid: edge of the cubic grid every network input is resized to, voxels (128^3).
        kidney_margin_mm: margin around each kidney's bounding box for the mass stage's crop, mm.
        unet_base_features: U-Net filters in the first stage, doubling per stage.
        batch_size: U-Net and classifier batch size.
        epochs: U-Net and classifier training epochs.
        learning_rate: Adam learning rate (U-Nets and classifier).
        weight_decay: Adam weight decay; the paper states none, so none is used.
        folds: cross-validation folds ensembled at inference (5-fold ensemble).
        size_threshold_mm: average-diameter threshold of the classification strata, mm; masses
            below it are "too small to characterise" in ``predict``.
        classifier_depth: ResNet depth (MedicalNet ResNet-10).
        classifier_hidden: hidden units of the classification head.
        classifier_dropout: dropout before the head's last layer.
        max_rotation_deg: augmentation rotation about each axis, uniform in [-max, +max] degrees.
        max_translation_fraction: augmentation in-plane shift, uniform in [-max, +max] x edge.
    """

    window_level_hu: float = 30.0
    window_width_hu: float = 300.0
    grid: int = 128
    kidney_margin_mm: float = 10.0
    unet_base_features: int = 16
    batch_size: int = 4
    epochs: int = 400
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    size_threshold_mm: float = 5.0
    classifier_depth: int = 10
    classifier_hidden: int = 128
    classifier_dropout: float = 0.1
    max_rotation_deg: float = 10.0
    max_translation_fraction: float = 0.1


PAPER = PaperSettings()
"""The paper's values."""
