"""The one CT preparation used for every grid dataset and at inference: window, then resize.

Training images (conversion) and inference inputs (``renal_nnunet.inference.grid_to_ct``) both go
through :func:`prepare_grid_ct`, so the network sees identically prepared intensities.

A whole-CT stage (the kidney U-Net, the one-stage ablation) resamples the CT's :func:`body_box`,
not the scanner's whole field of view. The paper resizes the whole CT; but a reconstruction field
of view is chosen per scan (the shared real CT's is 550 mm across a 363 mm wide body), so on the
whole-CT grid a kidney's size in voxels would depend on it, and at the demo's 32^3 a real kidney
would be about 3.5 voxels across. The body box takes that choice out of the network's input.
"""

from __future__ import annotations

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import GridSidecar, resample_to_grid
from renal_nnunet.anatomy.intensity import window_ct
from renal_nnunet.anatomy.sides import axial_axis_numpy, body_mask

__all__ = ["prepare_grid_ct", "labels_to_grid", "body_box", "LABEL_GRID_INTERPOLATION", "BODY_BOX_MARGIN_MM", "BODY_BOX_OPENING_MM"]

BODY_BOX_MARGIN_MM = 10.0
"""Margin around the body mask of :func:`body_box` (mm): the skin stays inside the grid."""

BODY_BOX_OPENING_MM = 20.0
"""In-slice opening radius of :func:`body_box` (mm). The table and its pad touch the back and span
the whole field of view (the shared real CT: a 14 mm pad over a thin shell; the generator: 8-40 mm
slabs); an opening removes everything thinner than twice this, and the trunk is much thicker."""

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
        box: the crop box to resample (e.g. a kidney's box); default the CT's :func:`body_box`
            (a whole-CT stage: the kidney U-Net, the one-stage ablation).

    Returns:
        The float32 grid image in windowed HU ([-120, 180]) with the source's origin and direction
        and nominal 1 mm spacing, and the sidecar mapping it back to ``ct``'s voxels.
    """
    return resample_to_grid(ct, grid, "linear", body_box(ct) if box is None else box, intensity_map=window_ct)


def labels_to_grid(
    labels: sitk.Image,
    grid: int,
    box: Box | None = None,
) -> tuple[sitk.Image, GridSidecar]:
    """Resample an integer label map to ``grid``^3 the way the grid datasets are written (uint8)."""
    return resample_to_grid(sitk.Cast(labels, sitk.sitkUInt8), grid, LABEL_GRID_INTERPOLATION, box)


def body_box(ct: sitk.Image, margin_mm: float = BODY_BOX_MARGIN_MM) -> Box:
    """The box a whole-CT stage resamples to its grid: the trunk, grown by ``margin_mm`` on every
    side and clipped to the CT, in ``ct``'s voxel indices (x, y, z).

    The trunk is the largest part of :func:`~renal_nnunet.anatomy.sides.body_mask` left after an
    in-slice opening by :data:`BODY_BOX_OPENING_MM`, which cuts the table away. The mask is found on
    a CT shrunk by whole-voxel factors (about 4 mm voxels); a shrunk voxel covers ``factor`` source
    voxels per axis, and one touching the shrunk image's last voxel reaches the CT's edge (the
    shrink drops a remainder there).

    Raises:
        ValueError: no voxel above -500 HU (the image is not a CT in HU).
    """
    mask = body_mask(ct)
    body = sitk.GetArrayFromImage(mask) > 0
    radius_zyx = np.floor(BODY_BOX_OPENING_MM / np.asarray(mask.GetSpacing()[::-1])).astype(int)
    radius_zyx[axial_axis_numpy(ct)] = 0
    offsets = np.indices(2 * radius_zyx + 1) - radius_zyx[:, None, None, None]
    disk = (np.divide(offsets, np.maximum(radius_zyx, 1)[:, None, None, None]) ** 2).sum(axis=0) <= 1
    trunk = cc3d.largest_k(ndimage.binary_opening(body, structure=disk), k=1, connectivity=26) > 0
    if not trunk.any():  # a body thinner than the opening (a phantom, a limb): the mask itself
        trunk = body
    factors = np.round(np.divide(mask.GetSpacing(), ct.GetSpacing())).astype(int)
    box = Box.of_nonzero(trunk)
    start = np.multiply(box.start, factors)
    stop = np.where(np.asarray(box.stop) >= mask.GetSize(), ct.GetSize(), np.multiply(box.stop, factors))
    pad = np.ceil(margin_mm / np.asarray(ct.GetSpacing(), float)).astype(int)
    return Box(start, stop - start).grow(pad).clipped_to(ct.GetSize())
