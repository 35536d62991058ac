"""The union-box crop every metric uses: two masks cut to the box around their voxels.

A metric of two masks depends only on the voxels near them, so surface metrics, KiTS metrics,
lesion matching and whole-case evaluation all cut the arrays to this box first (whole-abdomen
volumes shrink to the kidneys' region). Boxes are numpy-order (z, y, x) slices.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["union_box", "crop_to_union"]


def union_box(masks: Sequence[np.ndarray], margin_voxels: int = 1) -> tuple[slice, ...] | None:
    """The bounding box of every nonzero voxel of ``masks``, grown by ``margin_voxels`` per side.

    Args:
        masks: arrays of one shape, numpy (z, y, x) order; nonzero voxels count.
        margin_voxels: voxels added on each side, clipped to the array.

    Returns:
        One slice per axis, or None when every mask is empty.

    >>> a = np.zeros((4, 5, 6), bool); a[1, 2, 3] = True
    >>> union_box([a, np.zeros_like(a)])
    (slice(0, 3, None), slice(1, 4, None), slice(2, 5, None))
    >>> union_box([a], margin_voxels=0)
    (slice(1, 2, None), slice(2, 3, None), slice(3, 4, None))
    """
    shapes = {np.shape(m) for m in masks}
    if len(shapes) != 1:
        raise ValueError(f"masks differ in shape: {sorted(shapes)}")
    union = np.logical_or.reduce([np.asarray(m) != 0 for m in masks])
    if not union.any():
        return None
    box = []
    for axis in range(union.ndim):
        occupied = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        box.append(slice(max(int(occupied[0]) - margin_voxels, 0), min(int(occupied[-1]) + 1 + margin_voxels, union.shape[axis])))
    return tuple(box)


def crop_to_union(a: np.ndarray, b: np.ndarray, margin_voxels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` cut to :func:`union_box` (unchanged when both are empty)."""
    box = union_box((a, b), margin_voxels)
    return (a, b) if box is None else (a[box], b[box])
