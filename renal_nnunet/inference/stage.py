"""One segmentation stage on one CT: grid preparation, nnU-Net 5-fold ensemble, mapping back.

The paper's U-Nets see the CT (or a kidney's box) resized to a G^3 grid. Here a CT in any
orientation and spacing is prepared exactly like the training data
(:func:`renal_nnunet.anatomy.grid.prepare_grid_ct`: paper window, resize to G^3),
predicted by nnU-Net's own ``nnUNetPredictor`` (its preprocessing, sliding window, logits
averaged over folds as ``nnUNetv2_predict -f 0 1 2 3 4`` does, softmax), and the grid
probabilities are resampled linearly back onto the CT's voxels with the grid sidecar
(:func:`renal_nnunet.anatomy.geometry.resample_from_grid`). Outside a crop box the background
probability is 1.

Arrays are numpy (z, y, x), channels first; crop boxes are ITK (x, y, z) voxel start/size.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import bounding_box_with_margin, resample_from_grid
from renal_nnunet.io import InputError
from renal_nnunet.trainers.registration import trainer_lookup

log = logging.getLogger(__name__)

__all__ = [
    "PAPER_FOLDS",
    "model_grid_size",
    "predict_grid_probabilities",
    "predict_stage_probabilities",
    "combine_crop_probabilities",
    "crop_boxes_from_labels",
    "predict_stage_labels",
]

PAPER_FOLDS = (0, 1, 2, 3, 4)
CHECKPOINT_NAME = "checkpoint_final.pth"


def _read_plans(model_dir: Path) -> dict:
    plans_path = Path(model_dir) / "plans.json"
    if not plans_path.is_file():
        raise InputError(model_dir, "is not an nnU-Net trained-model folder (no plans.json); expected e.g. "
                         ".../Dataset501_RenalKidney128/nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres")
    try:
        return json.loads(plans_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(plans_path, f"cannot be read as JSON: {err}") from None


def _configuration_name(model_dir: Path) -> str:
    parts = Path(model_dir).name.split("__")
    if len(parts) != 3:
        raise InputError(model_dir, "folder name is not nnU-Net's TRAINER__PLANS__CONFIGURATION")
    return parts[2]


def model_grid_size(model_dir: str | os.PathLike) -> int:
    """Grid edge G (voxels) a model was trained on, from its plans (every training image is G^3).

    Raises:
        InputError: not a model folder, or its training images were not a fixed cubic grid.
    """
    model_dir = Path(model_dir)
    plans = _read_plans(model_dir)
    configuration = _configuration_name(model_dir)
    try:
        median = plans["configurations"][configuration]["median_image_size_in_voxels"]
    except KeyError:
        raise InputError(model_dir / "plans.json", f"has no configuration {configuration!r}") from None
    sizes = {int(round(s)) for s in median}
    if len(sizes) != 1:
        raise InputError(model_dir / "plans.json", f"training images are {median} voxels, not a cubic grid; "
                         "this model was not trained on a renal-nnunet grid dataset")
    return sizes.pop()


def _checkpoint_stamps(model_dir: Path, folds: tuple) -> tuple[int, ...]:
    """Modification times of the folds' final checkpoints (part of the predictor cache key)."""
    stamps = []
    for fold in folds:
        checkpoint = model_dir / f"fold_{fold}" / CHECKPOINT_NAME
        if not checkpoint.is_file():
            raise InputError(checkpoint, f"checkpoint missing: fold {fold} of this model is not trained (or still "
                             "training); train it or choose other folds")
        stamps.append(checkpoint.stat().st_mtime_ns)
    return tuple(stamps)


@functools.lru_cache(maxsize=2)
def _predictor(model_dir: str, folds: tuple, device: str, checkpoint_stamps: tuple):
    """nnU-Net's predictor with the folds' weights loaded; cached (the mass stage runs once per
    kidney), keyed on the checkpoints' modification times so a retrained model is reloaded."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=device != "cpu", device=torch.device(device),
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    with trainer_lookup():
        predictor.initialize_from_trained_model_folder(model_dir, use_folds=folds, checkpoint_name=CHECKPOINT_NAME)
    return predictor


def _grid_logits_per_fold(predictor, grid_ct: sitk.Image) -> tuple[list, dict]:
    """nnU-Net preprocessing of one grid image, then each fold's sliding-window logits."""
    import torch

    image = sitk.GetArrayFromImage(grid_ct)[None].astype(np.float32)
    properties = {"spacing": list(grid_ct.GetSpacing())[::-1]}
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case_npy(image, None, properties, predictor.plans_manager,
                                                    predictor.configuration_manager, predictor.dataset_json)
    data = torch.from_numpy(np.ascontiguousarray(data)).float()
    all_parameters = predictor.list_of_parameters
    logits = []
    try:
        for parameters in all_parameters:
            predictor.list_of_parameters = [parameters]
            logits.append(predictor.predict_logits_from_preprocessed_data(data))
    finally:
        predictor.list_of_parameters = all_parameters
    return logits, properties


def _grid_probabilities(predictor, logits, properties) -> np.ndarray:
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, properties,
        return_probabilities=True)
    return np.asarray(probabilities, dtype=np.float32)


def _to_source(grid_probabilities: np.ndarray, sidecar, crop_only: bool = False) -> np.ndarray:
    """Grid class probabilities onto the source voxels (or the crop box's); background 1 outside the box."""
    background = resample_from_grid(grid_probabilities[0], sidecar, "linear", 1.0, crop_only)
    foreground = resample_from_grid(grid_probabilities[1:], sidecar, "linear", 0.0, crop_only)
    return np.concatenate([background[None], foreground]).astype(np.float32, copy=False)


def _to_source_labels(grid_probabilities: np.ndarray, sidecar) -> np.ndarray:
    """Argmax of the grid class probabilities resampled linearly onto the source voxels, one
    channel at a time: the same labels as the argmax of :func:`_to_source`'s array (ties go to the
    lower class), without holding every channel of a 512x512 CT at once."""
    best = resample_from_grid(grid_probabilities[0], sidecar, "linear", 1.0)
    labels = np.zeros(best.shape, np.uint8)
    for label, channel in enumerate(grid_probabilities[1:], start=1):
        probability = resample_from_grid(channel, sidecar, "linear", 0.0)
        higher = probability > best
        labels[higher] = label
        np.maximum(best, probability, out=best)
    return labels


def predict_grid_probabilities(
    grid_ct: sitk.Image,
    model_dir: str | os.PathLike,
    folds: Sequence[int | str] = PAPER_FOLDS,
    device: str = "cpu",
    return_per_fold: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Class probabilities on a grid image, exactly as ``nnUNetv2_predict -f ...`` computes them.

    Args:
        grid_ct: a G^3 image made by ``prepare_grid_ct`` (or a converted dataset's image).
        model_dir: nnU-Net trained-model folder.
        folds: folds whose logits are averaged before the softmax.
        device: ``cpu``, ``cuda`` or ``mps``.
        return_per_fold: also return each fold's own probabilities.

    Returns:
        float32 (C, G, G, G) probabilities (numpy z, y, x), or ``(ensemble, [per fold])``.

    Raises:
        InputError: not a model folder, or a requested fold has no final checkpoint.
    """
    model_dir = Path(model_dir).resolve()
    folds = tuple(f if f == "all" else int(f) for f in folds)
    predictor = _predictor(str(model_dir), folds, device, _checkpoint_stamps(model_dir, folds))
    fold_logits, properties = _grid_logits_per_fold(predictor, grid_ct)
    mean_logits = sum(fold_logits[1:], fold_logits[0]) / len(fold_logits)  # nnU-Net's fold ensemble
    ensemble = _grid_probabilities(predictor, mean_logits, properties)
    if not return_per_fold:
        return ensemble
    return ensemble, [_grid_probabilities(predictor, logits, properties) for logits in fold_logits]


def predict_stage_probabilities(
    ct: sitk.Image,
    model_dir: str | os.PathLike,
    folds: Sequence[int | str] = PAPER_FOLDS,
    crop_start: Sequence[int] | None = None,
    crop_size: Sequence[int] | None = None,
    device: str = "cpu",
    return_per_fold: bool = False,
    crop_only: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Class probabilities of one trained stage on ``ct``'s own voxels.

    Args:
        ct: CT in HU, any spacing (the model sees it in the orientation it is stored in, as
            nnU-Net does; training and test CTs should share an orientation convention).
        model_dir: nnU-Net trained-model folder, e.g.
            ``.../Dataset501_RenalKidney128/nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres``;
            the grid size is read from its plans.
        folds: folds to ensemble (their logits are averaged, as ``nnUNetv2_predict -f`` does).
        crop_start: first voxel of the box to predict, ITK (x, y, z); default the whole CT.
        crop_size: box size in voxels, ITK (x, y, z).
        device: ``cpu``, ``cuda`` or ``mps``.
        return_per_fold: also return each fold's own probabilities (for the ensemble spread).
        crop_only: return the crop box's voxels only (C, z, y, x of ``crop_size``): a mass
            stage's box is a few percent of a 512x512 CT, so this saves most of the memory.

    Returns:
        float32 (C, Z, Y, X) probabilities in ``ct``'s geometry (C = the model's classes, in its
        dataset.json label order; background 1 outside the box), resampled linearly from the
        grid. With ``return_per_fold``, a tuple ``(ensemble, [fold probabilities, ...])``; the
        ensemble is the softmax of the mean logits, not the mean of the fold probabilities.

    Raises:
        InputError: not a model folder, or a requested fold has no final checkpoint.
        ValueError: the crop box lies outside the CT.
    """
    from renal_nnunet.anatomy.grid import prepare_grid_ct

    grid_ct, sidecar = prepare_grid_ct(ct, model_grid_size(model_dir), crop_start, crop_size)
    log.debug("stage %s, box start %s size %s, folds %s", model_dir, sidecar.crop_start, sidecar.crop_size, folds)
    result = predict_grid_probabilities(grid_ct, model_dir, folds, device, return_per_fold)
    if not return_per_fold:
        return _to_source(result, sidecar, crop_only)
    ensemble, per_fold = result
    return _to_source(ensemble, sidecar, crop_only), [_to_source(fold, sidecar, crop_only) for fold in per_fold]


def combine_crop_probabilities(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Merge full-size probabilities predicted in different crop boxes (e.g. one per kidney).

    Each foreground class keeps its highest probability over the boxes and background its lowest,
    so a voxel is foreground wherever any box found it (overlaps: the more confident box wins).
    The result is for taking the argmax; its channels need not sum to 1.
    """
    if not probabilities:
        raise ValueError("no crop probabilities to combine")
    stacked = np.stack(probabilities)
    combined = stacked.max(axis=0)
    combined[0] = stacked[:, 0].min(axis=0)
    return combined


def crop_boxes_from_labels(labels: sitk.Image, margin_mm: float = 10.0) -> list[tuple[tuple, tuple]]:
    """One crop box per nonzero label (e.g. right and left kidney) grown by ``margin_mm``.

    This is the mass stage's region of interest, made as the converter makes the mass crops.

    Returns:
        ``[(start, size), ...]`` in ITK (x, y, z) voxels, by increasing label value.
    """
    array = sitk.GetArrayViewFromImage(labels)
    return [bounding_box_with_margin(array == value, labels.GetSpacing(), margin_mm)
            for value in np.unique(array) if value != 0]


def predict_stage_labels(
    ct: sitk.Image,
    model_dir: str | os.PathLike,
    folds: Sequence[int | str] = PAPER_FOLDS,
    crop_boxes: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None,
    device: str = "cpu",
) -> sitk.Image:
    """Label map of one stage in ``ct``'s geometry: argmax of the ensemble probabilities.

    Args:
        ct: CT in HU.
        model_dir: nnU-Net trained-model folder.
        folds: folds to ensemble.
        crop_boxes: ``(start, size)`` boxes (ITK x, y, z) predicted separately and merged with
            :func:`combine_crop_probabilities`; None predicts the whole CT.
        device: torch device name.

    Returns:
        uint8 label image with exactly ``ct``'s size, spacing, origin and direction.
    """
    if crop_boxes is None:
        from renal_nnunet.anatomy.grid import prepare_grid_ct

        grid_ct, sidecar = prepare_grid_ct(ct, model_grid_size(model_dir))
        array = _to_source_labels(predict_grid_probabilities(grid_ct, model_dir, folds, device), sidecar)
    elif len(crop_boxes) == 0:
        raise ValueError("crop_boxes is empty: nothing to predict (is the kidney segmentation empty?)")
    else:
        array = np.argmax(combine_crop_probabilities([
            predict_stage_probabilities(ct, model_dir, folds, start, size, device) for start, size in crop_boxes]),
            axis=0).astype(np.uint8)
    labels = sitk.GetImageFromArray(array)
    labels.CopyInformation(ct)
    return labels
