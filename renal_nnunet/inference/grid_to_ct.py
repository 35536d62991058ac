"""One stage on one CT: the grid prepared, the fold ensemble run, the probabilities mapped back.

The paper's U-Nets see the CT (here its body box) or a kidney's box resized to a G^3 grid. Here a CT in any
orientation and spacing is prepared exactly like the training data
(:func:`renal_nnunet.anatomy.grid.prepare_grid_ct`: paper window, resize to G^3), predicted by a
:class:`~renal_nnunet.inference.ensemble.FoldEnsemble`, and the grid probabilities are resampled
linearly back onto the CT's voxels with the grid sidecar
(:func:`renal_nnunet.anatomy.geometry.resample_from_grid`). Outside a crop box the background
probability is 1. Overlapping crop boxes merge by one rule, :func:`keep_higher_foreground`; labels
are made one way, :func:`labels_from_foreground` of the foreground channels (background taken as
1 minus their sum).

Arrays are numpy (z, y, x), channels first; boxes are :class:`~renal_nnunet.anatomy.box.Box`.
"""

from __future__ import annotations

import itertools
import logging
from typing import Callable, Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box, bounding_box_with_margin
from renal_nnunet.anatomy.geometry import GridSidecar, image_like, resample_from_grid
from renal_nnunet.anatomy.grid import prepare_grid_ct
from renal_nnunet.inference.ensemble import FoldEnsemble, FoldProbabilities

log = logging.getLogger(__name__)

__all__ = [
    "predict_stage_probabilities",
    "probabilities_to_source",
    "predict_stage_labels",
    "labels_of_boxes",
    "predict_boxes_with_spread",
    "probabilities_and_spread_to_source",
    "keep_higher_foreground",
    "labels_from_foreground",
    "probabilities_to_source_labels",
    "label_boxes",
    "SLAB_VOXELS",
]


def _to_source(grid_probabilities: np.ndarray, sidecar: GridSidecar, crop_only: bool = False) -> np.ndarray:
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


def _labelled_region(grid_probabilities: np.ndarray, sidecar: GridSidecar) -> Box | None:
    """The source voxels (inside the crop box) outside which every label of
    :func:`probabilities_to_source_labels` is background; None when there is no foreground at all.

    A class beats background (1 minus the foreground sum) only where the interpolated foreground
    sum exceeds 1/2, and linear interpolation mixes the 8 grid voxels around a point: so outside
    the grid voxels whose foreground sum exceeds 1/2 (less a rounding margin), grown by one grid
    voxel, nothing is labelled. The kidneys are a few percent of a whole CT.
    """
    near = Box.of_nonzero(grid_probabilities[1:].sum(axis=0) > 0.5 - LABEL_MARGIN)
    if near.is_empty:
        return None
    low, high = np.subtract(near.start, 1), near.stop  # grid (x, y, z) continuous indices
    corners = np.array(list(itertools.product(*zip(low, high))), float)
    source_indices = sidecar.source.mm_to_index(sidecar.grid_geometry().index_to_mm(corners))
    start = np.clip(np.floor(source_indices.min(axis=0)).astype(int) - 1, sidecar.box.start, sidecar.box.stop)
    stop = np.clip(np.ceil(source_indices.max(axis=0)).astype(int) + 2, sidecar.box.start, sidecar.box.stop)
    return None if (stop <= start).any() else Box(start, stop - start)


def probabilities_to_source_labels(grid_probabilities: np.ndarray, sidecar: GridSidecar) -> np.ndarray:
    """Labels of the grid class probabilities resampled linearly onto the source voxels
    (:func:`labels_from_foreground` of :func:`_to_source`'s foreground: the same labels), on
    :func:`_labelled_region` only and slab by slab of source slices: a 700-slice CT's labels never
    need a full-size float array, and the background far from the kidneys is not resampled."""
    labels = np.zeros(sidecar.source.shape_zyx, np.uint8)
    region = _labelled_region(grid_probabilities, sidecar)
    if region is None:
        return labels
    (x0, y0, z0), (nx, ny, nz) = region.start, region.size
    depth = max(1, SLAB_VOXELS // (nx * ny))
    for z in range(z0, z0 + nz, depth):
        slab = Box((x0, y0, z), (nx, ny, min(depth, z0 + nz - z)))
        labels[slab.slices] = labels_from_foreground(
            resample_from_grid(grid_probabilities[1:], sidecar, "linear", region=slab))
    return labels


def predict_stage_probabilities(ct: sitk.Image, ensemble: FoldEnsemble, box: Box | None = None,
                                per_fold: bool = False, crop_only: bool = False) -> FoldProbabilities:
    """Class probabilities of one trained stage on ``ct``'s own voxels.

    Args:
        ct: CT in HU, any orientation and spacing (the network sees it as the module docstring of
            :mod:`renal_nnunet.anatomy.geometry` states).
        ensemble: the stage's fold ensemble; the grid size is read from its plans.
        box: the box of ``ct`` to predict (e.g. a kidney's); default the CT's
            :func:`~renal_nnunet.anatomy.grid.body_box`, as the converter writes whole-CT grids.
        per_fold: also return each fold's own probabilities (for the ensemble spread).
        crop_only: return the box's voxels only (C, z, y, x of the box): a mass stage's box is a
            few percent of a 512x512 CT, so this saves most of the memory.

    Returns:
        float32 (C, Z, Y, X) probabilities in ``ct``'s geometry (C = the model's classes, in its
        dataset.json label order; background 1 outside the box), resampled linearly from the
        grid, for the ensemble (and each fold with ``per_fold``).

    Raises:
        ValueError: the box lies outside the CT.
    """
    grid_ct, sidecar = prepare_grid_ct(ct, ensemble.grid, box)
    log.debug("stage %s, box %s", ensemble.model_dir, sidecar.box)
    return probabilities_to_source(ensemble.grid_probabilities(grid_ct, per_fold), sidecar, crop_only)


def probabilities_to_source(grid: FoldProbabilities, sidecar: GridSidecar,
                            crop_only: bool = False) -> FoldProbabilities:
    """Grid class probabilities (ensemble and folds) onto the source voxels of ``sidecar``: the
    mapping half of :func:`predict_stage_probabilities` (the sidecar of
    :func:`~renal_nnunet.anatomy.grid.prepare_grid_ct`), with the same ``crop_only``."""
    return FoldProbabilities(_to_source(grid.ensemble, sidecar, crop_only),
                             tuple(_to_source(fold, sidecar, crop_only) for fold in grid.per_fold))


def predict_boxes_with_spread(ct: sitk.Image, ensemble: FoldEnsemble,
                              boxes: Sequence[Box]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Class probabilities of one stage on each box of ``ct`` with the spread of its folds
    (:func:`probabilities_and_spread_to_source`), each fold run on all the boxes in turn
    (:meth:`FoldEnsemble.grid_probabilities_of_each`: one compilation per fold, not per box).

    Returns:
        Per box, float32 (C, z, y, x) ensemble probabilities and float32 (z, y, x) spread.
    """
    prepared = [prepare_grid_ct(ct, ensemble.grid, box) for box in boxes]
    grids = ensemble.grid_probabilities_of_each([grid_ct for grid_ct, _ in prepared], per_fold=True)
    results = []
    for index, (_, sidecar) in enumerate(prepared):
        grid, grids[index] = grids[index], None  # each box's grid probabilities let go once mapped back
        results.append(probabilities_and_spread_to_source(grid, sidecar))
    return results


def probabilities_and_spread_to_source(grid: FoldProbabilities, sidecar: GridSidecar) -> tuple[np.ndarray, np.ndarray]:
    """A box's ensemble probabilities on its own voxels (``crop_only``) and the spread of its folds.

    The spread is the standard deviation across folds of the first foreground class's probability
    (the mass stage's mass), taken on the grid and resampled onto the box once: mapping every
    fold's probabilities back at the CT's resolution cost one full-resolution resampling per fold
    for a figure that is only averaged over each lesion. NaN with a single fold (no spread to measure).
    """
    probabilities = _to_source(grid.ensemble, sidecar, crop_only=True)
    if len(grid.per_fold) < 2:
        return probabilities, np.full(probabilities.shape[1:], np.nan, np.float32)
    spread = np.std(np.stack([fold[1] for fold in grid.per_fold]), axis=0)
    return probabilities, resample_from_grid(spread[None], sidecar, "linear", 0.0, crop_only=True)[0].astype(np.float32)


def keep_higher_foreground(merged: np.ndarray, box_foreground: np.ndarray, box: Box,
                           companions: Sequence[tuple[np.ndarray, np.ndarray]] = ()) -> None:
    """Merge one crop box's foreground probabilities into larger ones, in place: the one rule
    for overlapping crop boxes (e.g. the two kidneys' boxes of the mass stage).

    In each voxel of ``box`` the box wins where its total foreground probability (1 - background)
    is strictly higher than the merged one so far, and its foreground channels replace the merged
    ones there; on a tie the earlier box keeps the voxel. Outside every box the foreground is 0.

    Args:
        merged: float32 (C-1, Z, Y, X) foreground channels (numpy order), zeros before the first box.
        box_foreground: float32 (C-1, z, y, x) the box's foreground channels (``crop_only``).
        box: the box in ``merged``'s voxels.
        companions: ``(merged_values, box_values)`` pairs of per-voxel values that follow the
            winning box (e.g. the fold spread of the mass probability).
    """
    where = box.slices
    box_total = box_foreground.sum(axis=0) if len(box_foreground) > 1 else box_foreground[0]
    merged_total = merged[(slice(None), *where)].sum(axis=0) if len(merged) > 1 else merged[0][where]
    higher = box_total > merged_total
    for channel, box_channel in zip(merged, box_foreground):
        channel[where] = np.where(higher, box_channel, channel[where])
    for merged_values, box_values in companions:
        merged_values[where] = np.where(higher, box_values, merged_values[where])


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


def label_boxes(labels: sitk.Image, margin_mm: float) -> dict[int, Box]:
    """Each nonzero label's bounding box grown by ``margin_mm`` and clipped to the image, by
    increasing label value: the mass stage's region of interest around each kidney, made as the
    converter makes the mass crops."""
    array = sitk.GetArrayViewFromImage(labels)
    return {int(value): bounding_box_with_margin(array == value, labels.GetSpacing(), margin_mm)
            for value in np.unique(array) if value != 0}


def predict_stage_labels(ct: sitk.Image, ensemble: FoldEnsemble, boxes: Sequence[Box] | None = None) -> sitk.Image:
    """Label map of one stage in ``ct``'s geometry: argmax of the ensemble probabilities.

    Args:
        ct: CT in HU.
        ensemble: the stage's fold ensemble.
        boxes: boxes predicted separately and merged with :func:`keep_higher_foreground` (e.g.
            :func:`label_boxes` of the kidneys); None predicts the CT's
            :func:`~renal_nnunet.anatomy.grid.body_box` (a whole-CT stage).

    Returns:
        uint8 label image with exactly ``ct``'s size, spacing, origin and direction.

    Raises:
        ValueError: ``boxes`` is empty.
    """
    if boxes is None:
        grid_ct, sidecar = prepare_grid_ct(ct, ensemble.grid)
        return image_like(probabilities_to_source_labels(ensemble.grid_probabilities(grid_ct).ensemble, sidecar), ct)
    if len(boxes) == 0:
        raise ValueError("no boxes: nothing to predict (is the kidney segmentation empty?)")
    return labels_of_boxes(ct, boxes,
                           lambda box: predict_stage_probabilities(ct, ensemble, box, crop_only=True).ensemble)


def labels_of_boxes(ct: sitk.Image, boxes: Sequence[Box], probabilities_of: Callable[[Box], np.ndarray]) -> sitk.Image:
    """Label map on ``ct``'s grid of boxes predicted separately, merged by :func:`keep_higher_foreground`
    in the order given: the merging half of :func:`predict_stage_labels`.

    Args:
        ct: the CT the boxes are boxes of.
        boxes: non-empty sequence of boxes of ``ct``.
        probabilities_of: a box's (C, z, y, x) class probabilities on its own voxels (``crop_only``),
            asked for one box at a time.
    """
    foreground = None
    for box in boxes:
        box_probabilities = probabilities_of(box)
        if foreground is None:
            foreground = np.zeros((len(box_probabilities) - 1, *reversed(ct.GetSize())), np.float32)
        keep_higher_foreground(foreground, box_probabilities[1:], box)
    return image_like(labels_from_foreground(foreground), ct)
