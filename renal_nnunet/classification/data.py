"""Classifier data: the converter's lesion table and crops, folds by patient, balanced sampling.

The converter (``renal-nnunet convert``) writes ``<RAW>/RenalLesions/lesions.csv`` (one row per
lesion: ``case_id, patient_id, lesion_id, lesion_class, ...``, optionally ``fold``) and one crop per
lesion, ``crops/<case_id>_<lesion_id>.nii.gz``, made by
:func:`renal_nnunet.anatomy.crops.lesion_crop` (windowed HU in [-120, 180], -120 outside
the lesion, resized to the grid). Prediction makes its crops with the same function, and both
paths turn a crop into network input with :func:`crop_to_input`.

Classes are :data:`renal_nnunet.anatomy.labels.LESION_CLASSES`; lesions of class ``unknown`` (no
histology) are left out.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, WeightedRandomSampler

from renal_nnunet.anatomy.crops import BELOW_WINDOW_HU, WINDOW_FLOOR_HU
from renal_nnunet.anatomy.intensity import PAPER_WINDOW_WIDTH_HU
from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.io import InputError, read_image
from renal_nnunet.nnunet.splits import patient_folds

__all__ = [
    "LESION_TABLE",
    "CROPS_FOLDER",
    "read_lesion_table",
    "fold_split",
    "crop_to_input",
    "LesionCropDataset",
    "class_balanced_sampler",
]

log = logging.getLogger(__name__)

LESION_TABLE = "lesions.csv"
CROPS_FOLDER = "crops"
UNKNOWN_CLASS = "unknown"
_REQUIRED_COLUMNS = ("case_id", "patient_id", "lesion_id", "lesion_class")


def read_lesion_table(lesions_dir: str | os.PathLike) -> pd.DataFrame:
    """Read the lesion table, keep lesions of a known class, and attach crop paths and folds.

    Args:
        lesions_dir: the converter's ``RenalLesions`` folder (``lesions.csv`` + ``crops/``).

    Returns:
        One row per usable lesion with added columns ``crop_path`` (str), ``label`` (index into
        ``LESION_CLASSES``) and ``fold`` (the table's own column, else the converter's split by
        ``patient_id``: 0..k-1 with k = min(5, patients), -1 with a single patient).

    Raises:
        InputError: missing table or crop files, missing columns, unknown class names, or no
            lesion of a known class.
    """
    lesions_dir = Path(lesions_dir)
    table_path = lesions_dir / LESION_TABLE
    if not table_path.is_file():
        raise InputError(table_path, "lesion table does not exist; run `renal-nnunet convert` first")
    try:
        table = pd.read_csv(table_path, dtype={"case_id": str, "patient_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(table_path, f"cannot be read as CSV: {err}") from None
    missing = [c for c in _REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(table_path, f"lacks columns {missing}; has {list(table.columns)}")
    bad_classes = sorted(set(table["lesion_class"]) - set(LESION_CLASSES) - {UNKNOWN_CLASS})
    if bad_classes:
        raise InputError(table_path, f"unknown lesion_class values {bad_classes}; "
                                     f"expected {list(LESION_CLASSES)} or '{UNKNOWN_CLASS}'")
    n_unknown = int((table["lesion_class"] == UNKNOWN_CLASS).sum())
    table = table[table["lesion_class"] != UNKNOWN_CLASS].reset_index(drop=True)
    if table.empty:
        raise InputError(table_path, f"has no lesion of a known class ({n_unknown} 'unknown' left out)")
    table["label"] = table["lesion_class"].map(LESION_CLASSES.index).astype(int)
    table["crop_path"] = [
        str(lesions_dir / CROPS_FOLDER / f"{case}_{int(lesion)}.nii.gz")
        for case, lesion in zip(table["case_id"], table["lesion_id"])
    ]
    absent = [p for p in table["crop_path"] if not Path(p).is_file()]
    if absent:
        raise InputError(absent[0], f"crop file missing ({len(absent)} of {len(table)} crops missing)")
    if "fold" not in table.columns or table["fold"].isna().any():
        table["fold"] = _patient_folds(table["patient_id"])
    table["fold"] = table["fold"].astype(int)
    log.info("lesion table %s: %d lesions %s, %d 'unknown' left out", table_path, len(table),
             table["lesion_class"].value_counts().to_dict(), n_unknown)
    return table


def _patient_folds(patient_ids: pd.Series) -> list[int]:
    """Fold of each row from the converter's patient split (-1 for all with fewer than 2 patients)."""
    try:
        fold_of_patient = patient_folds(patient_ids)
    except ValueError:
        return [-1] * len(patient_ids)
    return [fold_of_patient[p] for p in patient_ids]


def fold_split(table: pd.DataFrame, fold: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training, validation) rows for ``fold``; ``None`` trains on every lesion (no validation).

    Raises:
        ValueError: the fold does not exist in the table.
    """
    if fold is None:
        return table, table.iloc[0:0]
    folds = sorted(table["fold"].unique())
    if fold not in folds:
        raise ValueError(f"fold {fold} not in the lesion table's folds {folds} (-1: too few patients to "
                         "cross-validate; train on all lesions with fold None / --fold all)")
    held_out = table["fold"] == fold
    if held_out.all():
        raise ValueError(f"fold {fold} holds every lesion; nothing is left to train on")
    return table[~held_out].reset_index(drop=True), table[held_out].reset_index(drop=True)


def crop_to_input(crop: sitk.Image | np.ndarray, grid: int | None = None) -> torch.Tensor:
    """Network input (1, D, H, W) float32 from a lesion crop in windowed HU, (z, y, x) order.

    Intensities map linearly from the window [-120, 180] HU to [0, 1]; a fill outside the lesion
    below the window (down to :data:`~renal_nnunet.anatomy.crops.BELOW_WINDOW_HU`, -1) keeps its
    value. If ``grid`` differs from the crop's size, the crop is resized trilinearly
    (cell-centred) to ``grid``^3.
    """
    array = sitk.GetArrayFromImage(crop) if isinstance(crop, sitk.Image) else np.asarray(crop)
    scaled = (np.clip(array.astype(np.float32), BELOW_WINDOW_HU, WINDOW_FLOOR_HU + PAPER_WINDOW_WIDTH_HU)
              - WINDOW_FLOOR_HU) / PAPER_WINDOW_WIDTH_HU
    tensor = torch.from_numpy(np.ascontiguousarray(scaled))[None]
    if grid is not None and tuple(tensor.shape[1:]) != (grid,) * 3:
        tensor = F.interpolate(tensor[None], size=(grid,) * 3, mode="trilinear", align_corners=False)[0]
    return tensor


class LesionCropDataset(Dataset):
    """Crops of a lesion table as (input (1, D, H, W), class index) pairs.

    Args:
        table: rows from :func:`read_lesion_table`.
        grid: network input edge; crops of another size are resized.
        augment: called on each (1, D, H, W) tensor (training only), e.g. the paper's augmentation.
    """

    def __init__(self, table: pd.DataFrame, grid: int | None = None,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.paths = list(table["crop_path"])
        self.labels = np.asarray(table["label"], dtype=np.int64)
        self.grid = grid
        self.augment = augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        volume = crop_to_input(read_image(self.paths[index]), self.grid)
        if self.augment is not None:
            volume = self.augment(volume)
        return volume, int(self.labels[index])


def class_balanced_sampler(labels: np.ndarray, num_samples: int, generator: torch.Generator) -> WeightedRandomSampler:
    """Draw ``num_samples`` indices with replacement so every present class is equally likely
    (AML is rare: 8 of 489 KiTS23 patients)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=len(LESION_CLASSES)).astype(float)
    weights = 1.0 / counts[labels]
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples, replacement=True,
                                 generator=generator)
