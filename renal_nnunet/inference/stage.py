"""One segmentation stage on one CT: grid preparation, nnU-Net 5-fold ensemble, mapping back.

The paper's U-Nets see the CT (or a kidney's box) resized to a G^3 grid. Here a CT in any
orientation and spacing is prepared exactly like the training data
(:func:`renal_nnunet.anatomy.grid.prepare_grid_ct`: paper window, resize to G^3),
predicted by nnU-Net's own ``nnUNetPredictor`` (its preprocessing, sliding window, logits
averaged over folds as ``nnUNetv2_predict -f 0 1 2 3 4`` does, softmax), and the grid
probabilities are resampled linearly back onto the CT's voxels with the grid sidecar
(:func:`renal_nnunet.anatomy.geometry.resample_from_grid`). Outside a crop box the background
probability is 1.

The network itself runs in :func:`run_network` only (each fold's logits on preprocessed data);
the grid, the crops, nnU-Net's preprocessing, the fold averaging and everything after stay outside
it, so the backend (:mod:`renal_nnunet.inference.backends`: PyTorch, or OpenVINO on the CPU)
changes that one function's forward passes and nothing else. Overlapping crop boxes merge by one
rule, :func:`keep_higher_foreground`.

Arrays are numpy (z, y, x), channels first; crop boxes are ITK (x, y, z) voxel start/size.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import (
    bounding_box_with_margin,
    box_slices,
    grid_image_physical,
    image_like,
    nonzero_box,
    resample_from_grid,
)
from renal_nnunet.inference.backends import NETWORK_CLOCK, resolve_backend
from renal_nnunet.io import InputError
from renal_nnunet.settings import PAPER
from renal_nnunet.trainers.registration import trainer_lookup

log = logging.getLogger(__name__)

__all__ = [
    "FoldProbabilities",
    "model_grid_size",
    "fold_checkpoint",
    "compiled_fold_networks",
    "run_network",
    "predict_grid_probabilities",
    "predict_stage_probabilities",
    "keep_higher_foreground",
    "labels_from_foreground",
    "crop_boxes_from_labels",
    "predict_stage_labels",
]

CHECKPOINT_NAME = "checkpoint_final.pth"


@dataclass(frozen=True)
class FoldProbabilities:
    """Class probabilities of a fold ensemble, float32 channels first (C, z, y, x numpy order).

    Attributes:
        ensemble: softmax of the folds' mean logits (nnU-Net's ensemble), not the mean of the
            fold probabilities.
        per_fold: each fold's own probabilities, in the order of the folds asked for (empty unless
            asked for: they cost one full array per fold).
    """

    ensemble: np.ndarray
    per_fold: tuple[np.ndarray, ...] = ()


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

    The plans' median image size is a float; it is rounded to the nearest voxel (a median of
    127.9999 is grid 128, not 127). The one place the grid is read from a model.

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


def fold_checkpoint(model_dir: str | os.PathLike, fold: int | str) -> Path:
    """The final checkpoint of one fold of an nnU-Net trained-model folder."""
    return Path(model_dir) / f"fold_{fold}" / CHECKPOINT_NAME


def _checkpoint_stamps(model_dir: Path, folds: tuple) -> tuple[int, ...]:
    """Modification times of the folds' final checkpoints (part of the predictor cache key)."""
    stamps = []
    for fold in folds:
        checkpoint = fold_checkpoint(model_dir, fold)
        if not checkpoint.is_file():
            raise InputError(checkpoint, f"checkpoint missing: fold {fold} of this model is not trained (or still "
                             "training); train it or choose other folds")
        stamps.append(checkpoint.stat().st_mtime_ns)
    return tuple(stamps)


def _new_predictor(model_dir: str, folds: tuple, device: str):
    """nnU-Net's predictor with the folds' weights loaded (``nnUNetv2_predict``'s initialisation)."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=True,
                                perform_everything_on_device=device != "cpu", device=torch.device(device),
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    with trainer_lookup():
        predictor.initialize_from_trained_model_folder(model_dir, use_folds=folds, checkpoint_name=CHECKPOINT_NAME)
    return predictor


@functools.lru_cache(maxsize=2)
def _predictor(model_dir: str, folds: tuple, device: str, checkpoint_stamps: tuple):
    """:func:`_new_predictor`, cached (the mass stage runs once per kidney), keyed on the
    checkpoints' modification times so a retrained model is reloaded."""
    return _new_predictor(model_dir, folds, device)


@functools.lru_cache(maxsize=2)
def _openvino_stage(model_dir: str, folds: tuple, checkpoint_stamps: tuple) -> tuple:
    """``(predictor, networks)``: nnU-Net's predictor for the plans, preprocessing and sliding
    window, holding no torch weights, and each fold's network compiled by OpenVINO for the CPU
    (converted once per checkpoint and cached next to it), in fold order; cached like :func:`_predictor`.

    The predictor is initialised from the first fold alone (nnU-Net reads the trainer, the
    configuration and the mirroring axes from a checkpoint); the other checkpoints are read only
    when their conversion is not cached. So a run neither reads nor holds five folds of torch
    weights per stage (66 MB each for the paper's U-Net, three times that with a trained fold's
    optimizer state) beside the OpenVINO ones.
    """
    import torch

    from renal_nnunet.inference.openvino_backend import OpenVinoNetwork, openvino_model

    predictor = _new_predictor(model_dir, folds[:1], "cpu")
    template = predictor.network
    channels = len(predictor.dataset_json["channel_names"])
    example_input = torch.zeros((1, channels, *predictor.configuration_manager.patch_size))

    def build(fold):
        checkpoint = torch.load(fold_checkpoint(model_dir, fold), map_location="cpu", weights_only=False)
        template.load_state_dict(checkpoint["network_weights"])
        return template.eval(), example_input

    networks = tuple(OpenVinoNetwork(openvino_model(fold_checkpoint(model_dir, fold), functools.partial(build, fold)))
                     for fold in folds)
    predictor.network, predictor.list_of_parameters = None, []
    return predictor, networks


def compiled_fold_networks(model_dir: str | os.PathLike, folds: Sequence[int | str]) -> tuple:
    """Each fold's network of a trained-model folder compiled by OpenVINO for the CPU, in fold
    order (converted the first time and cached next to each checkpoint)."""
    model_dir = Path(model_dir).resolve()
    folds = tuple(f if f == "all" else int(f) for f in folds)
    return _openvino_stage(str(model_dir), folds, _checkpoint_stamps(model_dir, folds))[1]


def _preprocess(predictor, grid_ct: sitk.Image) -> tuple:
    """nnU-Net's own preprocessing of one grid image (as ``nnUNetv2_predict`` runs it)."""
    import torch

    image = sitk.GetArrayFromImage(grid_ct)[None].astype(np.float32)
    properties = {"spacing": list(grid_ct.GetSpacing())[::-1]}
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case_npy(image, None, properties, predictor.plans_manager,
                                                    predictor.configuration_manager, predictor.dataset_json)
    return torch.from_numpy(np.ascontiguousarray(data)).float(), properties


def run_network(predictor, data, compiled: Sequence = ()) -> list:
    """Each fold's sliding-window logits on preprocessed data: the only place a network runs.

    nnU-Net's sliding window runs either way; with ``compiled`` its ``network(patch)`` calls go to
    each fold's OpenVINO network instead of the torch one. The time spent here is added to
    :data:`renal_nnunet.inference.backends.NETWORK_CLOCK`.

    Args:
        predictor: nnU-Net's predictor with the folds' weights loaded (:func:`_predictor`), or
            without them when ``compiled`` is given (:func:`_openvino_stage`).
        data: preprocessed float tensor (channels, z, y, x).
        compiled: one OpenVINO network per fold, in the predictor's fold order (the openvino
            backend); empty runs the predictor's torch network.

    Returns:
        One logits tensor (C, z, y, x) per fold, in the predictor's fold order.
    """
    all_parameters, torch_network = predictor.list_of_parameters, predictor.network
    logits = []
    try:
        with NETWORK_CLOCK.timing():
            if compiled:
                for fold_network in compiled:
                    predictor.network = fold_network
                    logits.append(predictor.predict_sliding_window_return_logits(data).to("cpu"))
            else:
                for parameters in all_parameters:
                    predictor.list_of_parameters = [parameters]
                    logits.append(predictor.predict_logits_from_preprocessed_data(data))
    finally:
        predictor.list_of_parameters, predictor.network = all_parameters, torch_network
    return logits


def _grid_probabilities(predictor, logits, properties) -> np.ndarray:
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    _, probabilities = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, properties,
        return_probabilities=True)
    return np.asarray(probabilities, dtype=np.float32)


def _to_source(grid_probabilities: np.ndarray, sidecar, crop_only: bool = False) -> np.ndarray:
    """Grid class probabilities onto the source voxels (or the crop box's); background 1 outside the box.

    The foreground channels are resampled linearly and background is 1 minus their sum, as in
    :func:`labels_from_foreground`: linear interpolation keeps the sum of the channels, so
    resampling background too would cost a full resample for the same values (up to rounding).
    """
    foreground = resample_from_grid(grid_probabilities[1:], sidecar, "linear", 0.0, crop_only)
    background = np.clip(1 - foreground.sum(axis=0), 0, None)
    return np.concatenate([background[None], foreground]).astype(np.float32, copy=False)


SLAB_VOXELS = 2**24
"""Source voxels mapped back from the grid at a time (64 MB per float32 channel): a 700-slice CT's
labels never need a full-size float array per channel."""


LABEL_MARGIN = 1e-3
"""Rounding margin of :func:`_labelled_region` on the grid's foreground sum (probabilities in [0, 1])."""


def _labelled_region(grid_probabilities: np.ndarray, sidecar) -> tuple[tuple, tuple] | None:
    """The source voxels (ITK x, y, z start and size, inside the crop box) outside which every
    label of :func:`_to_source_labels` is background; None when there is no foreground at all.

    A class beats background (1 minus the foreground sum) only where the interpolated foreground
    sum exceeds 1/2, and linear interpolation mixes the 8 grid voxels around a point: so outside
    the grid voxels whose foreground sum exceeds 1/2 (less a rounding margin), grown by one grid
    voxel, nothing is labelled. The kidneys are a few percent of a whole CT.
    """
    near = grid_probabilities[1:].sum(axis=0) > 0.5 - LABEL_MARGIN
    if not near.any():
        return None
    box = nonzero_box(near)
    low = [axis.start - 1 for axis in reversed(box)]  # ITK (x, y, z) continuous grid indices
    high = [axis.stop for axis in reversed(box)]
    grid, source = grid_image_physical(sidecar), sidecar.reference_image()
    corners = np.array([source.TransformPhysicalPointToContinuousIndex(
        grid.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner]))
        for corner in itertools.product(*zip(low, high))])
    crop_start = np.asarray(sidecar.crop_start)
    crop_stop = crop_start + np.asarray(sidecar.crop_size)
    start = np.clip(np.floor(corners.min(axis=0)).astype(int) - 1, crop_start, crop_stop)
    stop = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 2, crop_start, crop_stop)
    if (stop <= start).any():
        return None
    return tuple(int(v) for v in start), tuple(int(v) for v in stop - start)


def _to_source_labels(grid_probabilities: np.ndarray, sidecar) -> np.ndarray:
    """Labels of the grid class probabilities resampled linearly onto the source voxels
    (:func:`labels_from_foreground` of :func:`_to_source`'s foreground: the same labels), on
    :func:`_labelled_region` only and slab by slab of source slices: a 700-slice CT's labels never
    need a full-size float array, and the background far from the kidneys is not resampled."""
    labels = np.zeros(tuple(reversed(sidecar.size)), np.uint8)
    region = _labelled_region(grid_probabilities, sidecar)
    if region is None:
        return labels
    (x0, y0, z0), (nx, ny, nz) = region
    depth = max(1, SLAB_VOXELS // (nx * ny))
    for z in range(z0, z0 + nz, depth):
        slab = ((x0, y0, z), (nx, ny, min(depth, z0 + nz - z)))
        labels[box_slices(*slab)] = labels_from_foreground(
            resample_from_grid(grid_probabilities[1:], sidecar, "linear", region=slab))
    return labels


def predict_grid_probabilities(
    grid_ct: sitk.Image,
    model_dir: str | os.PathLike,
    folds: Sequence[int | str] = PAPER.folds,
    device: str = "cpu",
    per_fold: bool = False,
    backend: str = "auto",
) -> FoldProbabilities:
    """Class probabilities on a grid image, exactly as ``nnUNetv2_predict -f ...`` computes them.

    Args:
        grid_ct: a G^3 image made by ``prepare_grid_ct`` (or a converted dataset's image).
        model_dir: nnU-Net trained-model folder.
        folds: folds whose logits are averaged before the softmax.
        device: ``cpu``, ``cuda`` or ``mps``.
        per_fold: also compute each fold's own probabilities.
        backend: ``auto``, ``torch`` or ``openvino`` (:func:`renal_nnunet.inference.backends.resolve_backend`).

    Returns:
        float32 (C, G, G, G) probabilities (numpy z, y, x) of the ensemble (and of each fold).

    Raises:
        InputError: not a model folder, or a requested fold has no final checkpoint.
    """
    model_dir = Path(model_dir).resolve()
    folds = tuple(f if f == "all" else int(f) for f in folds)
    stamps = _checkpoint_stamps(model_dir, folds)
    if resolve_backend(backend, device) == "openvino":
        predictor, compiled = _openvino_stage(str(model_dir), folds, stamps)
    else:
        predictor, compiled = _predictor(str(model_dir), folds, device, stamps), ()
    data, properties = _preprocess(predictor, grid_ct)
    fold_logits = run_network(predictor, data, compiled)
    mean_logits = sum(fold_logits[1:], fold_logits[0]) / len(fold_logits)  # nnU-Net's fold ensemble
    ensemble = _grid_probabilities(predictor, mean_logits, properties)
    if not per_fold:
        return FoldProbabilities(ensemble)
    return FoldProbabilities(ensemble, tuple(_grid_probabilities(predictor, logits, properties)
                                             for logits in fold_logits))


def predict_stage_probabilities(
    ct: sitk.Image,
    model_dir: str | os.PathLike,
    folds: Sequence[int | str] = PAPER.folds,
    crop_start: Sequence[int] | None = None,
    crop_size: Sequence[int] | None = None,
    device: str = "cpu",
    per_fold: bool = False,
    crop_only: bool = False,
    backend: str = "auto",
) -> FoldProbabilities:
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
        per_fold: also return each fold's own probabilities (for the ensemble spread).
        crop_only: return the crop box's voxels only (C, z, y, x of ``crop_size``): a mass
            stage's box is a few percent of a 512x512 CT, so this saves most of the memory.
        backend: ``auto``, ``torch`` or ``openvino`` (the forward passes only).

    Returns:
        float32 (C, Z, Y, X) probabilities in ``ct``'s geometry (C = the model's classes, in its
        dataset.json label order; background 1 outside the box), resampled linearly from the
        grid, for the ensemble (and each fold with ``per_fold``).

    Raises:
        InputError: not a model folder, or a requested fold has no final checkpoint.
        ValueError: the crop box lies outside the CT.
    """
    from renal_nnunet.anatomy.grid import prepare_grid_ct

    grid_ct, sidecar = prepare_grid_ct(ct, model_grid_size(model_dir), crop_start, crop_size)
    log.debug("stage %s, box start %s size %s, folds %s", model_dir, sidecar.crop_start, sidecar.crop_size, folds)
    grid = predict_grid_probabilities(grid_ct, model_dir, folds, device, per_fold, backend)
    return FoldProbabilities(_to_source(grid.ensemble, sidecar, crop_only),
                             tuple(_to_source(fold, sidecar, crop_only) for fold in grid.per_fold))


def keep_higher_foreground(merged: np.ndarray, box_foreground: np.ndarray, box: tuple[slice, ...],
                           companions: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> None:
    """Merge one crop box's foreground probabilities into full-size ones, in place: the one rule
    for overlapping crop boxes (e.g. the two kidneys' boxes of the mass stage).

    In each voxel of ``box`` the box wins where its total foreground probability (1 - background)
    is strictly higher than the merged one so far, and its foreground channels replace the merged
    ones there; on a tie the earlier box keeps the voxel. Outside every box the foreground is 0.

    Args:
        merged: float32 (C-1, Z, Y, X) foreground channels on the CT's voxels (numpy order),
            zeros before the first box.
        box_foreground: float32 (C-1, z, y, x) the box's foreground channels (``crop_only``).
        box: the box as numpy slices (z, y, x) of ``merged``'s voxels.
        companions: ``(full_size, box_values)`` pairs of per-voxel values that follow the winning
            box (e.g. the fold spread of the mass probability).
    """
    box_total = box_foreground.sum(axis=0) if len(box_foreground) > 1 else box_foreground[0]
    merged_total = merged[(slice(None), *box)].sum(axis=0) if len(merged) > 1 else merged[0][box]
    higher = box_total > merged_total
    for channel, box_channel in zip(merged, box_foreground):
        channel[box] = np.where(higher, box_channel, channel[box])
    for full_size, box_values in companions:
        full_size[box] = np.where(higher, box_values, full_size[box])


def labels_from_foreground(foreground: np.ndarray) -> np.ndarray:
    """uint8 argmax labels of merged foreground channels (C-1, z, y, x), background taken as
    1 - their sum; ties go to the lower class, so a 2-class voxel is foreground iff p > 0.5.

    Channel by channel, so no (C, z, y, x) stack of a 512x512 CT is made.
    """
    if len(foreground) == 1:  # argmax(1 - p, p): in float32 1 - p is exact for p >= 0.5, so this is p > 0.5
        return (foreground[0] > 0.5).astype(np.uint8)
    best = foreground.sum(axis=0)
    np.subtract(1, best, out=best)
    labels = np.zeros(best.shape, np.uint8)
    for label, channel in enumerate(foreground, start=1):
        higher = channel > best
        labels[higher] = label
        np.maximum(best, channel, out=best)
    return labels


def crop_boxes_from_labels(labels: sitk.Image, margin_mm: float = PAPER.kidney_margin_mm) -> list[tuple[tuple, tuple]]:
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
    folds: Sequence[int | str] = PAPER.folds,
    crop_boxes: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None,
    device: str = "cpu",
    backend: str = "auto",
) -> sitk.Image:
    """Label map of one stage in ``ct``'s geometry: argmax of the ensemble probabilities.

    Args:
        ct: CT in HU.
        model_dir: nnU-Net trained-model folder.
        folds: folds to ensemble.
        crop_boxes: ``(start, size)`` boxes (ITK x, y, z) predicted separately and merged with
            :func:`keep_higher_foreground`; None predicts the whole CT.
        device: torch device name.
        backend: ``auto``, ``torch`` or ``openvino`` (the forward passes only).

    Returns:
        uint8 label image with exactly ``ct``'s size, spacing, origin and direction.
    """
    if crop_boxes is None:
        from renal_nnunet.anatomy.grid import prepare_grid_ct

        grid_ct, sidecar = prepare_grid_ct(ct, model_grid_size(model_dir))
        grid = predict_grid_probabilities(grid_ct, model_dir, folds, device, backend=backend)
        return image_like(_to_source_labels(grid.ensemble, sidecar), ct)
    if len(crop_boxes) == 0:
        raise ValueError("crop_boxes is empty: nothing to predict (is the kidney segmentation empty?)")
    foreground = None
    for start, size in crop_boxes:
        box_probabilities = predict_stage_probabilities(ct, model_dir, folds, start, size, device,
                                                        crop_only=True, backend=backend).ensemble
        if foreground is None:
            foreground = np.zeros((len(box_probabilities) - 1, *reversed(ct.GetSize())), np.float32)
        keep_higher_foreground(foreground, box_probabilities[1:], box_slices(start, size))
    return image_like(labels_from_foreground(foreground), ct)
