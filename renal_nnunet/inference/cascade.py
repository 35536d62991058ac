"""The cascade on one CT, in memory: kidneys -> per-kidney crops -> masses -> lesion components.

Arrays are numpy (z, y, x) on the input CT's own grid; boxes are ITK (x, y, z). Sides are decided
in patient coordinates (ITK LPS, +x = patient left), never from array indices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.geometry import bounding_box_with_margin
from renal_nnunet.anatomy.labels import KIDNEY_STAGE_LABELS
from renal_nnunet.anatomy.sides import body_midline_mm, kidney_side_labels

__all__ = ["KidneyResult", "MassResult", "segment_kidneys", "kidneys_from_labels", "segment_masses",
           "side_of_lesion", "SIDE_VALUES"]

log = logging.getLogger(__name__)

SIDE_VALUES: dict[str, int] = {"right": KIDNEY_STAGE_LABELS["kidney_right"], "left": KIDNEY_STAGE_LABELS["kidney_left"]}

MIN_KIDNEY_COMPONENT_FRACTION = 0.2
"""Kidney components smaller than this fraction of the largest one are dropped as false positives
(each kept component drives a crop box, so a stray blob would waste the mass stage's grid)."""

MIN_SIDE_AGREEMENT = 0.95
"""If the model's right/left labels agree with the anatomical sides on fewer kidney voxels than
this, the anatomical sides (position relative to the body midline) replace them."""


@dataclass(frozen=True)
class KidneyResult:
    """Kidney stage output on the CT grid.

    Attributes:
        labels: uint8 (z, y, x): 0 background, 1 right kidney, 2 left kidney.
        messages: warnings for the user (empty kidney, side correction, border contact).
    """

    labels: np.ndarray
    messages: tuple[str, ...]


@dataclass(frozen=True)
class MassResult:
    """Mass stage output on the CT grid.

    Attributes:
        mask: bool (z, y, x), the ensemble's mass prediction inside the kidney crops.
        probability: float32 (z, y, x), ensemble-mean mass probability (0 outside the crops).
        spread: float32 (z, y, x), standard deviation of the mass probability across folds (NaN with
            a single fold).
        boxes: crop box per side, ``(start, size)`` in ITK (x, y, z) voxels.
    """

    mask: np.ndarray
    probability: np.ndarray
    spread: np.ndarray
    boxes: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]]


def _keep_large_components(mask: np.ndarray) -> np.ndarray:
    components = cc3d.connected_components(mask, connectivity=26)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    keep = sizes >= MIN_KIDNEY_COMPONENT_FRACTION * sizes.max()
    keep[0] = False
    return keep[components]


def _touches_border(mask: np.ndarray) -> bool:
    return any(np.take(mask, index, axis=axis).any() for axis in range(3) for index in (0, -1))


def segment_kidneys(
    ct: sitk.Image, model_dir: Path, folds: Sequence[int], device: str = "cpu"
) -> KidneyResult:
    """Run the kidney model on the whole CT and return right/left kidney labels on its grid
    (post-processed by :func:`kidneys_from_labels`)."""
    from renal_nnunet.inference.stage import predict_stage_labels

    labels = predict_stage_labels(ct, model_dir, folds=tuple(folds), device=device)
    return kidneys_from_labels(sitk.GetArrayFromImage(labels), ct)


def kidneys_from_labels(labels: np.ndarray, ct: sitk.Image) -> KidneyResult:
    """Kidney labels from the kidney stage's argmax (0/1 right/2 left, (z, y, x) on ``ct``'s grid).

    Small stray components are dropped; the model's sides are checked against the anatomical
    sides (each kidney's position relative to the body midline, in LPS mm) and replaced by them if
    they disagree; an empty prediction and a kidney touching the image border are reported in the
    messages.
    """
    labels = np.array(labels, dtype=np.uint8)
    kidney = labels > 0
    if not kidney.any():
        message = "no kidney found: the kidney model predicted no kidney voxels (is this an abdominal CT?)"
        log.warning(message)
        return KidneyResult(labels, (message,))
    kidney = _keep_large_components(kidney)
    labels[~kidney] = 0
    messages = []
    mask_image = sitk.GetImageFromArray(kidney.astype(np.uint8))
    mask_image.CopyInformation(ct)
    anatomical = sitk.GetArrayFromImage(kidney_side_labels(mask_image, body_midline_mm(ct)))
    agreement = float(np.mean(labels[kidney] == anatomical[kidney]))
    if agreement < MIN_SIDE_AGREEMENT:
        messages.append(f"the kidney model's right/left labels agree with the anatomy on only {agreement:.0%} of "
                        "kidney voxels; sides were re-assigned from patient coordinates (check the image orientation)")
        labels = anatomical
    for side, value in SIDE_VALUES.items():
        if _touches_border(labels == value):
            messages.append(f"the {side} kidney touches the image border: it may be cut off and masses outside the "
                            "field of view are missed")
    if len(np.unique(labels[kidney])) == 1:
        present = "right" if labels[kidney][0] == SIDE_VALUES["right"] else "left"
        messages.append(f"only one kidney found (the {present} one)")
    for message in messages:
        log.warning(message)
    return KidneyResult(labels, tuple(messages))


def segment_masses(
    ct: sitk.Image, kidney_labels: np.ndarray, model_dir: Path, folds: Sequence[int], margin_mm: float,
    device: str = "cpu",
) -> MassResult:
    """Run the mass-model ensemble on each kidney's box (grown by ``margin_mm``) and paste back.

    Where the two boxes overlap, the higher mass probability wins. Masses are only searched inside
    the boxes (the paper's region of interest).
    """
    from renal_nnunet.inference.stage import predict_stage_probabilities

    shape = kidney_labels.shape
    probability = np.zeros(shape, np.float32)
    spread = np.zeros(shape, np.float32)
    boxes = {}
    for side, value in SIDE_VALUES.items():
        side_mask = kidney_labels == value
        if not side_mask.any():
            continue
        start, size = bounding_box_with_margin(side_mask, ct.GetSpacing(), margin_mm)
        boxes[side] = (start, size)
        mean, per_fold = predict_stage_probabilities(ct, model_dir, folds=tuple(folds), crop_start=start,
                                                     crop_size=size, device=device, return_per_fold=True,
                                                     crop_only=True)
        box = tuple(slice(s, s + n) for s, n in zip(reversed(start), reversed(size)))
        box_probability = mean[1]
        box_spread = (np.std(np.stack([fold[1] for fold in per_fold]), axis=0) if len(per_fold) > 1
                      else np.full(box_probability.shape, np.nan, np.float32))  # one fold: no spread to measure
        del mean, per_fold
        higher = box_probability > probability[box]
        probability[box] = np.where(higher, box_probability, probability[box])
        spread[box] = np.where(higher, box_spread, spread[box])
        log.info("%s kidney box start %s size %s: %d mass voxels", side, start, size, int((box_probability > 0.5).sum()))
    return MassResult(probability > 0.5, probability, spread, boxes)


def side_of_lesion(lesion_mask: np.ndarray, kidney_labels: np.ndarray, boxes: dict[str, tuple]) -> str:
    """Side of the kidney a mass lies in: the kidney label most common under the mass grown by two
    voxels (an exophytic mass still touches its kidney); else the box holding most of it."""
    low = np.maximum(np.argwhere(lesion_mask).min(axis=0) - 2, 0)
    high = np.argwhere(lesion_mask).max(axis=0) + 3
    window = tuple(slice(a, b) for a, b in zip(low, high))
    grown = ndimage.binary_dilation(lesion_mask[window], iterations=2)
    counts = {side: int(np.count_nonzero(kidney_labels[window][grown] == value)) for side, value in SIDE_VALUES.items()}
    if max(counts.values()) > 0:
        return max(counts, key=counts.get)
    inside = {}
    for side, (start, size) in boxes.items():
        box = tuple(slice(s, s + n) for s, n in zip(reversed(start), reversed(size)))
        inside[side] = int(np.count_nonzero(lesion_mask[box]))
    return max(inside, key=inside.get)
