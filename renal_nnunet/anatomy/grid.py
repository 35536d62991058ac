"""The one CT preparation used for every grid dataset and at inference: window, then resize.

Training images (conversion) and inference inputs (``renal_nnunet.inference.grid_to_ct``) both go
through :func:`prepare_grid_ct`, so the network sees identically prepared intensities.
"""

from __future__ import annotations

import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import GridSidecar, resample_to_grid
from renal_nnunet.anatomy.intensity import window_ct

__all__ = ["prepare_grid_ct", "labels_to_grid", "LABEL_GRID_INTERPOLATION"]

LABEL_GRID_INTERPOLATION = "nearest"
"""Interpolation for label maps on the grid. Measured on all 32 real KiTS23 cases (paper kidneys,
sinus filled, full resolution -> 128^3 -> back with nearest): per-kidney round-trip Dice 'nearest'
min 0.955 / mean 0.968, 'label' (label-Gaussian) min 0.958 / mean 0.970, 61 kidneys. The gain of
'label' is 0.002 for 3-10x the time, so 'nearest' (also exact on label values)."""


def prepare_grid_ct(
    ct: sitk.Image,
    grid: int,
    box: Box | None = None,
) -> tuple[sitk.Image, GridSidecar]:
    """Window a CT with the paper's window (level 30, width 300 HU) and resample it to ``grid``^3.

    Args:
        ct: CT in HU (any orientation; geometry is read from the image).
        grid: grid edge in voxels (paper: 128).
        box: the crop box to resample (e.g. a kidney's box); default the whole CT.

    Returns:
        The float32 grid image in windowed HU ([-120, 180]) with the source's origin and direction
        and nominal 1 mm spacing, and the sidecar mapping it back to ``ct``'s voxels.
    """
    return resample_to_grid(ct, grid, "linear", box, intensity_map=window_ct)


def labels_to_grid(
    labels: sitk.Image,
    grid: int,
    box: Box | None = None,
) -> tuple[sitk.Image, GridSidecar]:
    """Resample an integer label map to ``grid``^3 the way the grid datasets are written (uint8)."""
    return resample_to_grid(sitk.Cast(labels, sitk.sitkUInt8), grid, LABEL_GRID_INTERPOLATION, box)
