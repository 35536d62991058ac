"""Write a CT as a DICOM series with SimpleITK (one file per slice), geometry in the tags."""

from __future__ import annotations

import locale
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_dicom_series(ct: sitk.Image, folder: Path, uid_root: str | None = None) -> Path:
    """Write ``ct`` (HU, any orientation) as an int16 CT DICOM series in ``folder``.

    Each slice carries ImagePositionPatient / ImageOrientationPatient from the image geometry, so a
    series reader rebuilds the same physical volume (possibly with a different slice order).
    ``uid_root`` (default: from the clock) makes the study, series, frame-of-reference and instance
    UIDs; give two series in one folder different roots.
    """
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(ct, sitk.sitkInt16)
    direction = image.GetDirection()
    orientation = "\\".join(f"{v:.10g}" for v in (direction[0], direction[3], direction[6],
                                                  direction[1], direction[4], direction[7]))
    stamp = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    uid_root = uid_root or "1.2.826.0.1.3680043.2.1125." + stamp[0] + stamp[1]
    shared = [
        ("0008|0031", stamp[1]), ("0008|0021", stamp[0]), ("0008|0060", "CT"),
        ("0020|000d", uid_root + ".1"), ("0020|000e", uid_root + ".2"),
        ("0020|0052", uid_root + ".4"), ("0020|0011", "1"), ("0008|0050", "ACC1"), ("0020|0010", "1"), ("0020|0037", orientation),
        ("0008|103e", "renal_nnunet test series"), ("0010|0010", "Synthetic^Patient"), ("0010|0020", "SYN001"),
        ("0028|1052", "0"), ("0028|1053", "1"), ("0018|0050", f"{image.GetSpacing()[2]:.10g}"),
    ]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    process_locale = locale.setlocale(locale.LC_ALL)  # GDCM's writer sets the C locale process-wide
    for z in range(image.GetDepth()):
        slice_image = image[:, :, z]
        for tag, value in shared:
            slice_image.SetMetaData(tag, value)
        position = image.TransformIndexToPhysicalPoint((0, 0, z))
        slice_image.SetMetaData("0020|0032", "\\".join(f"{v:.10g}" for v in position))
        slice_image.SetMetaData("0020|0013", str(z + 1))
        slice_image.SetMetaData("0008|0018", f"{uid_root}.3.{z + 1}")
        writer.SetFileName(str(folder / f"slice_{z:04d}.dcm"))
        writer.Execute(slice_image)
    locale.setlocale(locale.LC_ALL, process_locale)  # later tests write UTF-8 text with the default encoding
    return folder


def same_physical_volume(a: sitk.Image, b: sitk.Image) -> bool:
    """True if ``a`` and ``b`` hold the same voxels in the same physical places (any storage order)."""
    a_lps, b_lps = sitk.DICOMOrient(a, "LPS"), sitk.DICOMOrient(b, "LPS")
    return (a_lps.GetSize() == b_lps.GetSize()
            and np.allclose(a_lps.GetOrigin(), b_lps.GetOrigin(), atol=1e-3)
            and np.allclose(a_lps.GetSpacing(), b_lps.GetSpacing(), atol=1e-4)
            and np.array_equal(sitk.GetArrayViewFromImage(a_lps), sitk.GetArrayViewFromImage(b_lps)))
