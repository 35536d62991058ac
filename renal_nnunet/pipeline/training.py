"""Train the whole cascade from converted raw datasets and assemble a models folder.

Used by the demo and the tests: stock nnU-Net planning/preprocessing (``renal_nnunet.nnunet.
commands.plan``), nnU-Net's own trainer loop for the kidney and mass datasets, the lesion
classifier on the converter's crops, then :func:`renal_nnunet.pipeline.models.assemble_models`.

How long a U-Net trains is its trainer class (a named variant such as
``nnUNetTrainerRenalPaper_CPUdemo12min``, see :mod:`renal_nnunet.trainers.paper`): the class the
checkpoint records is the one that trained, and what nnU-Net's predictor rebuilds the network from.
nnU-Net's prints go wherever ``sys.stdout`` goes (the demo sends them to its log file with
:func:`renal_nnunet.nnunet.environment.nnunet_output_to`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from renal_nnunet.nnunet.environment import NnunetFolders, nnunet_environment, training_environment
from renal_nnunet.pipeline.models import ModelsManifest, assemble_models
from renal_nnunet.settings import PAPER

__all__ = ["CascadeTrainingConfig", "train_stage", "train_cascade"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CascadeTrainingConfig:
    """Options of :func:`train_cascade` (defaults: the paper's).

    Attributes:
        kidney_dataset, mass_dataset: nnU-Net dataset ids (the converter's ``first_id`` and next).
        folds: nnU-Net folds to train for each stage (the paper: 0-4).
        trainer: nnU-Net trainer class name; its class sets the training length.
        classifier_epochs: epochs of each classifier fold.
        classifier_folds: classifier folds (None: one model on all lesions).
        margin_mm: kidney-crop margin the converter used (mm).
        device: ``cpu``, ``cuda`` or ``mps``.
        training_data: ``synthetic``, ``real`` or ``unknown`` (recorded in the models manifest).
    """

    kidney_dataset: int = 501
    mass_dataset: int = 502
    folds: tuple[int, ...] = PAPER.folds
    trainer: str = "nnUNetTrainerRenalPaper"
    classifier_epochs: int = PAPER.epochs
    classifier_folds: tuple[int, ...] | None = PAPER.folds
    margin_mm: float = PAPER.kidney_margin_mm
    device: str = "cpu"
    training_data: str = "unknown"


def train_stage(dataset: int, fold: int, trainer: str, device: str = "cpu") -> Path:
    """Train one nnU-Net fold with nnU-Net's trainer loop (no final validation pass).

    nnU-Net's folders come from the environment (:func:`~renal_nnunet.nnunet.environment.
    nnunet_environment`). On the CPU, augmentation runs in this process (no worker start-up cost).

    Returns:
        The trained-model folder (``.../DatasetXXX_Name/Trainer__nnUNetPlans__3d_fullres``).
    """
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from renal_nnunet.trainers.registration import trainer_lookup

    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    with trainer_lookup(), training_environment(device):
        nnunet_trainer = get_trainer_from_args(str(dataset), "3d_fullres", fold, trainer, "nnUNetPlans",
                                               device=torch.device(device))
        nnunet_trainer.run_training()
    model_dir = Path(nnunet_trainer.output_folder_base)
    log.info("trained %s fold %d (%d x %d iterations) in %.0f s", model_dir.parent.name, fold,
             nnunet_trainer.num_epochs, nnunet_trainer.num_iterations_per_epoch, time.perf_counter() - started)
    return model_dir


def train_cascade(folders: NnunetFolders, models_dir: str | os.PathLike, config: CascadeTrainingConfig,
                  work_dir: str | os.PathLike) -> ModelsManifest:
    """Plan, preprocess and train the kidney and mass stages and the classifier; assemble the models.

    Args:
        folders: nnU-Net folders; ``folders.raw`` holds the converter's datasets and ``RenalLesions``.
        models_dir: models folder to create.
        config: what to train and for how long.
        work_dir: scratch folder for the classifier's fold folders.

    Returns:
        The manifest of the new models folder.
    """
    from renal_nnunet.anatomy.crops import LESIONS_DIR
    from renal_nnunet.classification.train import ClassifierTrainConfig, train_classifier
    from renal_nnunet.nnunet.commands import plan

    model_dirs = {}
    with nnunet_environment(folders):
        for dataset in (config.kidney_dataset, config.mass_dataset):
            started = time.perf_counter()
            plan(dataset, verify=False)
            log.info("planned and preprocessed dataset %d in %.0f s", dataset, time.perf_counter() - started)
            for fold in config.folds:
                model_dirs[dataset] = train_stage(dataset, fold, config.trainer, config.device)
    classifier_folds: Sequence[int | None] = config.classifier_folds if config.classifier_folds else (None,)
    checkpoints = []
    for fold in classifier_folds:
        started = time.perf_counter()
        checkpoints.append(train_classifier(
            folders.raw / LESIONS_DIR, Path(work_dir) / "classifier",
            ClassifierTrainConfig(fold=fold, epochs=config.classifier_epochs, device=config.device)))
        log.info("trained classifier fold %s in %.0f s", fold, time.perf_counter() - started)
    calibration = None
    if None not in classifier_folds and len(classifier_folds) > 1:  # out-of-fold predictions exist
        from renal_nnunet.classification.calibration import calibrate_classifier

        calibration = calibrate_classifier(folders.raw / LESIONS_DIR, Path(work_dir) / "classifier",
                                           dict(zip(classifier_folds, checkpoints)), config.device)
    return assemble_models(models_dir, model_dirs[config.kidney_dataset], model_dirs[config.mass_dataset],
                           checkpoints, config.folds, config.margin_mm, training_data=config.training_data,
                           classifier_calibration=calibration)
