"""PNG overlays of a lesion's Grad-CAM on its central axial, coronal and sagittal CT slices."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.intensity import PAPER_WINDOW_LEVEL_HU, PAPER_WINDOW_WIDTH_HU
from renal_nnunet.io import InputError, atomic_path, check_same_geometry

__all__ = ["save_cam_overlay_png"]

_CAM_FLOOR = 0.05  # CAM values below this are left transparent, so the CT stays readable


def save_cam_overlay_png(ct: sitk.Image, lesion_mask: sitk.Image, cam: sitk.Image, lesion_id: int,
                         path: str | os.PathLike) -> Path:
    """Write a PNG of the lesion's central axial, coronal and sagittal slices with its outline and
    Grad-CAM, in radiological display (patient right on the image's left, superior up).

    Args:
        ct: CT in HU; shown with the paper's window (level 30, width 300 HU).
        lesion_mask: integer label image on ``ct``'s grid.
        cam: Grad-CAM in [0, 1] on ``ct``'s grid (e.g. ``LesionClassification.cam``).
        lesion_id: the lesion's value in ``lesion_mask``; slices pass through its centroid.
        path: output PNG (written atomically).

    Raises:
        InputError: grids differ, or the lesion is not in the mask.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_same_geometry(ct, lesion_mask, "the CT", "the lesion mask")
    check_same_geometry(ct, cam, "the CT", "the Grad-CAM image")
    # In LPS orientation numpy axes are (inferior->superior, anterior->posterior, right->left).
    ct_lps, mask_lps, cam_lps = (sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS")) for image in (ct, lesion_mask, cam))
    lesion = mask_lps == lesion_id
    if not lesion.any():
        raise InputError(None, f"lesion {lesion_id} is not in the lesion mask")
    centre = np.round(np.argwhere(lesion).mean(axis=0)).astype(int)
    spacing_x, spacing_y, spacing_z = sitk.DICOMOrient(ct, "LPS").GetSpacing()
    views = [  # (title, slice, aspect = row spacing / column spacing, flip rows so superior is up)
        ("axial", np.s_[centre[0], :, :], spacing_y / spacing_x, False),
        ("coronal", np.s_[:, centre[1], :], spacing_z / spacing_x, True),
        ("sagittal", np.s_[:, :, centre[2]], spacing_z / spacing_y, True),
    ]
    low = PAPER_WINDOW_LEVEL_HU - PAPER_WINDOW_WIDTH_HU / 2
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for axis, (title, index, aspect, flip) in zip(axes, views):
        ct_slice, lesion_slice, cam_slice = (a[index][::-1] if flip else a[index] for a in (ct_lps, lesion, cam_lps))
        axis.imshow(ct_slice, cmap="gray", vmin=low, vmax=low + PAPER_WINDOW_WIDTH_HU, aspect=aspect,
                    interpolation="nearest")
        axis.imshow(np.ma.masked_less(cam_slice, _CAM_FLOOR), cmap="jet", vmin=0, vmax=1, alpha=0.45,
                    aspect=aspect, interpolation="bilinear")
        if lesion_slice.any():
            axis.contour(lesion_slice.astype(float), levels=[0.5], colors="white", linewidths=0.8)
        axis.set_title(f"{title} (lesion {lesion_id})")
        axis.axis("off")
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
    return path
