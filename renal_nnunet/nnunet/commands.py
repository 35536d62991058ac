"""nnU-Net's own plan / train / predict entry points, called in-process with this package's
trainers registered (no ``nnUNet_extTrainer`` needed).

Each function is the library side of a ``renal-nnunet`` subcommand and mirrors a stock command:

=====================================  ==============================================
``plan``                               ``nnUNetv2_plan_and_preprocess -d D -c 3d_fullres
                                       [-pl PLANNER] --verify_dataset_integrity`` + copy the
                                       converter's ``splits_final.json`` into the preprocessed folder
``train``                              ``nnUNetv2_train D 3d_fullres F -tr T [--c]``
``predict_dataset``                    ``nnUNetv2_predict -i IN -o OUT -d D -c C -tr T -f ...``
=====================================  ==============================================

nnU-Net's folders come from the usual ``nnUNet_raw`` / ``nnUNet_preprocessed`` /
``nnUNet_results`` variables, read through :mod:`renal_nnunet.nnunet.environment`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from renal_nnunet.io import InputError
from renal_nnunet.nnunet.environment import dataset_folder, environment_variables, required_folder
from renal_nnunet.nnunet.layout import CHECKPOINT_NAME, fold_dir, new_predictor
from renal_nnunet.settings import PAPER
from renal_nnunet.trainers.registration import trainer_lookup

log = logging.getLogger(__name__)

__all__ = [
    "PAPER_TRAINER",
    "plan",
    "train",
    "predict_dataset",
]

PAPER_TRAINER = "nnUNetTrainerRenalPaper"


def plan(dataset: int | str, configurations: Sequence[str] = ("3d_fullres",), verify: bool = True,
         num_processes: int = 1, planner: str = "ExperimentPlanner") -> Path:
    """Fingerprint, plan and preprocess a dataset with nnU-Net's defaults, then install its splits.

    Args:
        dataset: dataset id (e.g. 501) or name.
        configurations: nnU-Net configurations to preprocess (the paper's grids need ``3d_fullres``).
        verify: run nnU-Net's dataset integrity check first.
        num_processes: worker processes for fingerprinting and preprocessing.
        planner: nnU-Net experiment planner class (its ``-pl``): ``ExperimentPlanner`` writes the
            plans ``nnUNetPlans``, ``nnUNetPlannerResEncM``/``L``/``XL`` write
            ``nnUNetResEncUNetMPlans``/``L``/``XL`` (train and predict then take them as ``-p``).

    Returns:
        The preprocessed dataset folder. If the raw dataset has a ``splits_final.json`` (written by
        ``renal-nnunet convert``: 5 folds grouped by patient, shared by all datasets) it is copied
        there (the splits belong to the dataset, so every plans of it shares them); otherwise
        nnU-Net makes its own random split at training time.
    """
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    from renal_nnunet.nnunet.splits import SPLITS_FILE, install_splits

    raw_dir = dataset_folder(dataset, "nnUNet_raw")
    dataset_id = int(raw_dir.name[len("Dataset"):len("Dataset") + 3])
    extract_fingerprints([dataset_id], num_processes=num_processes, check_dataset_integrity=verify, clean=True,
                         verbose=False, show_progress_bar=False)
    # nnU-Net's planner sizes a torch thread pool by nnUNet_n_proc_DA and fails on 0, the value that
    # makes training augment in-process; planning uses no augmentation workers, so 1 changes nothing else.
    in_process = {"nnUNet_n_proc_DA": "1"} if os.environ.get("nnUNet_n_proc_DA") == "0" else {}
    with environment_variables(in_process):
        plans_identifier = plan_experiments([dataset_id], experiment_planner_class_name=planner)
    preprocess([dataset_id], plans_identifier, tuple(configurations), [num_processes] * len(configurations),
               verbose=False, show_progress_bar=False)
    preprocessed_dir = dataset_folder(dataset_id, "nnUNet_preprocessed")
    if (raw_dir / SPLITS_FILE).is_file():
        install_splits(raw_dir, preprocessed_dir)
        log.info("installed %s into %s", raw_dir / SPLITS_FILE, preprocessed_dir)
    else:
        log.warning("%s has no %s: nnU-Net will make a random (not patient-grouped) split", raw_dir, SPLITS_FILE)
    return preprocessed_dir


def train(dataset: int | str, fold: int | str, trainer: str = PAPER_TRAINER, configuration: str = "3d_fullres",
          plans: str = "nnUNetPlans", continue_training: bool = False, device: str = "cuda",
          export_validation_probabilities: bool = False) -> Path:
    """Train one fold through nnU-Net's ``run_training`` (what ``nnUNetv2_train`` calls).

    Returns:
        The fold's output folder under ``nnUNet_results``.
    """
    import torch
    from nnunetv2.run.run_training import run_training

    required_folder("nnUNet_results")
    dataset_name = dataset_folder(dataset, "nnUNet_preprocessed").name
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    with trainer_lookup():
        run_training(dataset_name, configuration, fold, trainer, plans, continue_training=continue_training,
                     export_validation_probabilities=export_validation_probabilities, device=torch.device(device))
    return fold_dir(required_folder("nnUNet_results") / dataset_name / f"{trainer}__{plans}__{configuration}", fold)


def predict_dataset(input_folder: str | os.PathLike, output_folder: str | os.PathLike, dataset: int | str,
                    folds: Sequence[int | str] = PAPER.folds, trainer: str = PAPER_TRAINER,
                    configuration: str = "3d_fullres", plans: str = "nnUNetPlans", device: str = "cuda",
                    save_probabilities: bool = False, num_processes: int = 1,
                    checkpoint: str = CHECKPOINT_NAME) -> Path:
    """Predict a folder of nnU-Net-format images (``CASE_0000.nii.gz``) like ``nnUNetv2_predict``.

    With ``num_processes`` 1 nnU-Net's sequential predictor is used (no worker pools, whose start
    costs ~30 s on a small machine).

    Returns:
        The output folder (``CASE.nii.gz`` label maps on the input images' grid).
    """
    model_dir = dataset_folder(dataset, "nnUNet_results") / f"{trainer}__{plans}__{configuration}"
    if not model_dir.is_dir():
        raise InputError(model_dir, "trained model folder does not exist; train it first (renal-nnunet train)")
    if not Path(input_folder).is_dir():
        raise InputError(input_folder, "input folder does not exist")
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    predictor = new_predictor(model_dir, folds, device, checkpoint_name=checkpoint)
    if num_processes <= 1:
        predictor.predict_from_files_sequential(str(input_folder), str(output_folder), save_probabilities,
                                                overwrite=True)
    else:
        predictor.predict_from_files(str(input_folder), str(output_folder), save_probabilities, overwrite=True,
                                     num_processes_preprocessing=num_processes,
                                     num_processes_segmentation_export=num_processes)
    return Path(output_folder)
