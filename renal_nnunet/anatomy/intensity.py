"""CT intensity handling shared by conversion and inference."""

from __future__ import annotations

import SimpleITK as sitk

from renal_nnunet.settings import PAPER

__all__ = ["PAPER_WINDOW_LEVEL_HU", "PAPER_WINDOW_WIDTH_HU", "window_ct"]

# Names for the modules that draw or scale with the window (crops, classifier input, overlays);
# the values (and why the paper's printed pair is swapped) are in renal_nnunet.settings.
PAPER_WINDOW_LEVEL_HU = PAPER.window_level_hu
PAPER_WINDOW_WIDTH_HU = PAPER.window_width_hu


def window_ct(
    ct: sitk.Image, level_hu: float = PAPER_WINDOW_LEVEL_HU, width_hu: float = PAPER_WINDOW_WIDTH_HU
) -> sitk.Image:
    """Clip a CT (HU) to the window ``[level - width/2, level + width/2]``; float32, geometry kept.

    With the paper's window this is [-120, 180] HU: fat (< -30 HU, the sign of AML) stays
    distinguishable from water (cysts, 0-20 HU) and enhancing tissue.
    """
    low, high = level_hu - width_hu / 2.0, level_hu + width_hu / 2.0
    return sitk.Clamp(ct, sitk.sitkFloat32, low, high)  # casts and clips in one pass: one float copy, not two
