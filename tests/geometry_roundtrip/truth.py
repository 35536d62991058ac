"""Ground truth for the grid <-> CT tests, computed with plain ITK and numpy from the convention
stated once in :mod:`renal_nnunet.anatomy.geometry`, never with the code under test:

    grid voxel ``g`` (per axis) has its centre at source continuous index
    ``start - 0.5 + (g + 0.5) * size / grid`` (counted from the other end on a flipped axis),

and the grid's axis ``k`` runs along the source axis closest to patient axis ``k`` (LPS x, y, z),
in the patient direction. A source voxel's centre is its own integer index, so where it lies on
the grid is index arithmetic; a point given in LPS mm becomes a continuous source index through
ITK's ``TransformPhysicalPointToContinuousIndex``.

Indices are ITK (x, y, z) in (N, 3) arrays; arrays are numpy (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.box import Box

TIE = 1e-6
"""A continuous index this close to a rounding boundary may round either way (nearest paths)."""

SEEDS = range(8)
"""The random layouts every property test runs on."""


@dataclass(frozen=True)
class Layout:
    """A random CT geometry, a crop box of it and a grid edge.

    Attributes:
        image: an empty float32 image with the geometry.
        start, size: the crop box, ITK (x, y, z) voxels.
        grid: the grid edge, voxels.
    """

    image: sitk.Image
    start: tuple[int, int, int]
    size: tuple[int, int, int]
    grid: int

    @property
    def box(self) -> Box:
        return Box(self.start, self.size)

    def with_box(self, start, size, grid: int | None = None) -> "Layout":
        return Layout(self.image, tuple(int(v) for v in start), tuple(int(v) for v in size),
                      self.grid if grid is None else grid)


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(-max_degrees, max_degrees))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def random_image(rng: np.random.Generator, voxels=(9, 40), spacing_mm=(0.5, 5.0)) -> sitk.Image:
    """An empty image: odd and even sizes, anisotropic spacing, any signed permutation of the axes
    (slightly oblique half the time) and a non-zero origin."""
    size = [int(v) for v in rng.integers(voxels[0], voxels[1] + 1, 3)]
    size[int(rng.integers(3))] |= 1  # at least one odd size
    direction = np.zeros((3, 3))
    direction[rng.permutation(3), range(3)] = rng.choice([-1.0, 1.0], 3)  # column j: source axis j in LPS
    if rng.random() < 0.5:
        direction = _rotation(rng, 12.0) @ direction
    image = sitk.Image(size, sitk.sitkFloat32)
    image.SetSpacing([float(v) for v in rng.uniform(*spacing_mm, 3)])
    image.SetOrigin([float(v) for v in rng.uniform(-300.0, 300.0, 3)])
    image.SetDirection([float(v) for v in direction.ravel()])
    return image


def random_box(rng: np.random.Generator, image_size) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per axis one of: the whole axis, touching the first or the last voxel, or inside."""
    start, size = [], []
    for n in image_size:
        kind = rng.integers(4)
        extent = n if kind == 0 else int(rng.integers(6, n))
        first = {0: 0, 1: 0, 2: n - extent}.get(int(kind), int(rng.integers(0, n - extent + 1)))
        start.append(first)
        size.append(extent)
    return tuple(start), tuple(size)


def random_layout(seed: int, grid=(5, 26), **image_options) -> Layout:
    rng = np.random.default_rng(seed)
    image = random_image(rng, **image_options)
    start, size = random_box(rng, image.GetSize())
    return Layout(image, start, size, int(rng.integers(*grid)))


def grid_axes(direction) -> tuple[np.ndarray, np.ndarray]:
    """For each source axis: the grid axis it becomes (the patient axis it runs closest to) and
    its sign there."""
    matrix = np.reshape(direction, (3, 3))
    grid_axis = np.abs(matrix).argmax(axis=0)
    return grid_axis, np.sign(matrix[grid_axis, range(3)])


def to_grid_index(source_index, layout: Layout) -> np.ndarray:
    """Continuous grid indices of continuous source indices (both ITK x, y, z, shape (N, 3))."""
    source_index = np.asarray(source_index, float).reshape(-1, 3)
    grid_axis, sign = grid_axes(layout.image.GetDirection())
    out = np.empty_like(source_index)
    for j in range(3):
        u = (source_index[:, j] - layout.start[j] + 0.5) * layout.grid / layout.size[j] - 0.5
        out[:, grid_axis[j]] = u if sign[j] > 0 else layout.grid - 1 - u
    return out


def to_source_index(grid_index, layout: Layout) -> np.ndarray:
    """Continuous source indices of (continuous) grid indices: the convention itself."""
    grid_index = np.asarray(grid_index, float).reshape(-1, 3)
    grid_axis, sign = grid_axes(layout.image.GetDirection())
    out = np.empty_like(grid_index)
    for j in range(3):
        g = grid_index[:, grid_axis[j]]
        g = g if sign[j] > 0 else layout.grid - 1 - g
        out[:, j] = layout.start[j] - 0.5 + (g + 0.5) * layout.size[j] / layout.grid
    return out


def lps_to_source_index(image: sitk.Image, point_mm) -> np.ndarray:
    """ITK's continuous index of an LPS point (mm)."""
    return np.asarray(image.TransformPhysicalPointToContinuousIndex([float(v) for v in point_mm]))


def box_indices(layout: Layout) -> np.ndarray:
    """ITK (x, y, z) indices of the box's voxels, in the numpy (z, y, x) order of its array."""
    z, y, x = np.indices(layout.box.shape_zyx).reshape(3, -1)
    return np.stack([x, y, z], axis=1) + np.asarray(layout.start)


def grid_indices(grid: int) -> np.ndarray:
    """ITK (x, y, z) indices of a grid's voxels, in the numpy (z, y, x) order of its array."""
    z, y, x = np.indices((grid,) * 3).reshape(3, -1)
    return np.stack([x, y, z], axis=1)


def _sample(array: np.ndarray, index: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Values of a numpy (z, y, x) array at continuous ITK indices: nearest (round half up, with the
    indices too close to call) or linear with the edge values extended (ITK's nearest extrapolation)."""
    if order == 0:
        nearest = np.floor(index + 0.5).astype(int)
        tie = (np.abs(index - np.floor(index) - 0.5) < TIE).any(axis=1)
        return array[nearest[:, 2], nearest[:, 1], nearest[:, 0]], tie
    return ndimage.map_coordinates(array, index[:, ::-1].T, order=1, mode="nearest"), np.zeros(len(index), bool)


def expected_from_grid(grid_array: np.ndarray, layout: Layout, order: int) -> tuple[np.ndarray, np.ndarray]:
    """A grid array (grid^3, or channels first) on the box's source voxels: for each voxel, the
    value of the grid cell holding its centre (``order`` 0) or the linear interpolation there
    (``order`` 1); and which voxels lie on a cell boundary (nearest only)."""
    if grid_array.ndim == 4:
        channels = [expected_from_grid(channel, layout, order) for channel in grid_array]
        return np.stack([c[0] for c in channels]), channels[0][1]
    values, tie = _sample(grid_array, to_grid_index(box_indices(layout), layout), order)
    return values.reshape(layout.box.shape_zyx), tie.reshape(layout.box.shape_zyx)


def expected_on_grid(source_array: np.ndarray, layout: Layout, order: int) -> tuple[np.ndarray, np.ndarray]:
    """A source array sampled at the grid voxels' centres: nearest (``order`` 0, with the ties) or
    linear (1)."""
    values, tie = _sample(source_array, to_source_index(grid_indices(layout.grid), layout), order)
    return values.reshape((layout.grid,) * 3), tie.reshape((layout.grid,) * 3)


def paste(box_array: np.ndarray, layout: Layout, shape_zyx=None) -> np.ndarray:
    """A box's array on the whole image, 0 elsewhere."""
    out = np.zeros(shape_zyx or layout.image.GetSize()[::-1], box_array.dtype)
    out[tuple(slice(s, s + n) for s, n in zip(layout.start[::-1], layout.size[::-1]))] = box_array
    return out


def source_lps_mm(image: sitk.Image) -> np.ndarray:
    """LPS (mm) of every voxel centre, shape (z, y, x, 3), from the image's own origin, spacing and
    direction (checked against ITK's ``TransformIndexToPhysicalPoint`` at the corners)."""
    z, y, x = np.indices(image.GetSize()[::-1])
    index = np.stack([x, y, z], axis=-1).astype(float)
    matrix = np.reshape(image.GetDirection(), (3, 3)) * np.asarray(image.GetSpacing())
    points = np.asarray(image.GetOrigin()) + index @ matrix.T
    for corner in ((0, 0, 0), tuple(s - 1 for s in image.GetSize())):
        np.testing.assert_allclose(points[corner[::-1]], image.TransformIndexToPhysicalPoint(corner), atol=1e-6)
    return points


def _relative_box_position(layout: Layout) -> np.ndarray:
    """Where each box voxel's centre lies across the box, 0 to 1 per axis (ITK x, y, z)."""
    return (box_indices(layout) - np.asarray(layout.start) + 0.5) / np.asarray(layout.size)


def ellipsoid(layout: Layout) -> np.ndarray:
    """uint8 labels on the whole image: 1 in the ellipsoid inscribed in the middle 80% of the box."""
    inside = (((_relative_box_position(layout) - 0.5) / 0.4) ** 2).sum(axis=1) <= 1
    return paste(inside.astype(np.uint8).reshape(layout.box.shape_zyx), layout)


def kidney_blobs(layout: Layout, mass: bool = False, radius: float = 0.2) -> np.ndarray:
    """uint8 labels on the whole image: in the box, a right kidney (1) at low and a left one (2)
    at high patient x (LPS), each a few grid cells across (``radius``: the fraction of the box
    they reach along patient x; 0.2 and they touch); with ``mass``, a mass (3) in the left
    kidney."""
    grid_axis, sign = grid_axes(layout.image.GetDirection())
    lateral = int(np.flatnonzero(grid_axis == 0)[0])  # the source axis running along LPS x
    relative = _relative_box_position(layout)
    labels = np.zeros(len(relative), np.uint8)
    shapes = [(1, 0.3, radius), (2, 0.7, radius)] + ([(3, 0.72, radius / 2)] if mass else [])
    for value, across, radius in shapes:
        centre = np.full(3, 0.5)
        centre[lateral] = across if sign[lateral] > 0 else 1 - across
        radii = np.full(3, 2 * radius)
        radii[lateral] = radius
        labels[(((relative - centre) / radii) ** 2).sum(axis=1) <= 1] = value
    return paste(labels.reshape(layout.box.shape_zyx), layout)


def image_of(array: np.ndarray, layout: Layout) -> sitk.Image:
    """An array on the layout's geometry (plain ITK)."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(layout.image)
    return image


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.stack([labels == c for c in range(classes)]).astype(np.float32)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)
