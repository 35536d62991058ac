"""Per-case plausibility checks: results that say when to distrust them.

Checks (thresholds are module constants; each failure becomes a message in the tables and the
report, or a lesion's ``plausibility`` entry):

- **No tissue at all**: no voxel above :data:`BODY_HU` (e.g. an all-air image, or one whose values
  are not HU, predicted with the intensity check skipped). Nothing there can be a kidney; the case
  ends as "no kidney found" before the networks run.
- **No kidney level in view**: the kidneys lie in the abdomen, below the lungs. Where the found
  "kidney" has its centre, air inside the body outline (HU < -500; lungs, not bowel gas) above
  :data:`MAX_INTRABODY_AIR_FRACTION` of the body's cross-section means a chest scan; a body
  cross-section below :data:`MIN_BODY_AREA_CM2` means a head or limb. Either ends the case as
  "no kidney in view" with no renal mass.
- **Kidney volume** (kidney label only, masses excluded) outside :data:`ADULT_KIDNEY_VOLUME_ML`.
  Adult kidneys measure about 100-300 ml on CT (e.g. Emamian et al., AJR 1993; Cheong et al., Clin
  Radiol 2007); the range is widened for atrophic, compensatory and partly resected kidneys.
- **Masses making up most of a kidney**: more than :data:`MAX_MASS_FRACTION` of the side's kidney
  plus masses.
- **Lesion mean HU** of air (below :data:`AIR_MEAN_HU`; fat in an AML is about -100 HU) or bone
  (above :data:`BONE_MEAN_HU`; enhancing renal masses stay below about 250 HU).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.outputs.records import LesionRecord

__all__ = ["ADULT_KIDNEY_VOLUME_ML", "MAX_MASS_FRACTION", "AIR_MEAN_HU", "BONE_MEAN_HU", "MAX_INTRABODY_AIR_FRACTION",
           "MIN_BODY_AREA_CM2", "BODY_HU", "no_tissue_problem", "kidney_level_problem", "kidney_problems",
           "lesion_problem"]

ADULT_KIDNEY_VOLUME_ML = (40.0, 500.0)
MAX_MASS_FRACTION = 0.5
AIR_MEAN_HU = -300.0
BONE_MEAN_HU = 350.0
MAX_INTRABODY_AIR_FRACTION = 0.25
MIN_BODY_AREA_CM2 = 250.0
BODY_HU = -500.0


def no_tissue_problem(ct: sitk.Image) -> str | None:
    """Why ``ct`` (HU) cannot hold a kidney because it holds no tissue at all, or None.

    >>> no_tissue_problem(sitk.Image([4, 4, 4], sitk.sitkInt16) - 1000)[:40]
    'no kidney found: the image holds no tiss'
    """
    values = sitk.GetArrayViewFromImage(ct)
    if (values > BODY_HU).any():
        return None
    return (f"no kidney found: the image holds no tissue (all voxels below {BODY_HU:.0f} HU, highest "
            f"{float(values.max()):.0f}); is this a CT in HU?")


def kidney_level_problem(ct: sitk.Image, kidneys: sitk.Image) -> str | None:
    """Why the axial level of the found kidneys cannot be a kidney level, or None.

    Args:
        ct: CT in HU, LPS-oriented (array axis 0 runs foot to head).
        kidneys: the kidney stage's labels on ``ct``'s grid.
    """
    from scipy.ndimage import binary_fill_holes

    found = np.argwhere(sitk.GetArrayViewFromImage(kidneys) > 0)
    if not len(found):
        return None
    z = int(np.round(found[:, 0].mean()))
    tissue = sitk.GetArrayViewFromImage(ct)[z] > BODY_HU
    body = binary_fill_holes(tissue)
    spacing_x, spacing_y = ct.GetSpacing()[:2]
    body_cm2 = float(body.sum()) * spacing_x * spacing_y / 100.0
    air_fraction = float((body & ~tissue).sum()) / max(int(body.sum()), 1)
    if air_fraction > MAX_INTRABODY_AIR_FRACTION:
        return (f"no kidney in view: the found kidney's level holds {100 * air_fraction:.0f} % air inside the body "
                "(lungs: a chest scan); no renal mass reported")
    if body_cm2 < MIN_BODY_AREA_CM2:
        return (f"no kidney in view: the body's cross-section at the found kidney's level is {body_cm2:.0f} cm², "
                f"below an abdomen's {MIN_BODY_AREA_CM2:.0f} cm² (head or limb); no renal mass reported")
    return None


def kidney_problems(seg: sitk.Image, lesions: Sequence[LesionRecord], side_values: dict[str, int]) -> list[str]:
    """Messages for kidneys of implausible volume or mostly made of masses.

    Args:
        seg: the pipeline's output labels (kidney labels exclude the masses).
        lesions: the case's lesion rows (each with its ``side`` and ``volume_ml``).
        side_values: side name -> kidney label value (e.g. ``{"right": 1, "left": 2}``).
    """
    array = sitk.GetArrayViewFromImage(seg)
    voxel_ml = float(np.prod(seg.GetSpacing())) / 1000.0
    low, high = ADULT_KIDNEY_VOLUME_ML
    problems = []
    for side, value in side_values.items():
        kidney_ml = float(np.count_nonzero(array == value)) * voxel_ml
        mass_ml = sum(r.volume_ml for r in lesions if r.side == side)
        if kidney_ml and not low <= kidney_ml <= high:
            problems.append(f"implausible: {side} kidney volume {kidney_ml:.0f} ml (without masses) is outside the "
                            f"adult range {low:.0f}-{high:.0f} ml")
        if mass_ml and mass_ml / (kidney_ml + mass_ml) > MAX_MASS_FRACTION:
            problems.append(f"implausible: masses make up {100 * mass_ml / (kidney_ml + mass_ml):.0f} % of the "
                            f"{side} kidney")
    return problems


def lesion_problem(mean_hu: float) -> str:
    """``"mean HU is air"``, ``"mean HU is bone"`` or ``""`` for a lesion's mean HU.

    >>> lesion_problem(-450.0), lesion_problem(-90.0), lesion_problem(800.0)
    ('mean HU is air', '', 'mean HU is bone')
    """
    if mean_hu < AIR_MEAN_HU:
        return "mean HU is air"
    if mean_hu > BONE_MEAN_HU:
        return "mean HU is bone"
    return ""

