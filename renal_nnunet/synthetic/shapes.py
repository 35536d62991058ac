"""Rasterise solids placed in patient coordinates (LPS mm) onto an image's voxel grid.

Shapes are defined in physical millimetres and only then sampled at the voxel centres of a given
grid (:class:`renal_nnunet.anatomy.geometry.ImageGeometry`), so anatomy stays correct for any
origin, spacing and direction (including axis permutations
and flips). Work is restricted to each shape's bounding box, and array axes along which the shape
does not vary (e.g. the slice axis for a cylinder along the patient's z) are kept at length 1 and
broadcast, which keeps painting a 512x512x700 CT fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renal_nnunet.anatomy.geometry import ImageGeometry

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Ellipsoid:
    """A solid ellipsoid in patient coordinates; an infinite semi-axis makes an elliptic cylinder.

    Attributes:
        centre_mm: centre (LPS mm: +x patient left, +y posterior, +z superior).
        semi_axes_mm: half-lengths along the three local axes, mm (``np.inf`` allowed).
        rotation: 3x3 row-major matrix whose columns are the local axes expressed in LPS.
    """

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    rotation: tuple[float, ...] = _IDENTITY


def _index_box(geometry: ImageGeometry, shape: Ellipsoid) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive ITK-index bounding box (x, y, z) of ``shape`` on the grid, or None if outside."""
    rotation = np.asarray(shape.rotation, float).reshape(3, 3)
    semi = np.asarray(shape.semi_axes_mm, float)
    finite = np.isfinite(semi)
    half = np.sqrt(((rotation[:, finite] * semi[finite]) ** 2).sum(1))
    unbounded = (np.abs(rotation[:, ~finite]) > 1e-9).any(1)
    grid_low, grid_high = geometry.patient_bounds_mm()
    centre = np.asarray(shape.centre_mm, float)
    low = np.where(unbounded, grid_low, np.maximum(centre - half, grid_low))
    high = np.where(unbounded, grid_high, np.minimum(centre + half, grid_high))
    if np.any(low > high):
        return None
    corners = np.array([[a, b, c] for a in (low[0], high[0]) for b in (low[1], high[1]) for c in (low[2], high[2])])
    indices = geometry.mm_to_index(corners)
    size = np.asarray(geometry.size)
    first = np.clip(np.floor(indices.min(0) - 1e-6).astype(int), 0, size - 1)
    last = np.clip(np.ceil(indices.max(0) + 1e-6).astype(int), 0, size - 1)
    return first, last


def rasterise(geometry: ImageGeometry, shape: Ellipsoid) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """Voxels of ``geometry`` whose centres lie inside ``shape``.

    Returns:
        ``(slices, mask)``: numpy (z, y, x) slices of the shape's bounding box, and a boolean mask
        broadcastable to that box (length 1 along axes where the shape does not vary); None when
        the shape misses the grid.
    """
    box = _index_box(geometry, shape)
    if box is None:
        return None
    first, last = box
    rotation = np.asarray(shape.rotation, float).reshape(3, 3)
    semi = np.asarray(shape.semi_axes_mm, float)
    # Local coordinate u = R^T (p - c) with p = origin + M idx: affine in each ITK index axis.
    to_local = rotation.T @ geometry.index_to_patient
    offset = rotation.T @ (geometry.index_to_mm(first)[0] - np.asarray(shape.centre_mm))
    used_axes = [a for a in range(3) if np.any(np.abs(to_local[np.isfinite(semi), a]) > 1e-9)]
    quadratic = np.zeros((1, 1, 1), np.float32)
    for k in np.flatnonzero(np.isfinite(semi)):
        local = np.full((1, 1, 1), offset[k], np.float32)
        for a in used_axes:
            steps = np.arange(last[a] - first[a] + 1, dtype=np.float32) * np.float32(to_local[k, a])
            local = local + steps.reshape([-1 if 2 - d == a else 1 for d in range(3)])
        quadratic = quadratic + (local / np.float32(semi[k])) ** 2
    slices = tuple(slice(int(first[2 - d]), int(last[2 - d]) + 1) for d in range(3))
    return slices, quadratic <= 1.0


def paint(volume: np.ndarray, geometry: ImageGeometry, shape: Ellipsoid, value: float) -> None:
    """Set the voxels of ``volume`` (z, y, x) inside ``shape`` to ``value``, in place."""
    region = rasterise(geometry, shape)
    if region is not None:
        slices, mask = region
        np.copyto(volume[slices], volume.dtype.type(value), where=mask)


def rotation_deg(about_x: float, about_y: float, about_z: float) -> tuple[float, ...]:
    """Row-major rotation matrix Rz @ Ry @ Rx about the LPS axes (angles in degrees)."""
    cx, cy, cz = np.cos(np.deg2rad([about_x, about_y, about_z]))
    sx, sy, sz = np.sin(np.deg2rad([about_x, about_y, about_z]))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return tuple(float(v) for v in (rz @ ry @ rx).ravel())
