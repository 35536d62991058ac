"""Small masks and label maps with known properties, shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


def random_blob(shape: tuple[int, int, int], seed: int, smoothing: float = 2.5, level: float = 0.52) -> np.ndarray:
    """An irregular, possibly multi-part blob: thresholded smoothed noise."""
    noise = np.random.default_rng(seed).random(shape)
    return ndimage.gaussian_filter(noise, smoothing) > level


def ball(shape: tuple[int, int, int], centre_zyx, radius_vox) -> np.ndarray:
    """Boolean ellipsoid; ``radius_vox`` per axis (voxels)."""
    grid = np.indices(shape, dtype=float)
    radius = np.broadcast_to(np.asarray(radius_vox, float), (3,))
    return sum(((grid[i] - centre_zyx[i]) / radius[i]) ** 2 for i in range(3)) <= 1.0


def kits_kidney_crop(kits23_dataset: Path, case_id: str, margin_vox: int = 3) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A real KiTS23 label map cropped around its labelled voxels, and its spacing (mm, numpy order)."""
    image = sitk.ReadImage(str(kits23_dataset / case_id / "segmentation.nii.gz"))
    labels = sitk.GetArrayFromImage(image)
    coords = np.nonzero(labels)
    box = tuple(slice(max(int(c.min()) - margin_vox, 0), int(c.max()) + 1 + margin_vox) for c in coords)
    return labels[box], tuple(float(s) for s in reversed(image.GetSpacing()))
