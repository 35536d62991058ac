"""Lesions (renal masses) as connected components, with sizes in patient units.

Definition used throughout the package (evaluation and pipeline reuse it):

``average_diameter_mm`` is the mean of the three principal diameters of the ellipsoid that has the
same second moments as the lesion, measured in patient mm: with ``l1..l3`` the eigenvalues of the
covariance of the lesion's points (voxel centres plus each voxel's own extent, ``spacing**2 / 12``
per axis), the diameters are ``2 * sqrt(5 * l_i)``. It equals ``d`` for a ball of diameter ``d`` and
``(a + b + c) / 3`` for an ellipsoid with diameters ``a, b, c``, in any orientation and voxel
spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.anatomy.geometry import image_like, physical_points_mm

__all__ = ["LesionProperties", "lesion_components", "average_diameter_mm", "lesion_properties"]


@dataclass(frozen=True)
class LesionProperties:
    """One lesion's size and position.

    Attributes:
        lesion_id: its value in the component image (1..N).
        voxel_count: voxels in the lesion.
        volume_ml: volume in ml.
        average_diameter_mm: see the module docstring.
        centroid_mm: centroid in patient LPS mm (x: +left, y: +posterior, z: +superior).
        bbox: the lesion's bounding box (ITK x, y, z voxels).
    """

    lesion_id: int
    voxel_count: int
    volume_ml: float
    average_diameter_mm: float
    centroid_mm: tuple[float, float, float]
    bbox: Box


def lesion_components(mask: sitk.Image, connectivity: int = 26) -> sitk.Image:
    """Label the connected components of a mask's nonzero voxels 1..N.

    Ids are ordered by decreasing volume, ties broken by the centroid's LPS (x, y, z), so they do
    not depend on the array's axis order.

    Args:
        mask: any image; nonzero voxels are lesion.
        connectivity: 6, 18 or 26 (cc3d's neighbourhoods).

    Returns:
        uint16 image (uint32 beyond 65535 components) on ``mask``'s grid, 0 = background.
    """
    array = sitk.GetArrayViewFromImage(mask) != 0
    # Masses fill a small box of a CT: label that box, not a full-size uint32 array per step.
    box = Box.of_nonzero(array)
    components, count = cc3d.connected_components(array[box.slices], connectivity=connectivity, return_N=True)
    dtype = np.uint16 if count < 2**16 else np.uint32
    if count:
        stats = cc3d.statistics(components)
        offset_zyx = np.array(box.start[::-1], float)
        centroids_mm = physical_points_mm(mask, stats["centroids"][1:] + offset_zyx)
        order = np.lexsort((centroids_mm[:, 2], centroids_mm[:, 1], centroids_mm[:, 0], -stats["voxel_counts"][1:]))
        new_ids = np.zeros(count + 1, dtype)
        new_ids[order + 1] = np.arange(1, count + 1)
        components = new_ids[components]
    labelled = np.zeros(array.shape, dtype)
    labelled[box.slices] = components
    return image_like(labelled, mask)



def average_diameter_mm(mask: sitk.Image, label: int | None = None) -> float:
    """Average diameter of a lesion in mm (definition in the module docstring).

    Args:
        mask: a lesion mask (nonzero) or a component image.
        label: if given, the lesion is ``mask == label``.

    Returns:
        The diameter in mm; 0.0 for an empty mask.
    """
    array = sitk.GetArrayViewFromImage(mask)
    indices = np.argwhere(array != 0 if label is None else array == label)
    return _average_diameter_from_indices(mask, indices)


def _average_diameter_from_indices(image: sitk.Image, indices_zyx: np.ndarray) -> float:
    if not len(indices_zyx):
        return 0.0
    points = physical_points_mm(image, indices_zyx)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    voxel_covariance = direction @ np.diag(np.asarray(image.GetSpacing()) ** 2 / 12.0) @ direction.T
    covariance = (np.cov(points, rowvar=False, bias=True) if len(points) > 1 else np.zeros((3, 3))) + voxel_covariance
    eigenvalues = np.clip(np.linalg.eigvalsh(covariance), 0.0, None)
    return float(np.mean(2.0 * np.sqrt(5.0 * eigenvalues)))


def lesion_properties(components: sitk.Image) -> list[LesionProperties]:
    """Size and position of every lesion in a component image (from :func:`lesion_components`)."""
    array = sitk.GetArrayViewFromImage(components)
    voxel_ml = float(np.prod(components.GetSpacing())) / 1000.0
    indices = np.argwhere(array > 0)
    ids = array[tuple(indices.T)]
    order = np.argsort(ids, kind="stable")
    ids, indices = ids[order], indices[order]
    properties = []
    for lesion_id, start in zip(*np.unique(ids, return_index=True)):
        stop = np.searchsorted(ids, lesion_id, side="right")
        voxels = indices[start:stop]
        low, high = voxels.min(axis=0), voxels.max(axis=0) + 1
        properties.append(LesionProperties(
            lesion_id=int(lesion_id),
            voxel_count=len(voxels),
            volume_ml=len(voxels) * voxel_ml,
            average_diameter_mm=_average_diameter_from_indices(components, voxels),
            centroid_mm=tuple(float(v) for v in physical_points_mm(components, voxels.mean(axis=0, keepdims=True))[0]),
            bbox=Box(low[::-1], (high - low)[::-1]),
        ))
    return properties
