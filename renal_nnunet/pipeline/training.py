"""Train the whole cascade from converted raw datasets and assemble a models folder.

Used by the demo and the tests: stock nnU-Net planning/preprocessing (``renal_nnunet.trainers.
commands.plan``), nnU-Net's own trainer loop for the kidney and mass datasets, the lesion
classifier on the converter's crops, then :func:`renal_nnunet.pipeline.models.assemble_models`.

Training length is set on the trainer instance (``num_epochs``, ``num_iterations_per_epoch``) so a
time budget can scale it; the trainer class (by default the paper trainer's CPU variant) is what
the checkpoint records and what nnU-Net's predictor rebuilds the network from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from renal_nnunet.pipeline.models import ModelsManifest, assemble_models

__all__ = ["NnunetFolders", "CascadeTrainingConfig", "nnunet_environment", "train_stage", "train_cascade"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NnunetFolders:
    """nnU-Net's three folders (raw, preprocessed, results)."""

    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def under(cls, root: str | os.PathLike) -> "NnunetFolders":
        root = Path(root)
        return cls(root / "nnUNet_raw", root / "nnUNet_preprocessed", root / "nnUNet_results")


@dataclass(frozen=True)
class CascadeTrainingConfig:
    """Options of :func:`train_cascade`.

    Attributes:
        kidney_dataset, mass_dataset: nnU-Net dataset ids (the converter's ``first_id`` and next).
        folds: nnU-Net folds to train for each stage (the paper: 0-4).
        trainer: nnU-Net trainer class name.
        epochs, iterations_per_epoch: training length of each nnU-Net fold.
        classifier_epochs: epochs of each classifier fold.
        classifier_folds: classifier folds (None: one model on all lesions).
        margin_mm: kidney-crop margin the converter used (mm).
        device: ``cpu``, ``cuda`` or ``mps``.
    """

    kidney_dataset: int = 501
    mass_dataset: int = 502
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    trainer: str = "nnUNetTrainerRenalPaper"
    epochs: int = 400
    iterations_per_epoch: int = 250
    classifier_epochs: int = 400
    classifier_folds: tuple[int, ...] | None = (0, 1, 2, 3, 4)
    margin_mm: float = 10.0
    device: str = "cpu"


@contextlib.contextmanager
def nnunet_environment(folders: NnunetFolders, data_augmentation_processes: int = 1) -> Iterator[NnunetFolders]:
    """Point nnU-Net at ``folders`` (and set its worker counts) within the block; restored after.

    nnU-Net 2.8.1 reads these variables when it uses them, so in-process calls see them.
    ``data_augmentation_processes=0`` makes nnU-Net train with a single-threaded augmenter (on a
    small CPU machine worker processes only add start-up time), but planning needs at least 1.
    """
    values = {"nnUNet_raw": folders.raw, "nnUNet_preprocessed": folders.preprocessed,
              "nnUNet_results": folders.results, "nnUNet_n_proc_DA": data_augmentation_processes,
              "nnUNet_def_n_proc": 1}
    previous = {name: os.environ.get(name) for name in values}
    for folder in (folders.raw, folders.preprocessed, folders.results):
        Path(folder).mkdir(parents=True, exist_ok=True)
    os.environ.update({name: str(value) for name, value in values.items()})
    try:
        yield folders
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def train_stage(dataset: int, fold: int, trainer: str, epochs: int, iterations_per_epoch: int,
                device: str = "cpu") -> Path:
    """Train one nnU-Net fold with nnU-Net's trainer loop (no final validation pass).

    Must run inside :func:`nnunet_environment`. nnU-Net's console output goes to its own log file
    in the fold folder. On the CPU, augmentation runs in this process (no worker start-up cost).

    Returns:
        The trained-model folder (``.../DatasetXXX_Name/Trainer__nnUNetPlans__3d_fullres``).
    """
    import torch
    from nnunetv2.run.run_training import get_trainer_from_args

    from renal_nnunet.trainers.registration import trainer_lookup

    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    folders = NnunetFolders(*(Path(os.environ[n]) for n in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")))
    workers = 0 if device == "cpu" else int(os.environ.get("nnUNet_n_proc_DA", 1))
    with (trainer_lookup(), nnunet_environment(folders, workers), open(os.devnull, "w") as quiet,
          contextlib.redirect_stdout(quiet)):
        nnunet_trainer = get_trainer_from_args(str(dataset), "3d_fullres", fold, trainer, "nnUNetPlans",
                                               device=torch.device(device))
        nnunet_trainer.num_epochs = int(epochs)
        nnunet_trainer.num_iterations_per_epoch = int(iterations_per_epoch)
        nnunet_trainer.num_val_iterations_per_epoch = max(1, int(iterations_per_epoch) // 5)
        nnunet_trainer.run_training()
    model_dir = Path(nnunet_trainer.output_folder_base)
    log.info("trained %s fold %d (%d x %d iterations) in %.0f s", model_dir.parent.name, fold, epochs,
             iterations_per_epoch, time.perf_counter() - started)
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
            log_path = folders.preprocessed / f"planning_{dataset}.log"
            with open(log_path, "a") as planning_log, contextlib.redirect_stdout(planning_log):
                plan(dataset, verify=False)  # nnU-Net prints its plans; keep them in a log file
            log.info("planned and preprocessed dataset %d in %.0f s (nnU-Net output: %s)", dataset,
                     time.perf_counter() - started, log_path)
            for fold in config.folds:
                model_dirs[dataset] = train_stage(dataset, fold, config.trainer, config.epochs,
                                                  config.iterations_per_epoch, config.device)
    classifier_folds: Sequence[int | None] = config.classifier_folds if config.classifier_folds else (None,)
    checkpoints = []
    for fold in classifier_folds:
        started = time.perf_counter()
        checkpoints.append(train_classifier(
            folders.raw / LESIONS_DIR, Path(work_dir) / "classifier",
            ClassifierTrainConfig(fold=fold, epochs=config.classifier_epochs, device=config.device)))
        log.info("trained classifier fold %s in %.0f s", fold, time.perf_counter() - started)
    return assemble_models(models_dir, model_dirs[config.kidney_dataset], model_dirs[config.mass_dataset],
                           checkpoints, config.folds, config.margin_mm)
