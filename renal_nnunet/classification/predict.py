"""Classifying segmented lesions with the fold ensemble, and Grad-CAM maps in the CT's geometry.

Each lesion is cut out exactly like a training crop
(:func:`renal_nnunet.anatomy.crops.lesion_crop`: windowed, masked by its outline, box
resized to the checkpoint's grid), every fold model gives softmax probabilities, and the ensemble
is their mean. The Grad-CAM of the ensemble's class is the mean of the fold models' maps, mapped
from the crop's grid back onto the CT's voxels of the lesion's box through the crop's sidecar.
The forward passes run on the ensemble's runtime
(:class:`~renal_nnunet.classification.ensemble.ClassifierEnsemble`: torch, or each checkpoint
compiled by OpenVINO, Grad-CAM included).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
import torch

from renal_nnunet.anatomy.crops import lesion_crop
from renal_nnunet.anatomy.geometry import image_like, paste_on_grid, resample_from_grid
from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.classification.data import crop_to_input
from renal_nnunet.classification.ensemble import ClassifierEnsemble, ClassifierFold
from renal_nnunet.io import InputError, check_same_geometry

__all__ = ["LesionClassification", "classify_lesions", "classify_lesion_files", "lesions_touching_border", "lesion_ids_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LesionClassification:
    """The ensemble's verdict on one lesion.

    Attributes:
        lesion_id: the lesion's value in the lesion mask.
        probabilities: mean softmax over the fold models, by class, in ``LESION_CLASSES`` order.
        predicted_class: the most probable class.
        fold_predictions: each fold model's class, in checkpoint order.
        fold_probabilities: (n_folds, n_classes) softmax of each fold model.
        cam: Grad-CAM of ``predicted_class`` in [0, 1], float32 on the lesion's bounding box of the
            CT's grid (same spacing and direction; :func:`renal_nnunet.anatomy.geometry.paste_on_grid`
            puts it on the whole grid), or None when not requested.
    """

    lesion_id: int
    probabilities: dict[str, float]
    predicted_class: str
    fold_predictions: tuple[str, ...]
    fold_probabilities: np.ndarray = field(repr=False)
    cam: sitk.Image | None = field(default=None, repr=False)

    @property
    def fold_agreement(self) -> float:
        """Share of fold models voting for ``predicted_class`` (1.0 = unanimous)."""
        return self.fold_predictions.count(self.predicted_class) / len(self.fold_predictions)


def lesion_ids_of(lesion_mask: sitk.Image) -> list[int]:
    """Nonzero label values of a lesion mask, ascending."""
    return [int(v) for v in np.unique(sitk.GetArrayViewFromImage(lesion_mask)) if v != 0]


def lesions_touching_border(lesion_mask: sitk.Image) -> list[int]:
    """Ids of lesions with a voxel on the image's outer faces (likely cut off by the field of view)."""
    array = sitk.GetArrayViewFromImage(lesion_mask)
    faces = [array[0], array[-1], array[:, 0], array[:, -1], array[:, :, 0], array[:, :, -1]]
    return sorted({int(v) for face in faces for v in np.unique(face) if v != 0})


def classify_lesions(
    ct: sitk.Image,
    lesion_mask: sitk.Image,
    ensemble: ClassifierEnsemble,
    cam: bool = True,
    lesion_ids: Sequence[int] | None = None,
) -> list[LesionClassification]:
    """Classify every lesion (or ``lesion_ids``) of a lesion mask with a fold ensemble.

    Args:
        ct: CT in HU.
        lesion_mask: integer label image on ``ct``'s grid, one id per lesion, 0 background
            (e.g. from ``renal_nnunet.anatomy.lesions.lesion_components``).
        ensemble: the classifier's folds on a runtime.
        cam: also compute each lesion's Grad-CAM in the CT's geometry.
        lesion_ids: classify only these ids (default: all).

    Returns:
        One :class:`LesionClassification` per lesion, in ascending id order.

    Raises:
        InputError: a bad checkpoint, non-integer or empty lesion mask, mask geometry
            different from the CT's, a requested id absent from the mask, or a lesion touching
            the image border (cut off by the field of view: its crop would be incomplete;
            leave such lesions out with ``lesion_ids``, see :func:`lesions_touching_border`).
    """
    check_same_geometry(ct, lesion_mask, "the CT", "the lesion mask")
    if not np.issubdtype(sitk.GetArrayViewFromImage(lesion_mask).dtype, np.integer):
        raise InputError(None, f"lesion mask must hold integer lesion ids, got {lesion_mask.GetPixelIDTypeAsString()}")
    present = lesion_ids_of(lesion_mask)
    if not present:
        raise InputError(None, "lesion mask is empty: no lesion to classify")
    wanted = present if lesion_ids is None else sorted(int(i) for i in lesion_ids)
    absent = sorted(set(wanted) - set(present))
    if absent:
        raise InputError(None, f"lesion ids {absent} are not in the lesion mask (it holds {present})")
    cut_off = sorted(set(wanted) & set(lesions_touching_border(lesion_mask)))
    if cut_off:
        raise InputError(None, f"lesions {cut_off} touch the image border, so they are probably cut off by the "
                               "field of view and their crops incomplete; leave them out (lesion_ids=...)")
    folds = ensemble.load_folds()
    return [_classify_one(ct, lesion_mask, lesion_id, folds, cam) for lesion_id in wanted]


def _classify_one(ct: sitk.Image, lesion_mask: sitk.Image, lesion_id: int, folds: list[ClassifierFold],
                  cam: bool) -> LesionClassification:
    crops = {}  # by grid: the fold models may have been trained at different grids
    fold_probabilities = []
    with contextlib.ExitStack() as stack:
        forwards = []  # with cam: each fold's pass, kept until the ensemble has chosen the class
        for fold in folds:
            if fold.grid not in crops:
                crop, sidecar = lesion_crop(ct, lesion_mask, fold.grid, lesion_id)
                crops[fold.grid] = (crop_to_input(crop)[None].to(fold.device), sidecar)
            volume, sidecar = crops[fold.grid]
            if cam:
                forwards.append((stack.enter_context(fold.explained_forward(volume)), sidecar))
                logits = forwards[-1][0].logits.detach()
            else:
                logits = fold.logits(volume)
            fold_probabilities.append(torch.softmax(logits, dim=1)[0].cpu().numpy())
        fold_probabilities = np.stack(fold_probabilities)
        mean = fold_probabilities.mean(axis=0)
        predicted = int(mean.argmax())
        cam_image = _ensemble_cam(ct, forwards, predicted) if cam else None
    log.debug("lesion %d: %s", lesion_id, dict(zip(LESION_CLASSES, mean.round(3))))
    return LesionClassification(
        lesion_id=int(lesion_id),
        probabilities={name: float(p) for name, p in zip(LESION_CLASSES, mean)},
        predicted_class=LESION_CLASSES[predicted],
        fold_predictions=tuple(LESION_CLASSES[int(i)] for i in fold_probabilities.argmax(axis=1)),
        fold_probabilities=fold_probabilities,
        cam=cam_image,
    )


def _ensemble_cam(ct: sitk.Image, forwards: list, target_class: int) -> sitk.Image:
    """Mean of the fold models' Grad-CAMs on the lesion's box of the CT's grid, rescaled to [0, 1].

    Only the box is kept: a full-size float map per lesion would not fit in memory for a kidney
    with dozens of cysts on a 512x512 CT.
    """
    boxes = {sidecar.box for _, sidecar in forwards}
    if len(boxes) != 1:
        raise ValueError(f"the fold crops of one lesion cover different boxes: {sorted(boxes, key=str)}")
    box, = boxes
    by_grid = {}  # the folds' maps summed on each crop grid, then resampled once (linear resampling is linear)
    for forward, sidecar in forwards:
        cam = forward.cam(target_class)
        total, _ = by_grid.get(cam.shape, (0, sidecar))
        by_grid[cam.shape] = (total + cam, sidecar)
    total = sum(resample_from_grid(np.asarray(summed, np.float32), sidecar, "linear", 0.0, crop_only=True)
                for summed, sidecar in by_grid.values())
    peak = float(total.max())
    return image_like((total / peak if peak > 0 else total).astype(np.float32),
                      sitk.RegionOfInterest(ct, box.size, box.start))


def classify_lesion_files(
    ct_path: str | os.PathLike,
    lesion_mask_path: str | os.PathLike,
    ensemble: ClassifierEnsemble,
    out_dir: str | os.PathLike,
    cam: bool = True,
) -> Path:
    """Classify the lesions of a label file and write the results into ``out_dir``.

    Writes ``lesions.json`` (per lesion: probabilities, class, fold votes and agreement) and, with
    ``cam``, ``lesion_<id>_cam.nii.gz`` (Grad-CAM on the CT's grid) and ``lesion_<id>_cam.png``
    (central slices). Returns the JSON's path.

    Raises:
        InputError: unreadable files, or any problem :func:`classify_lesions` reports.
    """
    from renal_nnunet.classification.overlay import save_cam_overlay_png
    from renal_nnunet.io import read_label_map, read_series_or_image, write_image, write_json

    ct = read_series_or_image(ct_path)
    lesion_mask = read_label_map(lesion_mask_path, reference=ct, reference_path=ct_path)
    out_dir = Path(out_dir)
    results = classify_lesions(ct, lesion_mask, ensemble, cam=cam)
    records = []
    for result in results:
        record = {"lesion_id": result.lesion_id, "predicted_class": result.predicted_class,
                  "probabilities": result.probabilities, "fold_predictions": list(result.fold_predictions),
                  "fold_agreement": result.fold_agreement}
        if result.cam is not None:
            stem = f"lesion_{result.lesion_id}_cam"
            cam = paste_on_grid(result.cam, ct)
            record["cam_file"] = write_image(cam, out_dir / f"{stem}.nii.gz").name
            record["cam_png"] = save_cam_overlay_png(ct, lesion_mask, cam, result.lesion_id,
                                                     out_dir / f"{stem}.png").name
        records.append(record)
    return write_json({"ct": str(ct_path), "lesion_mask": str(lesion_mask_path),
                       "checkpoints": [str(c) for c in ensemble.checkpoints], "lesions": records}, out_dir / "lesions.json")
