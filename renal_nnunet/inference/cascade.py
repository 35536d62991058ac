"""The cascade on one CT, in memory: kidneys -> per-kidney boxes -> masses -> lesion sides.

Every result is a SimpleITK image on the input CT's own grid (so it carries the CT's geometry);
boxes are :class:`~renal_nnunet.anatomy.box.Box`. Sides are decided in patient coordinates (ITK
LPS, +x = patient left), never from array indices. Each stage runs a
:class:`~renal_nnunet.inference.ensemble.FoldEnsemble` built once by the caller.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from typing import Sequence

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import ImageGeometry, image_like, physical_points_mm
from renal_nnunet.anatomy.labels import KIDNEY_SIDE_LABELS, KIDNEY_SIDE_NAMES
from renal_nnunet.anatomy.sides import MASS_SIDE_REACH_VOXELS, body_midline_mm, kidney_side_labels, mass_side
from renal_nnunet.inference.ensemble import FoldEnsemble
from renal_nnunet.inference.grid_to_ct import (
    keep_higher_foreground,
    label_boxes,
    labels_from_foreground,
    predict_boxes_with_spread,
    predict_stage_labels,
)

__all__ = ["KidneyResult", "MassResult", "segment_kidneys", "kidneys_from_labels", "kidney_boxes", "segment_masses",
           "masses_from_boxes", "keep_masses_on_kidneys", "lesion_sides", "MASS_KIDNEY_TOLERANCE_MM"]

log = logging.getLogger(__name__)


MIN_KIDNEY_COMPONENT_FRACTION = 0.2
"""Kidney components smaller than this fraction of the largest one on their side are dropped as
false positives (each kept component widens its side's crop box, so a stray blob would waste the
mass stage's grid). Compared per side: an atrophic kidney stays beside a kidney with a large tumour."""

MIN_KIDNEY_VOLUME_ML = 10.0
"""A side's largest kidney component smaller than this is dropped as a false positive: even a
severely atrophic adult kidney (~5 cm long) holds about 15-20 ml."""

MASS_KIDNEY_TOLERANCE_MM = 4.0
"""A mass component is a renal mass only if it touches a predicted kidney (overlaps it or is
26-adjacent to it) or comes within this gap of it, mm: about one voxel of the kidney stage's 128^3
grid on an adult abdomen (400-500 mm field), the precision of the kidney outline it is checked
against. A component farther away (the mass box reaches past the kidney) is not a renal mass."""

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
            (taken on the grid, resampled like the probability; NaN with a single fold), from the
            box whose probability won the voxel.
        boxes: crop box per side.
        region: the boxes' union, in the CT's voxels: full-size float maps of a 512x512 CT would
            cost more than the stage itself.
    """

    mask: sitk.Image
    probability: sitk.Image
    spread: sitk.Image
    boxes: dict[str, Box]
    region: Box

    def mean_over(self, lesion_zyx: np.ndarray) -> tuple[float, float]:
        """Mean mass probability and mean fold spread over a lesion's voxels (bool (z, y, x) on the
        CT's grid; all of it lies in ``region``, as every mass does)."""
        inside = lesion_zyx[self.region.slices]
        return (float(sitk.GetArrayViewFromImage(self.probability)[inside].mean()),
                float(sitk.GetArrayViewFromImage(self.spread)[inside].mean()))


def _kidney_pieces(sides: np.ndarray, voxel_ml: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """26-connected pieces of one side's label (a horseshoe kidney split at the midline gives one
    piece per side): piece ids (z, y, x), each piece's side value, and whether it is kept by
    :data:`MIN_KIDNEY_COMPONENT_FRACTION` (per side) and :data:`MIN_KIDNEY_VOLUME_ML`."""
    pieces = cc3d.connected_components(sides, connectivity=26)
    sizes = np.bincount(pieces.ravel())
    labelled = pieces > 0
    side_of_piece = np.zeros(len(sizes), np.uint8)
    side_of_piece[pieces[labelled]] = sides[labelled]
    keep = np.zeros(len(sizes), bool)
    for value in KIDNEY_SIDE_LABELS.values():
        on_side = side_of_piece == value
        on_side[0] = False
        if on_side.any():
            largest = sizes[on_side].max()
            if largest * voxel_ml >= MIN_KIDNEY_VOLUME_ML:
                keep |= on_side & (sizes >= MIN_KIDNEY_COMPONENT_FRACTION * largest)
    dropped = sizes[1:][~keep[1:]]
    if dropped.size:
        log.info("dropped %d small kidney component(s) of %s ml", dropped.size,
                 ", ".join(f"{n * voxel_ml:.1f}" for n in dropped))
    return pieces, side_of_piece, keep


def _side_disagreement(model_sides: np.ndarray, pieces: np.ndarray, side_of_piece: np.ndarray,
                       keep: np.ndarray, voxel_ml: float) -> str | None:
    """Message if the model's majority label in any kept piece is the other side, else None."""
    labelled = pieces > 0
    ids, model = pieces[labelled], model_sides[labelled]
    votes = {value: np.bincount(ids, weights=model == value, minlength=len(keep)) for value in KIDNEY_SIDE_LABELS.values()}
    right, left = KIDNEY_SIDE_LABELS["right"], KIDNEY_SIDE_LABELS["left"]
    wrong = keep & np.where(side_of_piece == right, votes[left] > votes[right], votes[right] > votes[left])
    if not wrong.any():
        return None
    sizes = np.bincount(ids, minlength=len(keep))
    return (f"the kidney model labelled {np.count_nonzero(wrong)} kidney component(s) "
            f"({sizes[wrong].sum() * voxel_ml:.0f} ml) with the other side; their sides were re-assigned from "
            "patient coordinates (check the image orientation)")


def _touches_border(mask: np.ndarray) -> bool:
    return any(np.take(mask, index, axis=axis).any() for axis in range(3) for index in (0, -1))


def segment_kidneys(ct: sitk.Image, ensemble: FoldEnsemble) -> KidneyResult:
    """Run the kidney stage's ensemble on the CT's body box and return right/left kidney labels on its
    grid (post-processed by :func:`kidneys_from_labels`)."""
    return kidneys_from_labels(predict_stage_labels(ct, ensemble), ct)


def kidneys_from_labels(labels: sitk.Image, ct: sitk.Image) -> KidneyResult:
    """Kidney labels from the kidney stage's argmax (0/1 right/2 left, on ``ct``'s grid).

    Each 26-connected kidney component takes its side from the anatomy (its position relative to
    the body midline, in LPS mm; :func:`~renal_nnunet.anatomy.sides.kidney_side_labels`, which also
    splits a horseshoe kidney at the midline), so a few voxels the model labels with the other side
    neither change a side nor widen the other side's crop box; a component whose majority label
    from the model is the other side is reported (usually a wrong image orientation). Then, per
    side, components below :data:`MIN_KIDNEY_COMPONENT_FRACTION` of that side's largest, and a
    side whose largest is under :data:`MIN_KIDNEY_VOLUME_ML`, are dropped. An empty prediction
    and a kidney touching the image border are reported in the messages.
    """
    all_sides = sitk.GetArrayFromImage(labels).astype(np.uint8)
    if not all_sides.any():
        return _no_kidney(all_sides, ct, "the kidney model predicted no kidney voxels")
    # Components, sides and votes on the kidneys' box: a long CT's full-size id arrays cost GBs.
    box = Box.of_nonzero(all_sides)
    model_sides = all_sides[box.slices]
    box_grid = _sub_grid(ct, box)
    anatomical = kidney_side_labels(image_like((model_sides > 0).astype(np.uint8), box_grid), body_midline_mm(ct))
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    pieces, side_of_piece, keep = _kidney_pieces(sitk.GetArrayFromImage(anatomical), voxel_ml)
    array = np.zeros(all_sides.shape, np.uint8)
    array[box.slices] = np.where(keep[pieces], side_of_piece[pieces], 0)
    if not array.any():
        return _no_kidney(array, ct, f"the kidney model predicted only components under {MIN_KIDNEY_VOLUME_ML:g} ml")
    disagreement = _side_disagreement(model_sides, pieces, side_of_piece, keep, voxel_ml)
    messages = [disagreement] if disagreement else []
    for side, value in KIDNEY_SIDE_LABELS.items():
        if _touches_border(array == value):
            messages.append(f"the {side} kidney touches the image border: it may be cut off and masses outside the "
                            "field of view are missed")
    present = [side for side, value in KIDNEY_SIDE_LABELS.items() if (array == value).any()]
    if len(present) == 1:
        messages.append(f"only one kidney found (the {present[0]} one)")
    for message in messages:  # returned to the caller, who names the CT (this stage does not know its file)
        log.debug(message)
    return KidneyResult(image_like(array, ct), tuple(messages))


def _no_kidney(empty: np.ndarray, ct: sitk.Image, why: str) -> KidneyResult:
    message = f"no kidney found: {why} (is this an abdominal CT?)"
    log.debug(message)  # returned to the caller, who names the CT
    return KidneyResult(image_like(empty, ct), (message,))


def kidney_boxes(kidneys: sitk.Image, margin_mm: float) -> dict[str, Box]:
    """Each kidney's bounding box grown by ``margin_mm`` (the paper's region of interest for the
    mass stage), by side; a missing kidney has no box."""
    boxes = label_boxes(kidneys, margin_mm)
    return {side: boxes[value] for side, value in KIDNEY_SIDE_LABELS.items() if value in boxes}


def segment_masses(ct: sitk.Image, boxes: dict[str, Box], ensemble: FoldEnsemble) -> MassResult:
    """Run the mass stage's ensemble on each kidney's box and paste back (boxes of :func:`kidney_boxes`).

    Each fold runs on both boxes in turn (one compilation per fold, not per box); the fold spread
    is taken on the grid (:func:`renal_nnunet.inference.grid_to_ct.predict_boxes_with_spread`).

    Overlapping boxes merge by :func:`renal_nnunet.inference.grid_to_ct.keep_higher_foreground` (the
    higher mass probability wins). Probabilities are held on the boxes' union only; masses are
    only searched inside the boxes (the paper's region of interest).

    Raises:
        ValueError: no boxes (no kidney).
    """
    if not boxes:
        raise ValueError("no kidney boxes: nothing to search for masses in")
    return masses_from_boxes(ct, boxes, predict_boxes_with_spread(ct, ensemble, list(boxes.values())))


def masses_from_boxes(ct: sitk.Image, boxes: dict[str, Box],
                      box_results: Sequence[tuple[np.ndarray, np.ndarray]]) -> MassResult:
    """The merging half of :func:`segment_masses`.

    Args:
        ct: the CT the boxes are boxes of.
        boxes: non-empty crop box per side.
        box_results: per box, in ``boxes``' order, its (C, z, y, x) ensemble probabilities and its
            (z, y, x) fold spread on its own voxels
            (:func:`~renal_nnunet.inference.grid_to_ct.probabilities_and_spread_to_source`).
    """
    region = functools.reduce(Box.union, boxes.values())
    probability = np.zeros((1, *region.shape_zyx), np.float32)
    spread = np.zeros(probability.shape[1:], np.float32)
    for (side, box), (box_result, box_spread) in zip(boxes.items(), box_results):
        box_probability = box_result[1:]
        keep_higher_foreground(probability, box_probability, box.relative_to(region), [(spread, box_spread)])
        log.info("%s kidney box start %s size %s: %d mass voxels", side, box.start, box.size,
                 int((box_probability > 0.5).sum()))
    mask = np.zeros(tuple(reversed(ct.GetSize())), np.uint8)
    mask[region.slices] = labels_from_foreground(probability)
    region_grid = _sub_grid(ct, region)
    return MassResult(image_like(mask, ct), image_like(probability[0], region_grid), image_like(spread, region_grid),
                      dict(boxes), region)


def keep_masses_on_kidneys(masses: MassResult, kidneys: sitk.Image,
                           tolerance_mm: float = MASS_KIDNEY_TOLERANCE_MM) -> tuple[MassResult, tuple[str, ...]]:
    """Remove from ``masses.mask`` every 26-connected component that does not touch a kidney of
    ``kidneys`` (1 right / 2 left, same grid) within ``tolerance_mm`` (see
    :data:`MASS_KIDNEY_TOLERANCE_MM`; a mass touching either kidney is kept).

    Returns:
        The masses with only renal components in ``mask`` (probability and spread unchanged), and
        a message per removed component for the user.
    """
    mask = sitk.GetArrayFromImage(masses.mask)
    components = cc3d.connected_components(mask > 0, connectivity=26)
    kidney = sitk.GetArrayViewFromImage(kidneys) > 0
    spacing_zyx_mm = np.asarray(kidneys.GetSpacing()[::-1], float)
    reach = np.ceil(tolerance_mm / spacing_zyx_mm).astype(int) + 1
    messages = []
    for component_id, bbox in enumerate(cc3d.statistics(components)["bounding_boxes"][1:], start=1):
        window = tuple(slice(max(b.start - r, 0), b.stop + r) for b, r in zip(bbox, reach))
        near = ndimage.binary_dilation(kidney[window], structure=np.ones((3, 3, 3), bool))
        component = components[window] == component_id
        if near.any() and ndimage.distance_transform_edt(~near, sampling=spacing_zyx_mm)[component].min() <= tolerance_mm:
            continue
        mask[window][component] = 0
        voxels = np.argwhere(component)
        centre = physical_points_mm(masses.mask, voxels.mean(axis=0) + [b.start for b in window])[0]
        messages.append(f"a {voxels.shape[0] * np.prod(spacing_zyx_mm) / 1000:.2f} ml mass component at LPS "
                        f"({', '.join(f'{c:.0f}' for c in centre)}) mm does not touch a kidney (gap over "
                        f"{tolerance_mm:g} mm): not kept as a renal mass")
    for message in messages:  # returned to the caller, who names the CT
        log.debug(message)
    return replace(masses, mask=image_like(mask, masses.mask)), tuple(messages)


def _sub_grid(ct: sitk.Image, box: Box) -> sitk.Image:
    """An empty image on a box of ``ct``'s grid."""
    return ImageGeometry.of(ct).box(box).reference_image()


def lesion_sides(components: sitk.Image, kidneys: sitk.Image, boxes: dict[str, Box]) -> dict[int, str]:
    """Side of each lesion of a component image: :func:`renal_nnunet.anatomy.sides.mass_side`
    against the kidney labels; a mass out of the kidneys' reach takes the box holding most of it."""
    component_array = sitk.GetArrayFromImage(components)
    kidney_array = sitk.GetArrayViewFromImage(kidneys)
    sides = {}
    for lesion_id, bbox in enumerate(cc3d.statistics(component_array)["bounding_boxes"][1:], start=1):
        window = tuple(slice(max(b.start - MASS_SIDE_REACH_VOXELS, 0), b.stop + MASS_SIDE_REACH_VOXELS) for b in bbox)
        value = mass_side(component_array[window] == lesion_id, kidney_array[window])
        if value is None:
            full = component_array == lesion_id
            inside = {side: int(np.count_nonzero(full[box.slices])) for side, box in boxes.items()}
            sides[lesion_id] = max(inside, key=inside.get)
        else:
            sides[lesion_id] = KIDNEY_SIDE_NAMES[value]
    return sides
