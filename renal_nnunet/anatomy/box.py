"""A box of voxels: the crop boxes of the cascade, the converter and the classifier, and the regions
that map-back and evaluation work on.

A :class:`Box` is given in ITK (x, y, z) voxel order, as SimpleITK sizes and indices are;
:attr:`Box.slices` gives the numpy (z, y, x) slices of an array from ``sitk.GetArrayFromImage``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["Box", "bounding_box_with_margin"]


def _ints(values: Sequence) -> tuple[int, int, int]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class Box:
    """A box of voxels, ITK (x, y, z) order.

    Attributes:
        start: first voxel of the box (voxel indices).
        size: voxels along each axis (0 on some axis: an empty box).
    """

    start: tuple[int, int, int]
    size: tuple[int, int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _ints(self.start))
        object.__setattr__(self, "size", _ints(self.size))
        if len(self.start) != 3 or len(self.size) != 3 or min(self.size) < 0:
            raise ValueError(f"a box needs 3 start and 3 non-negative size values, got {self.start}, {self.size}")

    @classmethod
    def whole(cls, size: Sequence[int]) -> "Box":
        """The box covering an image of ``size`` voxels (ITK x, y, z)."""
        return cls((0, 0, 0), size)

    @classmethod
    def of_nonzero(cls, array_zyx: np.ndarray) -> "Box":
        """The smallest box holding every nonzero voxel of a numpy (z, y, x) array; an empty box
        (size 0) when there is none. Work on a long CT's kidneys or masses there, not on
        full-size arrays."""
        start, stop = [], []
        for axis in range(3):
            hits = np.flatnonzero(array_zyx.any(axis=tuple(a for a in range(3) if a != axis)))
            start.append(int(hits[0]) if len(hits) else 0)
            stop.append(int(hits[-1]) + 1 if len(hits) else 0)
        return cls(start[::-1], np.subtract(stop, start)[::-1])

    @property
    def stop(self) -> tuple[int, int, int]:
        """One past the last voxel along each axis (ITK x, y, z)."""
        return _ints(np.add(self.start, self.size))

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """Numpy (z, y, x) slices of the box.

        >>> Box((1, 2, 3), (4, 5, 6)).slices
        (slice(3, 9, None), slice(2, 7, None), slice(1, 5, None))
        """
        return tuple(slice(s, s + n) for s, n in zip(reversed(self.start), reversed(self.size)))

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """The numpy shape (z, y, x) of an array on the box."""
        return tuple(reversed(self.size))

    @property
    def is_empty(self) -> bool:
        """Whether the box holds no voxel."""
        return min(self.size) == 0

    def grow(self, voxels: Sequence[int] | int) -> "Box":
        """The box grown by ``voxels`` on each side (per axis, ITK x, y, z), not clipped.

        >>> Box((5, 5, 5), (2, 2, 2)).grow((1, 2, 3))
        Box(start=(4, 3, 2), size=(4, 6, 8))
        """
        pad = np.broadcast_to(np.asarray(voxels, int), (3,))
        return Box(np.subtract(self.start, pad), np.asarray(self.size) + 2 * pad)

    def clipped_to(self, image_size: Sequence[int]) -> "Box":
        """The part of the box inside an image of ``image_size`` voxels (ITK x, y, z).

        >>> Box((-2, 3, 0), (5, 10, 4)).clipped_to((10, 10, 10))
        Box(start=(0, 3, 0), size=(3, 7, 4))
        """
        low = np.clip(self.start, 0, image_size)
        high = np.clip(self.stop, low, image_size)
        return Box(low, high - low)

    def union(self, other: "Box") -> "Box":
        """The smallest box holding both boxes.

        >>> Box((0, 0, 0), (2, 2, 2)).union(Box((5, 1, 0), (1, 1, 1)))
        Box(start=(0, 0, 0), size=(6, 2, 2))
        """
        low = np.minimum(self.start, other.start)
        return Box(low, np.maximum(self.stop, other.stop) - low)

    def relative_to(self, outer: "Box") -> "Box":
        """This box in the voxels of ``outer`` (its start counted from ``outer``'s first voxel)."""
        return Box(np.subtract(self.start, outer.start), self.size)

    def contains(self, other: "Box") -> bool:
        """Whether ``other`` lies inside this box."""
        return bool((np.asarray(other.start) >= self.start).all() and (np.asarray(other.stop) <= self.stop).all())


def bounding_box_with_margin(mask_zyx: np.ndarray, spacing_xyz_mm: Sequence[float], margin_mm: float) -> Box:
    """Bounding box of a boolean mask grown by ``margin_mm`` on every side, clipped to the image.

    Args:
        mask_zyx: boolean mask in numpy (z, y, x) order.
        spacing_xyz_mm: voxel spacing in ITK (x, y, z) order, mm.
        margin_mm: margin added on each side, mm (at least 0): whole voxels, rounded up.

    Raises:
        ValueError: the mask is empty, or the margin is negative.
    """
    if margin_mm < 0:
        raise ValueError(f"the margin must be at least 0 mm, got {margin_mm:g}")
    box = Box.of_nonzero(mask_zyx)
    if box.is_empty:
        raise ValueError("cannot take the bounding box of an empty mask")
    pad = np.ceil(margin_mm / np.asarray(spacing_xyz_mm, float)).astype(int)
    return box.grow(pad).clipped_to(mask_zyx.shape[::-1])
