"""One source of the paper's settings: every stage's default reads ``renal_nnunet.settings.PAPER``,
and ``PAPER`` holds the paper's values."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from renal_nnunet.settings import PAPER, PaperSettings


def test_paper_values():
    assert (PAPER.window_level_hu, PAPER.window_width_hu) == (30.0, 300.0)
    assert PAPER.grid == 128 and PAPER.kidney_margin_mm == 10.0 and PAPER.size_threshold_mm == 5.0
    assert PAPER.unet_base_features == 16 and PAPER.batch_size == 4 and PAPER.epochs == 400
    assert PAPER.learning_rate == 1e-4 and PAPER.weight_decay == 0.0
    assert PAPER.folds == (0, 1, 2, 3, 4)
    assert (PAPER.classifier_depth, PAPER.classifier_hidden, PAPER.classifier_dropout) == (10, 128, 0.1)
    assert (PAPER.max_rotation_deg, PAPER.max_translation_fraction) == (10.0, 0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER.epochs = 5
    assert PaperSettings() == PAPER


def test_ct_window_reads_the_settings():
    from renal_nnunet.anatomy import intensity

    window = inspect.signature(intensity.window_ct).parameters
    assert window["level_hu"].default == PAPER.window_level_hu == intensity.PAPER_WINDOW_LEVEL_HU
    assert window["width_hu"].default == PAPER.window_width_hu == intensity.PAPER_WINDOW_WIDTH_HU


def test_conversion_and_models_read_the_settings():
    from renal_nnunet.dataset_conversion.convert import ConversionConfig
    from renal_nnunet.nnunet.splits import NUM_FOLDS
    from renal_nnunet.pipeline.models import ModelsManifest

    config = ConversionConfig()
    assert (config.grid, config.margin_mm) == (PAPER.grid, PAPER.kidney_margin_mm)
    assert NUM_FOLDS == len(PAPER.folds)
    threshold = {f.name: f.default for f in dataclasses.fields(ModelsManifest)}["min_classify_diameter_mm"]
    assert threshold == PAPER.size_threshold_mm


def test_training_configs_read_the_settings():
    from renal_nnunet.nnunet.commands import predict_dataset
    from renal_nnunet.pipeline.training import CascadeTrainingConfig

    cascade = CascadeTrainingConfig()
    assert cascade.folds == cascade.classifier_folds == PAPER.folds
    assert cascade.classifier_epochs == PAPER.epochs and cascade.margin_mm == PAPER.kidney_margin_mm
    assert inspect.signature(predict_dataset).parameters["folds"].default == PAPER.folds


def test_classifier_reads_the_settings():
    from renal_nnunet.classification.model import HEAD_DROPOUT, HEAD_HIDDEN, build_classifier
    from renal_nnunet.classification.train import ClassifierTrainConfig

    config = ClassifierTrainConfig()
    assert (config.epochs, config.batch_size, config.learning_rate) == (
        PAPER.epochs, PAPER.batch_size, PAPER.learning_rate)
    assert (HEAD_HIDDEN, HEAD_DROPOUT) == (PAPER.classifier_hidden, PAPER.classifier_dropout)
    head = build_classifier().fc
    assert head[0].out_features == PAPER.classifier_hidden and head[2].p == PAPER.classifier_dropout


def test_augmentation_reads_the_settings():
    from renal_nnunet.trainers.augmentation import PaperAugmentation

    augmentation = PaperAugmentation()
    assert augmentation.max_rotation_deg == PAPER.max_rotation_deg
    assert augmentation.max_translation_fraction == PAPER.max_translation_fraction
