"""The cascade on one CT, in memory: kidneys -> per-kidney boxes -> masses -> lesion sides.

Every result is a SimpleITK image on the input CT's own grid (so it carries the CT's geometry);
boxes are ITK (x, y, z) voxel ``(start, size)``. Sides are decided in patient coordinates (ITK LPS,
+x = patient left), never from array indices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import cc3d
import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import ImageGeometry, bounding_box_with_margin, box_slices, image_like
from renal_nnunet.anatomy.labels import KIDNEY_STAGE_LABELS
from renal_nnunet.anatomy.sides import MASS_SIDE_REACH_VOXELS, body_midline_mm, kidney_side_labels, mass_side

__all__ = ["KidneyResult", "MassResult", "segment_kidneys", "kidneys_from_labels", "kidney_boxes", "segment_masses",
           "lesion_sides", "SIDE_VALUES"]

log = logging.getLogger(__name__)

SIDE_VALUES: dict[str, int] = {"right": KIDNEY_STAGE_LABELS["kidney_right"], "left": KIDNEY_STAGE_LABELS["kidney_left"]}

MIN_KIDNEY_COMPONENT_FRACTION = 0.2
"""Kidney components smaller than this fraction of the largest one are dropped as false positives
(each kept component drives a crop box, so a stray blob would waste the mass stage's grid)."""

MIN_SIDE_AGREEMENT = 0.95
"""If the model's right/left labels agree with the anatomical sides on fewer kidney voxels than
this, the anatomical sides (position relative to the body midline) replace them."""

Box = tuple[tuple[int, int, int], tuple[int, int, int]]


@dataclass(frozen=True)
class KidneyResult:
    """Kidney stage output.

    Attributes:
        labels: uint8 image on the CT's grid: 0 background, 1 right kidney, 2 left kidney.
        messages: warnings for the user (empty kidney, side correction, border contact).
    """

    labels: sitk.Image
    messages: tuple[str, ...]

    @property
    def found(self) -> bool:
        """Whether any kidney voxel was kept."""
        return bool(sitk.GetArrayViewFromImage(self.labels).any())


@dataclass(frozen=True)
class MassResult:
    """Mass stage output.

    Attributes:
        mask: uint8 image on the CT's grid, 1 where the ensemble predicts a mass (only inside the
            kidney boxes).
        probability: float32 image on ``region`` (a sub-grid of the CT: same spacing and direction),
            the ensemble's mass probability (0 outside the boxes).
        spread: float32 image on ``region``, standard deviation of the mass probability across folds
            (NaN with a single fold), from the box whose probability won the voxel.
        boxes: crop box per side, ``(start, size)`` in ITK (x, y, z) voxels.
        region: the boxes' union bounding box, ``(start, size)`` in ITK (x, y, z) voxels of the CT:
            full-size float maps of a 512x512 CT would cost more than the stage itself.
    """

    mask: sitk.Image
    probability: sitk.Image
    spread: sitk.Image
    boxes: dict[str, Box]
    region: Box

    def mean_over(self, lesion_zyx: np.ndarray) -> tuple[float, float]:
        """Mean mass probability and mean fold spread over a lesion's voxels (bool (z, y, x) on the
        CT's grid; all of it lies in ``region``, as every mass does)."""
        inside = lesion_zyx[box_slices(*self.region)]
        return (float(sitk.GetArrayViewFromImage(self.probability)[inside].mean()),
                float(sitk.GetArrayViewFromImage(self.spread)[inside].mean()))


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
    ct: sitk.Image, model_dir: Path, folds: Sequence[int], device: str = "cpu", backend: str = "auto",
) -> KidneyResult:
    """Run the kidney model on the whole CT and return right/left kidney labels on its grid
    (post-processed by :func:`kidneys_from_labels`)."""
    from renal_nnunet.inference.stage import predict_stage_labels

    return kidneys_from_labels(predict_stage_labels(ct, model_dir, folds=tuple(folds), device=device, backend=backend),
                               ct)


def kidneys_from_labels(labels: sitk.Image, ct: sitk.Image) -> KidneyResult:
    """Kidney labels from the kidney stage's argmax (0/1 right/2 left, on ``ct``'s grid).

    Small stray components are dropped; the model's sides are checked against the anatomical
    sides (each kidney's position relative to the body midline, in LPS mm) and replaced by them if
    they disagree; an empty prediction and a kidney touching the image border are reported in the
    messages.
    """
    array = sitk.GetArrayFromImage(labels).astype(np.uint8)
    kidney = array > 0
    if not kidney.any():
        message = "no kidney found: the kidney model predicted no kidney voxels (is this an abdominal CT?)"
        log.warning(message)
        return KidneyResult(image_like(array, ct), (message,))
    kidney = _keep_large_components(kidney)
    array[~kidney] = 0
    messages = []
    anatomical = kidney_side_labels(image_like(kidney.astype(np.uint8), ct), body_midline_mm(ct))
    anatomical_array = sitk.GetArrayViewFromImage(anatomical)
    agreement = float(np.mean(array[kidney] == anatomical_array[kidney]))
    if agreement < MIN_SIDE_AGREEMENT:
        messages.append(f"the kidney model's right/left labels agree with the anatomy on only {agreement:.0%} of "
                        "kidney voxels; sides were re-assigned from patient coordinates (check the image orientation)")
        array = sitk.GetArrayFromImage(anatomical)
    for side, value in SIDE_VALUES.items():
        if _touches_border(array == value):
            messages.append(f"the {side} kidney touches the image border: it may be cut off and masses outside the "
                            "field of view are missed")
    if len(np.unique(array[kidney])) == 1:
        present = "right" if array[kidney][0] == SIDE_VALUES["right"] else "left"
        messages.append(f"only one kidney found (the {present} one)")
    for message in messages:
        log.warning(message)
    return KidneyResult(image_like(array, ct), tuple(messages))


def kidney_boxes(kidneys: sitk.Image, margin_mm: float) -> dict[str, Box]:
    """Each kidney's bounding box grown by ``margin_mm`` (the paper's region of interest for the
    mass stage), by side; a missing kidney has no box."""
    array = sitk.GetArrayViewFromImage(kidneys)
    return {side: bounding_box_with_margin(array == value, kidneys.GetSpacing(), margin_mm)
            for side, value in SIDE_VALUES.items() if (array == value).any()}


def segment_masses(
    ct: sitk.Image, boxes: dict[str, Box], model_dir: Path, folds: Sequence[int], device: str = "cpu",
    backend: str = "auto",
) -> MassResult:
    """Run the mass-model ensemble on each kidney's box and paste back (boxes of :func:`kidney_boxes`).

    Overlapping boxes merge by :func:`renal_nnunet.inference.stage.keep_higher_foreground` (the
    higher mass probability wins). Probabilities are held on the boxes' union only; masses are
    only searched inside the boxes (the paper's region of interest).

    Raises:
        ValueError: no boxes (no kidney).
    """
    from renal_nnunet.inference.stage import keep_higher_foreground, labels_from_foreground, predict_stage_probabilities

    if not boxes:
        raise ValueError("no kidney boxes: nothing to search for masses in")
    region_start = np.min([start for start, _ in boxes.values()], axis=0)
    region_stop = np.max([np.add(start, size) for start, size in boxes.values()], axis=0)
    region = (tuple(int(v) for v in region_start), tuple(int(v) for v in region_stop - region_start))
    probability = np.zeros((1, *reversed(region[1])), np.float32)
    spread = np.zeros(probability.shape[1:], np.float32)
    for side, (start, size) in boxes.items():
        box_result = predict_stage_probabilities(ct, model_dir, folds=tuple(folds), crop_start=start, crop_size=size,
                                                 device=device, per_fold=True, crop_only=True, backend=backend)
        box_probability = box_result.ensemble[1:]
        box_spread = (np.std(np.stack([fold[1] for fold in box_result.per_fold]), axis=0)
                      if len(box_result.per_fold) > 1
                      else np.full(box_probability.shape[1:], np.nan, np.float32))  # one fold: no spread to measure
        del box_result
        keep_higher_foreground(probability, box_probability, box_slices(np.subtract(start, region_start), size),
                               [(spread, box_spread)])
        log.info("%s kidney box start %s size %s: %d mass voxels", side, start, size,
                 int((box_probability > 0.5).sum()))
    mask = np.zeros(tuple(reversed(ct.GetSize())), np.uint8)
    mask[box_slices(*region)] = labels_from_foreground(probability)
    region_grid = _sub_grid(ct, *region)
    return MassResult(image_like(mask, ct), image_like(probability[0], region_grid), image_like(spread, region_grid),
                      dict(boxes), region)


def _sub_grid(ct: sitk.Image, start: Sequence[int], size: Sequence[int]) -> sitk.Image:
    """An empty image on a box of ``ct``'s grid (ITK (x, y, z) voxel start and size)."""
    geometry = ImageGeometry.of(ct)
    origin = ct.TransformIndexToPhysicalPoint([int(s) for s in start])
    return replace(geometry, size=tuple(int(s) for s in size), origin_mm=tuple(origin)).reference_image()


def lesion_sides(components: sitk.Image, kidneys: sitk.Image, boxes: dict[str, Box]) -> dict[int, str]:
    """Side of each lesion of a component image: :func:`renal_nnunet.anatomy.sides.mass_side`
    against the kidney labels; a mass out of the kidneys' reach takes the box holding most of it."""
    component_array = sitk.GetArrayFromImage(components)
    kidney_array = sitk.GetArrayViewFromImage(kidneys)
    names = {value: side for side, value in SIDE_VALUES.items()}
    sides = {}
    for lesion_id, bbox in enumerate(cc3d.statistics(component_array)["bounding_boxes"][1:], start=1):
        window = tuple(slice(max(b.start - MASS_SIDE_REACH_VOXELS, 0), b.stop + MASS_SIDE_REACH_VOXELS) for b in bbox)
        value = mass_side(component_array[window] == lesion_id, kidney_array[window])
        if value is None:
            full = component_array == lesion_id
            inside = {side: int(np.count_nonzero(full[box_slices(*box)])) for side, box in boxes.items()}
            sides[lesion_id] = max(inside, key=inside.get)
        else:
            sides[lesion_id] = names[value]
    return sides
