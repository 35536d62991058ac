"""Fixed-grid resampling with exact mapping back, and patient coordinates.

The paper resizes whole CTs (and kidney crops) to 128x128x128. This module does that resize in a
way that can be undone exactly: a :class:`GridSidecar` records the source geometry and the crop box,
and :func:`resample_from_grid` puts grid-space arrays (labels or class probabilities) back onto the
source voxels.

Conventions:
    * ITK index order (x, y, z) for ``crop_start``/``crop_size``/sizes in sidecars; numpy arrays
      from SimpleITK are (z, y, x).
    * Patient coordinates are ITK's LPS+: +x is the patient's LEFT, +y posterior, +z superior (mm).
    * Grid voxel ``g`` (per axis) has its centre at source continuous index
      ``start - 0.5 + (g + 0.5) * size / grid`` (counted from the other end on a flipped axis):
      the grid tiles the crop box edge to edge.
    * The grid's axes are the source's axes reordered/flipped to run closest to patient LPS, so the
      networks see every CT in one anatomical orientation whatever its storage order.
    * A grid image written for nnU-Net keeps the source's origin and (reordered) direction cosines
      with a nominal 1 mm spacing, so stock planning does not resample it again; the true
      geometry lives in the sidecar only.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.io import InputError, write_json

__all__ = [
    "ImageGeometry",
    "GridSidecar",
    "resample_to_grid",
    "resample_from_grid",
    "grid_image_physical",
    "canonical_axes",
    "physical_points_mm",
    "patient_left_mm",
    "bounding_box_with_margin",
    "box_slices",
    "paste_on_grid",
    "nonzero_box",
    "image_like",
]

Interpolation = Literal["nearest", "linear", "label"]


@dataclass(frozen=True)
class ImageGeometry:
    """Voxel grid of an image, all in ITK (x, y, z) order: the one description of a geometry
    (the grid sidecar extends it with the crop box; the synthetic phantoms paint on it).

    Attributes:
        size: image size in voxels.
        spacing_mm: voxel spacing in mm.
        origin_mm: centre of the first voxel (LPS mm).
        direction: direction cosines, 9 values row-major.
    """

    size: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "ImageGeometry":
        """The geometry of an image."""
        return cls(tuple(int(s) for s in image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(o) for o in image.GetOrigin()), tuple(float(d) for d in image.GetDirection()))

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """The numpy array shape (z, y, x) of an image on this grid."""
        return tuple(reversed(self.size))

    @property
    def index_to_patient(self) -> np.ndarray:
        """3x3 matrix mapping an ITK (x, y, z) index offset to an LPS offset in mm."""
        return np.asarray(self.direction, float).reshape(3, 3) * np.asarray(self.spacing_mm, float)

    def patient_bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS min and max corner (mm) of the box spanned by the voxel centres."""
        size = np.asarray(self.size) - 1
        corners = np.array([[i, j, k] for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])], float)
        points = np.asarray(self.origin_mm) + corners @ self.index_to_patient.T
        return points.min(0), points.max(0)

    def centre_mm(self) -> np.ndarray:
        """LPS position (mm) of the grid's centre."""
        low, high = self.patient_bounds_mm()
        return (low + high) / 2

    def box(self, start: Sequence[int], size: Sequence[int]) -> "ImageGeometry":
        """The geometry of a box of this grid (ITK (x, y, z) voxel start and size): the same
        spacing and direction, the origin at the box's first voxel."""
        origin = np.asarray(self.origin_mm, float) + self.index_to_patient @ np.asarray(start, float)
        return ImageGeometry(tuple(int(s) for s in size), self.spacing_mm, tuple(float(o) for o in origin),
                             self.direction)

    def reference_image(self) -> sitk.Image:
        """An empty (uint8) image on this grid, to resample onto or copy information from."""
        ref = sitk.Image([int(s) for s in self.size], sitk.sitkUInt8)
        ref.SetSpacing(self.spacing_mm)
        ref.SetOrigin(self.origin_mm)
        ref.SetDirection(self.direction)
        return ref


@dataclass(frozen=True)
class GridSidecar(ImageGeometry):
    """Source geometry (the :class:`ImageGeometry` fields) and crop box of a grid-resampled image,
    all in ITK (x, y, z) order.

    Attributes:
        crop_start: first source voxel of the crop box.
        crop_size: crop box size in source voxels (the whole image when not cropped).
        grid: grid edge length in voxels (the grid is grid x grid x grid).
    """

    crop_start: tuple[int, int, int]
    crop_size: tuple[int, int, int]
    grid: int

    @property
    def grid_spacing_mm(self) -> np.ndarray:
        """True physical spacing of the grid voxels in mm, (x, y, z)."""
        return np.asarray(self.crop_size, float) * np.asarray(self.spacing_mm) / self.grid

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the sidecar atomically as JSON."""
        return write_json(asdict(self), path)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "GridSidecar":
        """Read a sidecar written by :meth:`to_json`."""
        import json

        try:
            data = json.loads(Path(path).read_text())
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        except (OSError, ValueError, TypeError) as err:
            raise InputError(path, f"not a valid grid sidecar: {err}") from None


def _sidecar_for(image: sitk.Image, grid: int, crop_start, crop_size) -> GridSidecar:
    size = tuple(int(s) for s in image.GetSize())
    start = (0, 0, 0) if crop_start is None else tuple(int(s) for s in crop_start)
    extent = size if crop_size is None else tuple(int(s) for s in crop_size)
    for axis in range(3):
        if extent[axis] < 1 or start[axis] < 0 or start[axis] + extent[axis] > size[axis]:
            raise ValueError(f"crop box start {start} size {extent} lies outside the image of size {size}")
    if grid < 2:
        raise ValueError(f"grid must be at least 2 voxels, got {grid}")
    return GridSidecar(**asdict(ImageGeometry.of(image)), crop_start=start, crop_size=extent, grid=int(grid))


def canonical_axes(direction: Sequence[float]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Which source axis (and sign) best matches each patient axis (LPS x, y, z).

    Returns ``(source_axis, sign)`` per patient axis, so that the grid's axis ``k`` runs along
    source axis ``source_axis[k]`` in direction ``sign[k]``. For a direction that is not close to
    a signed permutation (ties at 45 degrees) the source axes are kept as they are.
    """
    matrix = np.asarray(direction, float).reshape(3, 3)
    source_axis = tuple(int(np.argmax(np.abs(matrix[k]))) for k in range(3))
    if sorted(source_axis) != [0, 1, 2]:
        source_axis = (0, 1, 2)
    sign = tuple(1 if matrix[k, j] >= 0 else -1 for k, j in enumerate(source_axis))
    return source_axis, sign


def grid_image_physical(sidecar: GridSidecar) -> sitk.Image:
    """An empty grid image carrying the grid's true physical geometry (not the nominal 1 mm).

    The grid's axes are the source axes reordered and flipped to run closest to patient LPS x, y, z
    (:func:`canonical_axes`): every CT, whatever its stored orientation, reaches the network with
    the same anatomy along the same array axis, so a kidney model trained on KiTS (stored
    inferior-posterior-left) also reads a DICOM series (stored left-posterior-superior) correctly.
    """
    direction = np.asarray(sidecar.direction).reshape(3, 3)
    spacing = np.asarray(sidecar.spacing_mm)
    start, extent = np.asarray(sidecar.crop_start, float), np.asarray(sidecar.crop_size, float)
    source_axis, sign = canonical_axes(sidecar.direction)
    first_centre_index = np.empty(3)
    grid_spacing, grid_direction = np.empty(3), np.empty((3, 3))
    for k, (j, s) in enumerate(zip(source_axis, sign)):
        half_cell = 0.5 * extent[j] / sidecar.grid
        first_centre_index[j] = start[j] - 0.5 + half_cell if s > 0 else start[j] + extent[j] - 0.5 - half_cell
        grid_spacing[k] = extent[j] * spacing[j] / sidecar.grid
        grid_direction[:, k] = s * direction[:, j]
    origin = np.asarray(sidecar.origin_mm) + direction @ (spacing * first_centre_index)
    ref = sitk.Image([sidecar.grid] * 3, sitk.sitkUInt8)
    ref.SetSpacing(tuple(grid_spacing))
    ref.SetOrigin(tuple(origin))
    ref.SetDirection(tuple(grid_direction.ravel()))
    return ref


_ITK_INTERPOLATORS = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "label": sitk.sitkLabelGaussian}


def resample_to_grid(
    image: sitk.Image,
    grid: int,
    interpolation: Interpolation = "linear",
    crop_start: Sequence[int] | None = None,
    crop_size: Sequence[int] | None = None,
    intensity_map: Callable[[sitk.Image], sitk.Image] | None = None,
) -> tuple[sitk.Image, GridSidecar]:
    """Resample ``image`` (or a crop box of it) to a ``grid``^3 image.

    Args:
        image: source image (CT in HU, or a label map).
        grid: edge length of the cubic output grid, in voxels (the paper uses 128).
        interpolation: ``linear`` for CT, ``nearest`` or ``label`` (smooth label-Gaussian) for labels.
        crop_start: first voxel of the crop box, ITK (x, y, z) order; default the whole image.
        crop_size: crop box size in voxels, ITK (x, y, z) order.
        intensity_map: a voxel-wise map (e.g. the CT window) applied to the source before
            resampling; with a crop box only the voxels the interpolation reads are mapped, so a
            kidney box of a 700-slice CT never makes a full-size float copy.

    Returns:
        The grid image (what nnU-Net is given): the source's origin, the source's direction
        cosines reordered to run closest to LPS (see :func:`grid_image_physical`) and a nominal
        1 mm spacing; and the sidecar that maps it back.
    """
    sidecar = _sidecar_for(image, grid, crop_start, crop_size)
    reference = grid_image_physical(sidecar)
    source = image
    if interpolation != "label":  # the label-Gaussian kernel reads further than one voxel
        source = _interpolation_region(image, sidecar.crop_start, sidecar.crop_size)
    if intensity_map is not None:
        source = intensity_map(source)
    resampled = sitk.Resample(
        source, reference, sitk.Transform(), _ITK_INTERPOLATORS[interpolation], 0.0, source.GetPixelID(),
        True,  # nearest-neighbour extrapolation: grid centres half a voxel inside the box edge stay defined
    )
    resampled.SetSpacing((1.0, 1.0, 1.0))
    resampled.SetOrigin(image.GetOrigin())
    return resampled, sidecar


def _interpolation_region(image: sitk.Image, start: Sequence[int], size: Sequence[int]) -> sitk.Image:
    """The crop box grown by one voxel per side (clipped to the image): every voxel that linear or
    nearest interpolation reads at grid centres inside the box (they lie at most half a voxel
    beyond the box's outer voxel centres). The whole image when the box is (nearly) all of it."""
    low = np.maximum(np.asarray(start, int) - 1, 0)
    high = np.minimum(np.asarray(start, int) + np.asarray(size, int) + 1, image.GetSize())
    if np.array_equal(low, 0) and np.array_equal(high, image.GetSize()):
        return image
    return sitk.RegionOfInterest(image, [int(v) for v in high - low], [int(v) for v in low])


def resample_from_grid(
    array: np.ndarray,
    sidecar: GridSidecar,
    interpolation: Interpolation = "linear",
    fill_value: float = 0.0,
    crop_only: bool = False,
    region: tuple[Sequence[int], Sequence[int]] | None = None,
) -> np.ndarray:
    """Map a grid-space array back onto the source voxels.

    Args:
        array: grid array (z, y, x) = (grid, grid, grid), or channels-first (C, grid, grid, grid),
            e.g. nnU-Net class probabilities.
        sidecar: the sidecar written when the grid image was made.
        interpolation: ``nearest`` for labels, ``linear`` for probabilities or intensities.
        fill_value: value outside the crop box (for probabilities pass per-channel handling by
            calling once per channel, or use 0 and renormalise).
        crop_only: return only the crop box's voxels (saves memory when the box is a small part
            of a large CT).
        region: ``(start, size)`` in ITK (x, y, z) source voxels, inside the crop box: return only
            these voxels (as ``crop_only`` does for the box), e.g. a slab of a long CT.

    Returns:
        An array in the source's (z, y, x) shape, the crop box's with ``crop_only``, or the
        region's (channels first if the input had channels).
    """
    array = np.asarray(array)
    expected = (sidecar.grid,) * 3
    if array.shape[-3:] != expected or array.ndim not in (3, 4):
        raise ValueError(f"array of shape {array.shape} does not match grid {expected} (optionally channels first)")
    if array.ndim == 4:  # channel by channel into one array: no list of channels beside their stack
        out = None
        for index, channel in enumerate(array):
            back = resample_from_grid(channel, sidecar, interpolation, fill_value, crop_only, region)
            if out is None:
                out = np.empty((len(array), *back.shape), back.dtype)
            out[index] = back
        return out
    grid_image = image_like(array, grid_image_physical(sidecar))
    start, extent = np.asarray(sidecar.crop_start), np.asarray(sidecar.crop_size)
    wanted_start, wanted_size = (start, extent) if region is None else map(np.asarray, region)
    if (wanted_start < start).any() or (wanted_start + wanted_size > start + extent).any():
        raise ValueError(f"region {region} is not inside the crop box (start {start.tolist()}, size {extent.tolist()})")
    crop_ref = sidecar.box(wanted_start, wanted_size).reference_image()  # not the whole CT's
    back = sitk.Resample(grid_image, crop_ref, sitk.Transform(), _ITK_INTERPOLATORS[interpolation], 0.0,
                         grid_image.GetPixelID(), True)
    if crop_only or region is not None:
        return sitk.GetArrayFromImage(back)
    out = np.full(tuple(reversed(sidecar.size)), fill_value, dtype=array.dtype)
    out[start[2]:start[2] + extent[2], start[1]:start[1] + extent[1], start[0]:start[0] + extent[0]] = (
        sitk.GetArrayFromImage(back)
    )
    return out


def physical_points_mm(image: sitk.Image, indices_zyx: np.ndarray) -> np.ndarray:
    """Patient (LPS) coordinates in mm of voxel indices given in numpy (z, y, x) order.

    Args:
        image: the image whose geometry defines the mapping.
        indices_zyx: (N, 3) array of (possibly fractional) voxel indices, numpy order.

    Returns:
        (N, 3) array of LPS coordinates in mm (x: +left, y: +posterior, z: +superior).
    """
    indices_xyz = np.asarray(indices_zyx, float).reshape(-1, 3)[:, ::-1]
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    return np.asarray(image.GetOrigin()) + (indices_xyz * np.asarray(image.GetSpacing())) @ direction.T


def patient_left_mm(image: sitk.Image, indices_zyx: np.ndarray) -> np.ndarray:
    """Position along the patient's right-to-left axis (LPS x, mm; larger = further LEFT)."""
    return physical_points_mm(image, indices_zyx)[:, 0]


def bounding_box_with_margin(
    mask_zyx: np.ndarray, spacing_xyz_mm: Sequence[float], margin_mm: float
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Bounding box of a boolean mask grown by ``margin_mm`` on every side, clipped to the image.

    Args:
        mask_zyx: boolean mask in numpy (z, y, x) order.
        spacing_xyz_mm: voxel spacing in ITK (x, y, z) order, mm.
        margin_mm: margin added on each side, mm.

    Returns:
        ``(start, size)`` in ITK (x, y, z) order, ready for :func:`resample_to_grid`.

    Raises:
        ValueError: the mask is empty.
    """
    if not mask_zyx.any():
        raise ValueError("cannot take the bounding box of an empty mask")
    shape_xyz = np.asarray(mask_zyx.shape[::-1])
    coords = np.nonzero(mask_zyx)
    low = np.array([c.min() for c in coords])[::-1]
    high = np.array([c.max() for c in coords])[::-1] + 1
    pad = np.ceil(margin_mm / np.asarray(spacing_xyz_mm, float)).astype(int)
    low = np.maximum(low - pad, 0)
    high = np.minimum(high + pad, shape_xyz)
    return tuple(int(v) for v in low), tuple(int(v) for v in high - low)


def box_slices(start: Sequence[int], size: Sequence[int]) -> tuple[slice, slice, slice]:
    """Numpy (z, y, x) slices of a box given as ITK (x, y, z) voxel ``start`` and ``size``.

    >>> box_slices((1, 2, 3), (4, 5, 6))
    (slice(3, 9, None), slice(2, 7, None), slice(1, 5, None))
    """
    return tuple(slice(int(s), int(s) + int(n)) for s, n in zip(reversed(start), reversed(size)))


def nonzero_box(array: np.ndarray) -> tuple[slice, ...]:
    """Numpy slices of the smallest box holding every nonzero voxel of an array (an empty box for
    none): work on a long CT's kidneys or masses there, not on full-size arrays."""
    slices = []
    for axis in range(array.ndim):
        hits = np.flatnonzero(array.any(axis=tuple(a for a in range(array.ndim) if a != axis)))
        slices.append(slice(int(hits[0]), int(hits[-1]) + 1) if len(hits) else slice(0, 0))
    return tuple(slices)


def image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """An array (numpy z, y, x) as an image on ``reference``'s grid (its size, spacing, origin and
    direction): the one place an image is made from an array that lies on a known grid.

    Raises:
        ValueError: the array's shape is not the reference's size reversed.
    """
    if tuple(array.shape) != tuple(reversed(reference.GetSize())):
        raise ValueError(f"array of shape {array.shape} (z, y, x) is not on the grid of an image of size "
                         f"{reference.GetSize()} (x, y, z)")
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def paste_on_grid(region: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """A sub-grid image (e.g. a map computed only in a lesion's box) placed onto ``reference``'s
    full grid, 0 elsewhere.

    Args:
        region: same spacing and direction as ``reference``, its origin on one of ``reference``'s
            voxel centres (as ``sitk.RegionOfInterest`` makes it, or a reorientation of that).
        reference: the full grid.

    Raises:
        ValueError: ``region`` is not a sub-grid of ``reference``.
    """
    region = sitk.DICOMOrient(region, sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        reference.GetDirection()))
    index = np.asarray(reference.TransformPhysicalPointToContinuousIndex(region.GetOrigin()))
    start = np.round(index).astype(int)
    if (not np.allclose(region.GetSpacing(), reference.GetSpacing(), rtol=1e-5)
            or not np.allclose(region.GetDirection(), reference.GetDirection(), atol=1e-5)
            or not np.allclose(index, start, atol=1e-3) or (start < 0).any()
            or (start + region.GetSize() > np.asarray(reference.GetSize())).any()):
        raise ValueError(f"image of size {region.GetSize()} at {region.GetOrigin()} is not a sub-grid of the "
                         f"reference of size {reference.GetSize()}")
    canvas = sitk.Image(reference.GetSize(), region.GetPixelID())
    canvas.CopyInformation(reference)
    return sitk.Paste(canvas, region, region.GetSize(), [0, 0, 0], [int(i) for i in start])
