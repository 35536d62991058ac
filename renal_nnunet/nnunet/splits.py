"""Five-fold cross-validation grouped by patient, identical across all datasets.

Folds are drawn over patients with nnU-Net's own ``generate_crossval_split`` (KFold, shuffled,
seed 12345) and then expanded to each dataset's case names, so every series of a patient lands in
the same fold (the paper's rule) and fold k holds the same patients in every dataset. With fewer
than five patients there are as many folds as patients; with one patient there is no split.
``splits_final.json`` is written into each raw dataset folder; :func:`install_splits` copies it
into the preprocessed folder, where nnU-Net reads it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable

from nnunetv2.utilities.crossval_split import generate_crossval_split

from renal_nnunet.io import InputError, atomic_path, write_json
from renal_nnunet.settings import PAPER

__all__ = ["patient_folds", "splits_for_cases", "write_splits", "install_splits", "NUM_FOLDS", "SPLIT_SEED"]

NUM_FOLDS = len(PAPER.folds)
SPLIT_SEED = 12345
SPLITS_FILE = "splits_final.json"

def patient_folds(patient_ids: Iterable[str], num_folds: int = NUM_FOLDS) -> dict[str, int]:
    """Validation fold of every patient (``min(num_folds, number of patients)`` folds).

    Raises:
        ValueError: fewer than two patients (no cross-validation is possible).
    """
    patients = sorted(set(patient_ids))
    if len(patients) < 2:
        raise ValueError(f"cross-validation needs at least 2 patients, got {len(patients)}")
    folds = generate_crossval_split(patients, seed=SPLIT_SEED, n_splits=min(num_folds, len(patients)))
    return {patient: fold for fold, split in enumerate(folds) for patient in split["val"]}

def splits_for_cases(case_patients: dict[str, str], fold_of_patient: dict[str, int]) -> list[dict[str, list[str]]]:
    """nnU-Net splits (``[{'train': [...], 'val': [...]}, ...]``) for cases given as case -> patient."""
    num_folds = max(fold_of_patient.values()) + 1
    splits = []
    for fold in range(num_folds):
        val = sorted(case for case, patient in case_patients.items() if fold_of_patient[patient] == fold)
        train = sorted(case for case, patient in case_patients.items() if fold_of_patient[patient] != fold)
        splits.append({"train": train, "val": val})
    return splits

def write_splits(dataset_dir: Path, case_patients: dict[str, str], fold_of_patient: dict[str, int]) -> Path:
    """Write ``<dataset_dir>/splits_final.json``."""
    return write_json(splits_for_cases(case_patients, fold_of_patient), Path(dataset_dir) / SPLITS_FILE)

def install_splits(raw_dataset_dir: str | Path, preprocessed_dataset_dir: str | Path) -> Path:
    """Copy a raw dataset's ``splits_final.json`` to where nnU-Net reads it (atomically).

    Raises:
        InputError: the raw dataset has no (valid) ``splits_final.json``.
    """
    source = Path(raw_dataset_dir) / SPLITS_FILE
    if not source.is_file():
        raise InputError(source, "missing; convert the dataset with renal-nnunet convert first")
    try:
        json.loads(source.read_text())
    except ValueError as err:
        raise InputError(source, f"not valid JSON: {err}") from None
    target = Path(preprocessed_dataset_dir) / SPLITS_FILE
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
