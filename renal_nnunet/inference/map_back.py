"""Stage predictions in each CT's own geometry: grid predictions (e.g. from stock
``nnUNetv2_predict``) mapped back through the converter's sidecars, and one stage run on CT files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import GridSidecar, image_like, resample_from_grid
from renal_nnunet.io import InputError, case_id_from_path, read_image, write_image
from renal_nnunet.settings import PAPER

if TYPE_CHECKING:
    from renal_nnunet.inference.ensemble import FoldEnsemble

log = logging.getLogger(__name__)

__all__ = ["map_labels_to_source", "map_predictions_to_source", "predict_stage_files"]


def map_labels_to_source(grid_labels: sitk.Image, sidecar: GridSidecar) -> sitk.Image:
    """A label map predicted on a grid image, put back onto the source CT's voxels (nearest).

    Returns:
        uint8 labels with the source's size, spacing, origin and direction (0 outside a crop box).
    """
    array = sitk.GetArrayFromImage(grid_labels)
    return image_like(resample_from_grid(array, sidecar, "nearest", fill_value=0).astype("uint8"),
                      sidecar.source.reference_image())


def map_predictions_to_source(prediction_folder: str | os.PathLike, sidecar_folder: str | os.PathLike,
                              output_folder: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """Map every ``CASE.nii.gz`` grid prediction back with ``sidecar_folder/CASE.json`` into ``CASE.nii.gz``
    (CASE by :func:`renal_nnunet.io.case_id_from_path`).

    A case that fails (missing sidecar, unreadable file) is reported and the rest go on.

    Returns:
        The written files and one message per failed case.
    """
    written, failures = [], []
    predictions = sorted(Path(prediction_folder).glob("*.nii.gz"))
    if not predictions:
        raise InputError(prediction_folder, "holds no .nii.gz predictions")
    for prediction in predictions:
        case = case_id_from_path(prediction)
        try:
            sidecar = GridSidecar.from_json(Path(sidecar_folder) / f"{case}.json")
            image = map_labels_to_source(read_image(prediction), sidecar)
            written.append(write_image(image, Path(output_folder) / f"{case}.nii.gz"))
        except (InputError, ValueError) as err:
            log.error("%s: %s", case, err)
            failures.append(f"{case}: {err}")
    return written, failures


def predict_stage_files(inputs: Sequence[str | os.PathLike], output_folder: str | os.PathLike,
                        ensemble: "FoldEnsemble", crop_from: Sequence[str | os.PathLike] | None = None,
                        margin_mm: float = PAPER.kidney_margin_mm) -> tuple[list[Path], list[str]]:
    """Run one stage on CT files (NIfTI or DICOM folders) and write ``CASE.nii.gz`` label maps in
    each CT's own geometry (CASE by :func:`renal_nnunet.io.case_id_from_path`); a failing case is
    reported and the batch goes on.

    Args:
        inputs: CT files or DICOM series folders.
        output_folder: where the label maps go.
        ensemble: the stage's fold ensemble
            (:class:`~renal_nnunet.inference.ensemble.FoldEnsemble`).
        crop_from: one label map per input (same order), e.g. the kidney stage's output: each
            nonzero label's box grown by ``margin_mm`` is predicted separately (the mass stage).
        margin_mm: crop margin, mm.

    Returns:
        The written files and one message per failed case.
    """
    from renal_nnunet.inference.grid_to_ct import label_boxes, predict_stage_labels
    from renal_nnunet.io import read_label_map, read_series_or_image

    if crop_from is not None and len(crop_from) != len(inputs):
        raise ValueError(f"--crop-from needs one label map per input: got {len(crop_from)} for {len(inputs)} inputs")
    written, failures = [], []
    for index, path in enumerate(Path(p) for p in inputs):
        try:
            ct = read_series_or_image(path)
            boxes = None
            if crop_from is not None:
                crop_labels = read_label_map(crop_from[index], reference=ct, reference_path=path)
                boxes = list(label_boxes(crop_labels, margin_mm).values())
                if not boxes:
                    raise InputError(crop_from[index], "is empty: no box to predict in")
            labels = predict_stage_labels(ct, ensemble, boxes)
            written.append(write_image(labels, Path(output_folder) / f"{case_id_from_path(path)}.nii.gz"))
            log.info("%s -> %s", path, written[-1])
        except (InputError, ValueError) as err:
            log.error("%s", err)
            failures.append(str(err))
    return written, failures
