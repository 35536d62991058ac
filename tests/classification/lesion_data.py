"""Synthetic lesions for the classifier tests, made with the project's generator
(``make_lesion_patch``) and written in the converter's layout (``lesions.csv`` + ``crops/``) with the
converter's own crop function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.crops import lesion_crop
from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.io import write_image
from renal_nnunet.synthetic import make_lesion_patch

GRID = 32
PATCH_ZYX = (32, 32, 32)
TRAIN_SEEDS = range(12)  # per class
HELD_OUT_SEEDS = range(100, 108)  # per class, never seen in training


def write_lesion_folder(root: Path, seeds, grid: int = GRID, folds: int = 3) -> Path:
    """One patch = one case = one patient with one lesion; folds cycle over patients."""
    rows = []
    for kind in LESION_CLASSES:
        for seed in seeds:
            ct, mask = make_lesion_patch(kind, seed, PATCH_ZYX)
            case_id = f"case_{kind}_{seed:03d}"
            crop, _ = lesion_crop(ct, mask, grid, 1)
            write_image(crop, root / "crops" / f"{case_id}_1.nii.gz")
            rows.append({"case_id": case_id, "patient_id": f"patient_{kind}_{seed}", "side": "left", "lesion_id": 1,
                         "lesion_class": kind, "fold": len(rows) % folds})
    rows.append({"case_id": "case_unknown", "patient_id": "patient_unknown", "side": "left", "lesion_id": 1,
                 "lesion_class": "unknown", "fold": 0})  # no histology: must be left out (and has no crop)
    pd.DataFrame(rows).to_csv(root / "lesions.csv", index=False)
    return root


def mosaic(patches: list[tuple[str, sitk.Image, sitk.Image]],
           gap_voxels: int = 4) -> tuple[sitk.Image, sitk.Image, list[str]]:
    """Lay equally sized patches side by side along x (patient left) in one CT; lesion k + 1 is
    patches[k].

    Returns (ct, lesion_mask uint16, kinds); the CT has a non-trivial origin, and the gaps (renal
    cortex HU of the first patch) keep every lesion off the others and off the image border.
    """
    cortex_hu = int(np.median(sitk.GetArrayViewFromImage(patches[0][1])))
    ct_parts, mask_parts = [], []
    for number, (_, ct, mask) in enumerate(patches, start=1):
        gap = np.full(sitk.GetArrayViewFromImage(ct).shape[:2] + (gap_voxels,), cortex_hu, np.int16)
        ct_parts += [gap, sitk.GetArrayFromImage(ct).astype(np.int16)]
        mask_parts += [np.zeros(gap.shape, np.uint16), sitk.GetArrayFromImage(mask).astype(np.uint16) * number]
    ct_parts.append(ct_parts[0])
    mask_parts.append(mask_parts[0])
    ct_image = sitk.GetImageFromArray(np.concatenate(ct_parts, axis=2))
    ct_image.SetSpacing(patches[0][1].GetSpacing())
    ct_image.SetOrigin((-210.5, 40.0, -700.25))
    mask_image = sitk.GetImageFromArray(np.concatenate(mask_parts, axis=2))
    mask_image.CopyInformation(ct_image)
    return ct_image, mask_image, [kind for kind, _, _ in patches]
