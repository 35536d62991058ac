"""Patient coordinates, and fixed-grid resampling with exact mapping back.

The paper resizes whole CTs (here their body box, :func:`renal_nnunet.anatomy.grid.body_box`) and kidney
crops to 128x128x128. This module does that resize in a
way that can be undone exactly: a :class:`GridSidecar` records the source geometry, the crop box
and the grid, and :func:`resample_from_grid` puts grid-space arrays (labels or class
probabilities) back onto the source voxels.

Conventions (the one statement of them; other modules refer here):
    * An image's geometry is one affine (:class:`ImageGeometry`): ITK voxel index (x, y, z) to
      patient position in mm; spacing, origin and direction are derived from it, and every
      index <-> mm conversion goes through :meth:`ImageGeometry.index_to_mm` /
      :meth:`ImageGeometry.mm_to_index`.
    * Patient coordinates are ITK's LPS+: +x is the patient's LEFT, +y posterior, +z superior (mm).
    * Boxes are :class:`~renal_nnunet.anatomy.box.Box` (ITK (x, y, z) voxel start and size);
      numpy arrays from SimpleITK are (z, y, x).
    * **Orientation the networks see:** the source's axes reordered and flipped to run closest to
      patient L, P, S (:func:`canonical_axes`), whatever the storage order. Every grid image is
      made that way (training and inference alike), and ``predict`` also reorients the whole CT to
      :data:`CANONICAL_ORIENTATION` before the cascade (:func:`to_canonical_orientation`), so its
      components, boxes and lesion numbers do not depend on the storage order either; outputs go
      back with :func:`from_canonical_orientation`.
    * Grid voxel ``g`` (per axis) has its centre at source continuous index
      ``start - 0.5 + (g + 0.5) * size / grid`` (counted from the other end on a flipped axis):
      the grid tiles the crop box edge to edge.
    * A grid image written for nnU-Net keeps the source's origin and (reordered) direction cosines
      with a nominal 1 mm spacing, so stock planning does not resample it again; the true
      geometry lives in the sidecar only (:meth:`GridSidecar.grid_geometry`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.io import InputError, write_json

__all__ = [
    "ImageGeometry",
    "GridSidecar",
    "CANONICAL_ORIENTATION",
    "canonical_axes",
    "to_canonical_orientation",
    "from_canonical_orientation",
    "resample_to_grid",
    "resample_from_grid",
    "physical_points_mm",
    "patient_left_mm",
    "paste_on_grid",
    "image_like",
]

Interpolation = Literal["nearest", "linear", "label"]

CANONICAL_ORIENTATION = "LPS"
"""DICOM orientation code of the axes the networks see (array x to the patient's left, y posterior,
z superior): how DICOM axial series and the synthetic phantoms are stored (see the module docstring)."""


@dataclass(frozen=True)
class ImageGeometry:
    """Voxel grid of an image: its size and one affine, from which spacing, origin and direction
    are derived (as TorchIO derives them from ``image.affine``).

    Attributes:
        size: image size in voxels, ITK (x, y, z).
        affine: 4x4 matrix (row-major tuples) taking a homogeneous ITK voxel index (x, y, z, 1) to
            the LPS position of that voxel's centre in mm.
    """

    size: tuple[int, int, int]
    affine: tuple[tuple[float, float, float, float], ...]

    @classmethod
    def from_parts(cls, size: Sequence[int], spacing_mm: Sequence[float], origin_mm: Sequence[float],
                   direction: Sequence[float]) -> "ImageGeometry":
        """The geometry of ITK's description: spacing (mm), origin (LPS mm of the first voxel's
        centre) and direction cosines (9 values row-major, columns are the index axes)."""
        matrix = np.eye(4)
        matrix[:3, :3] = np.asarray(direction, float).reshape(3, 3) * np.asarray(spacing_mm, float)
        matrix[:3, 3] = np.asarray(origin_mm, float)
        return cls(tuple(int(s) for s in size), tuple(tuple(float(v) for v in row) for row in matrix))

    @classmethod
    def of(cls, image: sitk.Image) -> "ImageGeometry":
        """The geometry of an image."""
        return cls.from_parts(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    @property
    def index_to_patient(self) -> np.ndarray:
        """3x3 matrix mapping an ITK (x, y, z) index offset to an LPS offset in mm."""
        return np.asarray(self.affine, float)[:3, :3]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """Voxel spacing in mm, ITK (x, y, z): the lengths of the affine's index columns."""
        return tuple(float(v) for v in np.sqrt((self.index_to_patient ** 2).sum(axis=0)))

    @property
    def origin_mm(self) -> tuple[float, float, float]:
        """LPS position (mm) of the first voxel's centre."""
        return tuple(float(v) for v in np.asarray(self.affine, float)[:3, 3])

    @property
    def direction(self) -> tuple[float, ...]:
        """Direction cosines, 9 values row-major (ITK's ``GetDirection``)."""
        return tuple(float(v) for v in (self.index_to_patient / np.asarray(self.spacing_mm)).ravel())

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """The numpy array shape (z, y, x) of an image on this grid."""
        return tuple(reversed(self.size))

    def index_to_mm(self, indices_xyz: np.ndarray) -> np.ndarray:
        """LPS positions (mm) of (possibly fractional) ITK (x, y, z) voxel indices, shape (N, 3)."""
        indices = np.asarray(indices_xyz, float).reshape(-1, 3)
        return np.asarray(self.origin_mm) + indices @ self.index_to_patient.T

    def mm_to_index(self, points_mm: np.ndarray) -> np.ndarray:
        """Continuous ITK (x, y, z) voxel indices of LPS positions in mm, shape (N, 3)."""
        points = np.asarray(points_mm, float).reshape(-1, 3)
        return np.linalg.solve(self.index_to_patient, (points - np.asarray(self.origin_mm)).T).T

    def patient_bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS min and max corner (mm) of the box spanned by the voxel centres."""
        size = np.asarray(self.size) - 1
        corners = np.array([[i, j, k] for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])], float)
        points = self.index_to_mm(corners)
        return points.min(0), points.max(0)

    def centre_mm(self) -> np.ndarray:
        """LPS position (mm) of the grid's centre."""
        low, high = self.patient_bounds_mm()
        return (low + high) / 2

    def box(self, box: Box) -> "ImageGeometry":
        """The geometry of a box of this grid: the same spacing and direction, the origin at the
        box's first voxel (the region ``sitk.RegionOfInterest`` cuts)."""
        matrix = np.asarray(self.affine, float).copy()
        matrix[:3, 3] = self.index_to_mm(box.start)[0]
        return ImageGeometry(box.size, tuple(tuple(float(v) for v in row) for row in matrix))

    def reference_image(self) -> sitk.Image:
        """An empty (uint8) image on this grid, to resample onto or copy information from."""
        ref = sitk.Image([int(s) for s in self.size], sitk.sitkUInt8)
        ref.SetSpacing(self.spacing_mm)
        ref.SetOrigin(self.origin_mm)
        ref.SetDirection(self.direction)
        return ref


def canonical_axes(direction: Sequence[float]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Which source axis (and sign) best matches each patient axis (LPS x, y, z): the orientation
    the networks see (module docstring).

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


def to_canonical_orientation(image: sitk.Image) -> sitk.Image:
    """``image`` with its array axes permuted and flipped (losslessly) to
    :data:`CANONICAL_ORIENTATION`, the orientation the networks see."""
    return sitk.DICOMOrient(image, CANONICAL_ORIENTATION)


def from_canonical_orientation(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """An image made on :func:`to_canonical_orientation` of ``reference`` (or on a box of it),
    put back into ``reference``'s storage order."""
    return sitk.DICOMOrient(image, sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        reference.GetDirection()))


@dataclass(frozen=True)
class GridSidecar:
    """What maps a grid-resampled image back: the source image's geometry, the crop box of the
    source that the grid tiles, and the grid edge.

    Attributes:
        source: geometry of the source image (the whole CT, not the box).
        box: crop box in source voxels (the whole image when not cropped).
        grid: grid edge length in voxels (the grid is grid x grid x grid).
    """

    source: ImageGeometry
    box: Box
    grid: int

    @classmethod
    def for_image(cls, image: sitk.Image, grid: int, box: Box | None = None) -> "GridSidecar":
        """The sidecar of ``image`` (or of ``box`` of it) resampled to ``grid``^3.

        Raises:
            ValueError: the box is empty or not inside the image, or the grid is under 2 voxels.
        """
        box = Box.whole(image.GetSize()) if box is None else box
        if box.is_empty or not Box.whole(image.GetSize()).contains(box):
            raise ValueError(f"crop box start {box.start} size {box.size} lies outside the image of size "
                             f"{image.GetSize()}")
        if grid < 2:
            raise ValueError(f"grid must be at least 2 voxels, got {grid}")
        return cls(ImageGeometry.of(image), box, int(grid))

    @property
    def grid_spacing_mm(self) -> np.ndarray:
        """True physical spacing of the grid voxels in mm, (x, y, z) of the source axes."""
        return np.asarray(self.box.size, float) * np.asarray(self.source.spacing_mm) / self.grid

    def grid_geometry(self) -> ImageGeometry:
        """The grid's true physical geometry (not the nominal 1 mm): the box's source axes
        reordered and flipped by :func:`canonical_axes`, each tiled edge to edge by ``grid`` voxels."""
        direction = np.asarray(self.source.direction).reshape(3, 3)
        spacing = np.asarray(self.source.spacing_mm)
        start, extent = np.asarray(self.box.start, float), np.asarray(self.box.size, float)
        source_axis, sign = canonical_axes(self.source.direction)
        first_centre_index = np.empty(3)
        grid_spacing, grid_direction = np.empty(3), np.empty((3, 3))
        for k, (j, s) in enumerate(zip(source_axis, sign)):
            half_cell = 0.5 * extent[j] / self.grid
            first_centre_index[j] = start[j] - 0.5 + half_cell if s > 0 else start[j] + extent[j] - 0.5 - half_cell
            grid_spacing[k] = extent[j] * spacing[j] / self.grid
            grid_direction[:, k] = s * direction[:, j]
        return ImageGeometry.from_parts((self.grid,) * 3, grid_spacing, self.source.index_to_mm(first_centre_index)[0],
                                        grid_direction.ravel())

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the sidecar atomically as JSON (flat fields: the source's size, spacing_mm,
        origin_mm and direction, then crop_start, crop_size and grid)."""
        return write_json({"size": self.source.size, "spacing_mm": self.source.spacing_mm,
                           "origin_mm": self.source.origin_mm, "direction": self.source.direction,
                           "crop_start": self.box.start, "crop_size": self.box.size, "grid": self.grid}, path)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "GridSidecar":
        """Read a sidecar written by :meth:`to_json`.

        Raises:
            InputError: the file is missing or is not a sidecar.
        """
        if not Path(path).is_file():
            raise InputError(path, "grid sidecar missing (the converter writes one per case in <dataset>/sidecars/)")
        try:
            data = json.loads(Path(path).read_text())
            source = ImageGeometry.from_parts(data["size"], data["spacing_mm"], data["origin_mm"], data["direction"])
            return cls(source, Box(data["crop_start"], data["crop_size"]), int(data["grid"]))
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise InputError(path, f"not a valid grid sidecar: {err}") from None


_ITK_INTERPOLATORS = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "label": sitk.sitkLabelGaussian}


def resample_to_grid(
    image: sitk.Image,
    grid: int,
    interpolation: Interpolation = "linear",
    box: Box | None = None,
    intensity_map: Callable[[sitk.Image], sitk.Image] | None = None,
) -> tuple[sitk.Image, GridSidecar]:
    """Resample ``image`` (or a crop box of it) to a ``grid``^3 image.

    Args:
        image: source image (CT in HU, or a label map).
        grid: edge length of the cubic output grid, in voxels (the paper uses 128).
        interpolation: ``linear`` for CT, ``nearest`` or ``label`` (smooth label-Gaussian) for labels.
        box: the crop box of the source to resample; default the whole image.
        intensity_map: a voxel-wise map (e.g. the CT window) applied to the source before
            resampling; with a crop box only the voxels the interpolation reads are mapped, so a
            kidney box of a 700-slice CT never makes a full-size float copy.

    Returns:
        The grid image (what nnU-Net is given): the source's origin, the source's direction
        cosines reordered to run closest to LPS (see :meth:`GridSidecar.grid_geometry`) and a
        nominal 1 mm spacing; and the sidecar that maps it back.
    """
    sidecar = GridSidecar.for_image(image, grid, box)
    reference = sidecar.grid_geometry().reference_image()
    source = image
    if interpolation != "label":  # the label-Gaussian kernel reads further than one voxel
        source = _interpolation_region(image, sidecar.box)
    if intensity_map is not None:
        source = intensity_map(source)
    resampled = sitk.Resample(
        source, reference, sitk.Transform(), _ITK_INTERPOLATORS[interpolation], 0.0, source.GetPixelID(),
        True,  # nearest-neighbour extrapolation: grid centres half a voxel inside the box edge stay defined
    )
    resampled.SetSpacing((1.0, 1.0, 1.0))
    resampled.SetOrigin(image.GetOrigin())
    return resampled, sidecar


def _interpolation_region(image: sitk.Image, box: Box) -> sitk.Image:
    """The crop box grown by one voxel per side (clipped to the image): every voxel that linear or
    nearest interpolation reads at grid centres inside the box (they lie at most half a voxel
    beyond the box's outer voxel centres). The whole image when the box is (nearly) all of it."""
    region = box.grow(1).clipped_to(image.GetSize())
    if region == Box.whole(image.GetSize()):
        return image
    return sitk.RegionOfInterest(image, region.size, region.start)


def resample_from_grid(
    array: np.ndarray,
    sidecar: GridSidecar,
    interpolation: Interpolation = "linear",
    fill_value: float = 0.0,
    crop_only: bool = False,
    region: Box | None = None,
) -> np.ndarray:
    """Map a grid-space array back onto the source voxels.

    Args:
        array: grid array (z, y, x) = (grid, grid, grid), or channels-first (C, grid, grid, grid),
            e.g. nnU-Net class probabilities.
        sidecar: the sidecar written when the grid image was made.
        interpolation: ``nearest`` for labels, ``linear`` for probabilities or intensities.
        fill_value: value outside the crop box.
        crop_only: return only the crop box's voxels (saves memory when the box is a small part
            of a large CT).
        region: source voxels inside the crop box: return only these (as ``crop_only`` does for
            the box), e.g. a slab of a long CT.

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
    grid_image = image_like(array, sidecar.grid_geometry().reference_image())
    wanted = sidecar.box if region is None else region
    if not sidecar.box.contains(wanted):
        raise ValueError(f"region {region} is not inside the crop box {sidecar.box}")
    back = sitk.Resample(grid_image, sidecar.source.box(wanted).reference_image(), sitk.Transform(),
                         _ITK_INTERPOLATORS[interpolation], 0.0, grid_image.GetPixelID(), True)
    if crop_only or region is not None:
        return sitk.GetArrayFromImage(back)
    out = np.full(sidecar.source.shape_zyx, fill_value, dtype=array.dtype)
    out[sidecar.box.slices] = sitk.GetArrayFromImage(back)
    return out


def physical_points_mm(image: sitk.Image, indices_zyx: np.ndarray) -> np.ndarray:
    """Patient (LPS) coordinates in mm of voxel indices given in numpy (z, y, x) order.

    Args:
        image: the image whose geometry defines the mapping.
        indices_zyx: (N, 3) array of (possibly fractional) voxel indices, numpy order.

    Returns:
        (N, 3) array of LPS coordinates in mm (x: +left, y: +posterior, z: +superior).
    """
    return ImageGeometry.of(image).index_to_mm(np.asarray(indices_zyx, float).reshape(-1, 3)[:, ::-1])


def patient_left_mm(image: sitk.Image, indices_zyx: np.ndarray) -> np.ndarray:
    """Position along the patient's right-to-left axis (LPS x, mm; larger = further LEFT)."""
    return physical_points_mm(image, indices_zyx)[:, 0]


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
    region = from_canonical_orientation(region, reference)
    index = ImageGeometry.of(reference).mm_to_index(region.GetOrigin())[0]
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
