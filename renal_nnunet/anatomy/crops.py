"""Classifier input: one lesion cut out of the CT by its outline and resized to the grid.

The paper overlays the lesion's label on the CT, removes everything not covered, and resizes the
result to 128^3. Here: CT windowed with the paper's window (level 30, width 300 HU, so values lie
in [-120, 180] HU), voxels outside the lesion's outline set to the window floor (-120 HU), the
lesion's bounding box (plus ``margin_mm``) resampled linearly to ``grid``^3. The same function makes
the training crops (conversion) and the prediction-time crops (classification, pipeline).
"""

from __future__ import annotations


import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.box import bounding_box_with_margin
from renal_nnunet.anatomy.geometry import GridSidecar, ImageGeometry, image_like, resample_to_grid
from renal_nnunet.anatomy.intensity import PAPER_WINDOW_LEVEL_HU, PAPER_WINDOW_WIDTH_HU, window_ct
from renal_nnunet.io import check_same_geometry
from renal_nnunet.settings import PAPER

__all__ = ["lesion_crop", "OUTSIDE_LESION_HU", "WINDOW_FLOOR_HU", "BELOW_WINDOW_HU", "LESIONS_DIR"]

LESIONS_DIR = "RenalLesions"
"""Folder under ``nnUNet_raw`` holding the lesion table (``lesions.csv``) and the classifier crops
(``crops/``): written by conversion, read by classifier training."""

WINDOW_FLOOR_HU = PAPER_WINDOW_LEVEL_HU - PAPER_WINDOW_WIDTH_HU / 2.0
"""The paper window's floor, -120 HU: fat below it clips to it."""

BELOW_WINDOW_HU = WINDOW_FLOOR_HU - PAPER_WINDOW_WIDTH_HU
"""-420 HU: one window width below the floor (-1 after the classifier's scaling to [0, 1]), so a
fill there stays apart from anything inside the lesion, clipped fat included."""

OUTSIDE_LESION_HU = WINDOW_FLOOR_HU
"""Value of voxels outside the lesion outline in a crop: the window floor, -120 HU."""


def lesion_crop(
    ct: sitk.Image,
    lesion_mask: sitk.Image,
    grid: int = PAPER.grid,
    lesion_id: int | None = None,
    margin_mm: float = 0.0,
    outside_hu: float = OUTSIDE_LESION_HU,
) -> tuple[sitk.Image, GridSidecar]:
    """Cut one lesion out of a CT by its outline and resize it to ``grid``^3.

    Args:
        ct: CT in HU.
        lesion_mask: on ``ct``'s grid; the lesion is ``lesion_mask == lesion_id``, or every nonzero
            voxel if ``lesion_id`` is None.
        grid: output edge length in voxels (paper: 128).
        lesion_id: which lesion of a component image.
        margin_mm: margin around the lesion's bounding box, mm (filled like the outside).
        outside_hu: value of voxels outside the outline, from :data:`BELOW_WINDOW_HU` up to the
            window floor.

    Returns:
        float32 crop in windowed HU ([-120, 180]; -120 outside the outline) with the CT's origin
        and direction and nominal 1 mm spacing, and the sidecar locating it in ``ct``.

    Raises:
        ValueError: the lesion is empty.
        InputError: the mask's geometry differs from the CT's.
    """
    check_same_geometry(ct, lesion_mask, "the CT", "the lesion mask")
    mask_array = sitk.GetArrayViewFromImage(lesion_mask)
    inside = mask_array != 0 if lesion_id is None else mask_array == lesion_id
    if not inside.any():
        raise ValueError(f"lesion {lesion_id if lesion_id is not None else '(nonzero)'} is empty")
    box = bounding_box_with_margin(inside, ct.GetSpacing(), margin_mm)
    # Work on the box only: windowing and masking a whole 500-slice CT per lesion would dominate.
    box_ct = sitk.RegionOfInterest(ct, box.size, box.start)
    box_inside = np.ascontiguousarray(inside[box.slices])
    box_mask = image_like(box_inside.astype(np.uint8), box_ct)
    if not BELOW_WINDOW_HU <= outside_hu <= WINDOW_FLOOR_HU:
        raise ValueError(f"outside_hu must lie in [{BELOW_WINDOW_HU:g}, {WINDOW_FLOOR_HU:g}] HU, got {outside_hu:g}")
    masked = sitk.Mask(window_ct(box_ct), box_mask, outside_hu)
    crop, box_sidecar = resample_to_grid(masked, grid, "linear")
    crop.SetOrigin(ct.GetOrigin())
    return crop, GridSidecar(ImageGeometry.of(ct), box, box_sidecar.grid)
