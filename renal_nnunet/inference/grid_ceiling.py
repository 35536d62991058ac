"""The best kidney Dice a grid allows: each reference's kidneys sent through the kidney stage's grid
and back, as a network that labels every grid voxel right would return them.

The kidney U-Net sees the CT's body box resized to G^3 (the paper: 128^3; the demo: 32^3), and its grid
probabilities are resampled linearly back onto the CT's voxels
(:func:`renal_nnunet.inference.grid_to_ct.probabilities_to_source_labels`). On a coarse grid a kidney
is a few grid voxels across, so even a perfect network's kidneys differ from the reference at the
CT's own resolution. The ceiling tells a held-out Dice limited by the grid from one limited by the
network. Measured on the demo's generator (12 randomised held-out torsos of seed 1, 4 of them
without kidneys, which the mean leaves out; scans up to 740 mm long, so a 32^3 grid's voxels reach
23 mm along the body): kidney Dice right / left 0.89 / 0.87 at 32^3 on the body box; on the whole
field of view (before the body box) 0.83 / 0.85 at 32^3 and 0.90 / 0.91 at 48^3.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.grid import body_box, labels_to_grid
from renal_nnunet.anatomy.label_maps import pipeline_anatomy
from renal_nnunet.anatomy.labels import KIDNEY_SIDE_LABELS, OUTPUT_LABELS, SIDES
from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders, label_files
from renal_nnunet.evaluation.report import summary_value
from renal_nnunet.inference.grid_to_ct import probabilities_to_source_labels
from renal_nnunet.io import InputError, case_id_from_path, check_same_geometry, has_image_suffix, read_image, read_label_map, write_image

__all__ = ["kidney_grid_ceiling", "kidney_dice_ceiling"]


def kidney_grid_ceiling(reference: sitk.Image, grid: int, box: Box | None = None) -> sitk.Image:
    """The kidneys a perfect kidney stage on a ``grid``^3 grid returns for ``reference``.

    The reference's kidney sides (each mass counted to its kidney, as the evaluation counts it) are
    written on the grid as the converter writes the kidney stage's training labels
    (:func:`~renal_nnunet.anatomy.grid.labels_to_grid`), taken as one-hot class probabilities and
    mapped back as the stage maps its probabilities.

    Args:
        reference: label map in the pipeline's convention
            (:data:`~renal_nnunet.anatomy.labels.OUTPUT_LABELS`), any orientation and spacing.
        grid: grid edge of the kidney stage (voxels).
        box: the voxels the kidney stage resamples: the CT's
            :func:`~renal_nnunet.anatomy.grid.body_box`; default the whole reference.

    Returns:
        uint8 label map in ``reference``'s geometry: 0 background, 1 right and 2 left kidney.
    """
    sides = image_like(pipeline_anatomy(reference).side, reference)
    grid_sides, sidecar = labels_to_grid(sides, grid, box)
    labels = sitk.GetArrayViewFromImage(grid_sides)
    one_hot = np.stack([labels == value for value in range(len(KIDNEY_SIDE_LABELS) + 1)]).astype(np.float32)
    return image_like(probabilities_to_source_labels(one_hot, sidecar), reference)


def kidney_dice_ceiling(reference_dir: str | os.PathLike, image_dir: str | os.PathLike, grid: int,
                        out_dir: str | os.PathLike) -> dict[str, float]:
    """Mean kidney Dice per side of :func:`kidney_grid_ceiling` over a folder of references, scored
    by :func:`~renal_nnunet.evaluation.evaluate.evaluate_folders` as a prediction folder would be.

    Args:
        reference_dir: references in the pipeline's convention, found and paired by case id as the
            evaluation finds them.
        image_dir: the references' CTs (``CASE.nii.gz`` or ``CASE_0000.nii.gz``): each gives the body
            box its kidney stage resamples.
        grid: grid edge of the kidney stage (voxels).
        out_dir: folder for the ceiling label maps (``ceiling/<case>_seg.nii.gz``) and their
            evaluation (``evaluation/``).

    Returns:
        ``{"right": dice, "left": dice}`` (NaN for a side no reference holds).

    Raises:
        InputError: a reference is unreadable, holds labels outside the convention, has no CT in
            ``image_dir`` or not its CT's geometry.
    """
    out_dir = Path(out_dir)
    ceiling_dir = out_dir / "ceiling"
    images = {case_id_from_path(path): path for path in Path(image_dir).iterdir() if has_image_suffix(path)}
    for case_id, path in label_files(reference_dir).items():
        if case_id not in images:
            raise InputError(path, f"no CT of case {case_id!r} in {image_dir}")
        reference = read_label_map(path, allowed_labels=set(OUTPUT_LABELS.values()))
        ct = read_image(images[case_id])
        check_same_geometry(ct, reference, images[case_id], path)
        write_image(kidney_grid_ceiling(reference, grid, body_box(ct)), ceiling_dir / f"{case_id}_seg.nii.gz")
    summary = evaluate_folders(ceiling_dir, reference_dir, out_dir / "evaluation",
                               EvaluationConfig(ref_format="pipeline", figures=False)).summary
    return {side: summary_value(summary, "segmentation", f"kidney_{side}", "dice") for side in SIDES}
