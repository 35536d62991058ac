"""Finding the CTs to predict and checking they look like CT in HU (``renal_nnunet.io.select_part``
splits them into parts).

An input is a NIfTI (or other single-file) image, a folder holding one DICOM series, or a folder
of such images and/or sub-folders that each hold one DICOM series.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from renal_nnunet.io import IMAGE_SUFFIXES, InputError, case_id_from_path, has_image_suffix, itk_messages_logged

__all__ = ["CaseInput", "discover_cases", "check_ct_intensities"]

log = logging.getLogger(__name__)

# Plausible CT values in HU: air is about -1000 (scanners pad outside the field of view down to
# -3024), dense bone and contrast stay below ~3071 (12-bit range), metal can saturate above.
AIR_BELOW_HU = -500.0
MIN_AIR_FRACTION = 1e-4
LOWEST_PLAUSIBLE_HU = -3100.0
HIGHEST_PLAUSIBLE_P99_HU = 3100.0


@dataclass(frozen=True)
class CaseInput:
    """One case to predict: its id (:func:`renal_nnunet.io.case_id_from_path`, used in output file
    names) and its file or DICOM folder."""

    case_id: str
    path: Path


def _holds_dicom_series(folder: Path) -> bool:
    with itk_messages_logged(folder):
        return bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def discover_cases(input_path: str | os.PathLike) -> list[CaseInput]:
    """List the cases under ``input_path``, sorted by case id.

    Raises:
        InputError: the path does not exist, or holds no image files and no DICOM series, or two
            inputs would share a case id.
    """
    input_path = Path(input_path)
    if not input_path.exists():
        raise InputError(input_path, "input does not exist")
    if input_path.is_file():
        return [CaseInput(case_id_from_path(input_path), input_path)]
    images = sorted(p for p in input_path.iterdir()
                    if p.is_file() and has_image_suffix(p) and not p.name.startswith("."))
    if not images and _holds_dicom_series(input_path):
        cases = [CaseInput(case_id_from_path(input_path), input_path)]
    else:
        # A test set may mix NIfTI files and series folders; neither kind is dropped for the other.
        series = [d for d in sorted(input_path.iterdir()) if d.is_dir() and _holds_dicom_series(d)]
        cases = [CaseInput(case_id_from_path(p), p) for p in [*images, *series]]
        skipped = sorted(p.name for p in set(input_path.iterdir()) - set(images) - set(series)
                         if not p.name.startswith("."))
        if skipped:
            log.warning("%s: %d entr(ies) neither an image file nor a DICOM series folder, not predicted: %s",
                        input_path, len(skipped), ", ".join(skipped))
    if not cases:
        raise InputError(input_path, f"holds no images ({', '.join(IMAGE_SUFFIXES)}) and no DICOM series")
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(input_path, f"several inputs map to the same case id(s) {duplicates}")
    return sorted(cases, key=lambda c: c.case_id)


def check_ct_intensities(ct: sitk.Image, name: str | os.PathLike | None = None) -> None:
    """Raise ``InputError`` unless the voxel values look like a CT in Hounsfield units.

    Checks: some air (voxels below -500 HU, at least 0.01 %) and some tissue (above -500 HU),
    nothing below -3100 HU, and the 99th percentile below 3100 HU. Catches images stored without the DICOM rescale (air at 0), intensity-
    normalised images (0-1 or z-scores) and MR.
    """
    values = sitk.GetArrayViewFromImage(ct)
    sample = values.ravel()[:: max(1, values.size // 2_000_000)].astype(np.float32)
    low, p99, high = float(sample.min()), float(np.percentile(sample, 99)), float(sample.max())
    air_fraction = float(np.mean(sample < AIR_BELOW_HU))
    problems = []
    if air_fraction < MIN_AIR_FRACTION:
        problems.append(f"no air (no voxels below {AIR_BELOW_HU:.0f} HU)")
    if air_fraction > 1.0 - MIN_AIR_FRACTION:
        problems.append(f"no body (no voxels above {AIR_BELOW_HU:.0f} HU)")
    if low < LOWEST_PLAUSIBLE_HU:
        problems.append(f"minimum {low:.0f} is below {LOWEST_PLAUSIBLE_HU:.0f} HU")
    if p99 > HIGHEST_PLAUSIBLE_P99_HU:
        problems.append(f"99th percentile {p99:.0f} is above {HIGHEST_PLAUSIBLE_P99_HU:.0f} HU")
    if problems:
        raise InputError(name, f"does not look like a CT in Hounsfield units (values {low:.4g} to {high:.4g}): "
                               + "; ".join(problems) + ". Give the CT in HU (apply the DICOM rescale slope/"
                               "intercept; do not normalise intensities), or skip this check if you are sure.")
