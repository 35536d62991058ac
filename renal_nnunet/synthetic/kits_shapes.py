"""Real kidney, tumour and cyst shapes from KiTS label maps, placed into the randomised torsos.

Ellipsoid kidneys teach a network "a smooth bright blob beside the spine"; real kidneys have a
hilum, a renal sinus that opens medially, flattened poles and lobulation, and real masses are
lobulated, exophytic or endophytic. The issue asks the generator for real shapes (ABDSynth draws
its anatomy from real label maps). A :class:`KitsShapes` library holds, from a KiTS dataset (label
maps only, read where they lie, never copied into the package), voxels in patient axes (LPS, 2 mm
isotropic by default):

* each whole, mass-free kidney (:class:`KidneyShape`): ``parenchyma`` (the KiTS kidney label, which
  excludes renal-sinus fat), ``outline`` (the parenchyma closed over the sinus), and ``depth_mm``
  (distance from the outline's surface), from which the generator draws a cortex of random
  thickness over the medulla, and the collecting system deep in the sinus;
* each tumour and cyst (:class:`MassShape`, one connected component of label 2 or 3).

:func:`place_voxels` maps such voxels into any image grid by an affine placement (mirrored for the
other side, turned, scaled, centred where the generator puts the organ), so left stays left
whatever the grid's orientation.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.geometry import ImageGeometry
from renal_nnunet.anatomy.labels import KITS_LABELS
from renal_nnunet.anatomy.sinus import closing_mm
from renal_nnunet.io import InputError, read_label_map
from renal_nnunet.synthetic.shapes import Ellipsoid, rotation_deg

logger = logging.getLogger(__name__)

SHAPE_SPACING_MM = 2.0
"""Isotropic voxel size of the stored shapes, mm (finer than any grid the demo trains on)."""
SINUS_CLOSING_MM = 10.0
"""Radius of the closing that covers the renal sinus up to the kidney's outer boundary, mm."""
MIN_KIDNEY_ML = 60.0
"""Smallest component kept as a kidney, ml (smaller ones are fragments or partial kidneys)."""
MIN_MASS_ML = 0.5
"""Smallest tumour or cyst component kept as a mass shape, ml."""
MIRROR_X = np.diag([-1.0, 1.0, 1.0])
CONTROL_CASES = 4
"""The first cases (sorted by id) of a KiTS dataset that the painted-KiTS control
(``scripts/bench_sim2real.py``) scores; the demo never takes shapes from them."""


def control_case_ids(dataset: str | os.PathLike) -> tuple[str, ...]:
    """Ids of the :data:`CONTROL_CASES` first case folders of a KiTS ``dataset/`` folder."""
    return tuple(sorted(p.name for p in Path(dataset).glob("case_*"))[:CONTROL_CASES])


def _centroid_mm(mask: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Centre of mass of a (z, y, x) mask in array mm, LPS order (x, y, z)."""
    return np.asarray(ndimage.center_of_mass(mask))[::-1] * spacing_mm


@dataclass(frozen=True)
class KidneyShape:
    """One real mass-free kidney, in patient axes (array z, y, x = LPS S, P, L; isotropic voxels).

    Attributes:
        case_id: the KiTS case it comes from.
        side: ``right`` or ``left`` in the source patient's coordinates.
        parenchyma: KiTS kidney label (bool, z, y, x).
        outline: parenchyma with the renal sinus closed (bool, z, y, x).
        depth_mm: distance from the outline's surface inside it, mm (float32; 0 outside).
        spacing_mm: voxel edge, mm.
    """

    case_id: str
    side: str
    parenchyma: np.ndarray
    outline: np.ndarray
    depth_mm: np.ndarray
    spacing_mm: float

    def outline_covariance_mm2(self) -> np.ndarray:
        """Covariance of the outline's voxel positions in LPS (x, y, z) mm², 3 x 3."""
        points = np.argwhere(self.outline)[:, ::-1] * self.spacing_mm
        return np.cov(points.T)


@dataclass(frozen=True)
class MassShape:
    """One real tumour (KiTS label 2) or cyst (label 3) component, in patient axes like
    :class:`KidneyShape`.

    Attributes:
        case_id: the KiTS case it comes from.
        kits_label: 2 (tumour) or 3 (cyst).
        inside: the component's voxels (bool, z, y, x).
        spacing_mm: voxel edge, mm.
    """

    case_id: str
    kits_label: int
    inside: np.ndarray
    spacing_mm: float

    @property
    def diameter_mm(self) -> float:
        """Diameter of the sphere of the same volume, mm."""
        return float(np.cbrt(6.0 * self.inside.sum() * self.spacing_mm**3 / np.pi))


@dataclass(frozen=True)
class KitsShapes:
    """The mass-free kidneys and the masses of a KiTS dataset (see :func:`load_kits_shapes`)."""

    kidneys: tuple[KidneyShape, ...]
    masses: tuple[MassShape, ...]
    source: str

    def masses_labelled(self, kits_label: int) -> tuple[MassShape, ...]:
        """The tumours (``kits_label`` 2) or cysts (3)."""
        return tuple(m for m in self.masses if m.kits_label == kits_label)


def _cropped(mask: np.ndarray, pad: int) -> np.ndarray:
    """``mask`` cut to its bounding box, then padded by ``pad`` voxels of False."""
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    return np.pad(mask[box], pad)


def _shapes_of_case(segmentation_path: Path, case_id: str, spacing_mm: float
                    ) -> tuple[list[KidneyShape], list[MassShape]]:
    """Whole mass-free kidneys and the masses of one KiTS label map."""
    labels = sitk.DICOMOrient(read_label_map(segmentation_path, set(KITS_LABELS.values())), "LPS")
    size = [int(round(n * s / spacing_mm)) for n, s in zip(labels.GetSize(), labels.GetSpacing())]
    labels = sitk.Resample(labels, size, sitk.Transform(), sitk.sitkNearestNeighbor, labels.GetOrigin(),
                           (spacing_mm,) * 3, labels.GetDirection(), 0, sitk.sitkUInt8)
    array = sitk.GetArrayFromImage(labels)  # (z, y, x) along LPS S, P, L
    voxel_ml = spacing_mm**3 / 1000.0
    masses = []
    for label in (KITS_LABELS["tumor"], KITS_LABELS["cyst"]):
        components = cc3d.connected_components(array == label, connectivity=26)
        counts = np.bincount(components.ravel())
        masses += [MassShape(case_id, label, _cropped(components == c, 1), spacing_mm)
                   for c in np.flatnonzero(counts[1:] * voxel_ml >= MIN_MASS_ML) + 1]
    components = cc3d.connected_components(array > 0, connectivity=26)
    counts = np.bincount(components.ravel())
    kidneys = [c for c in np.argsort(counts[1:])[::-1][:2] + 1 if counts[c] * voxel_ml >= MIN_KIDNEY_ML]
    if len(kidneys) != 2:  # one kidney (nephrectomy) or none: its side cannot be told without the CT
        return [], masses
    centres_x = [np.argwhere(components == c)[:, 2].mean() for c in kidneys]
    margin = int(np.ceil(SINUS_CLOSING_MM / spacing_mm)) + 1  # closing_mm needs background beyond the radius
    shapes = []
    for component, centre_x in zip(kidneys, centres_x):
        inside = components == component
        z = np.flatnonzero(inside.any((1, 2)))
        if z[0] == 0 or z[-1] == array.shape[0] - 1:  # cut by the scan's first or last slice
            continue
        if np.isin(array[inside], (KITS_LABELS["tumor"], KITS_LABELS["cyst"])).any():
            continue
        parenchyma = _cropped(inside, margin)
        outline = ndimage.binary_fill_holes(closing_mm(parenchyma, (spacing_mm,) * 3, SINUS_CLOSING_MM)) | parenchyma
        depth = (ndimage.distance_transform_edt(outline) * spacing_mm).astype(np.float32)
        side = "left" if centre_x == max(centres_x) else "right"  # +x (LPS) is the patient's left
        shapes.append(KidneyShape(case_id, side, parenchyma, outline, depth, spacing_mm))
    return shapes, masses


@lru_cache(maxsize=4)
def _load(dataset: str, case_ids: tuple[str, ...] | None, exclude: tuple[str, ...], spacing_mm: float) -> KitsShapes:
    folders = sorted(p for p in Path(dataset).glob("case_*") if (p / "segmentation.nii.gz").is_file())
    if case_ids is not None:
        folders = [p for p in folders if p.name in case_ids]
    folders = [p for p in folders if p.name not in exclude]
    if not folders:
        raise InputError(dataset, "no KiTS case folders with segmentation.nii.gz to take shapes from")
    kidneys, masses = [], []
    for folder in folders:
        case_kidneys, case_masses = _shapes_of_case(folder / "segmentation.nii.gz", folder.name, spacing_mm)
        kidneys += case_kidneys
        masses += case_masses
    if not kidneys:
        raise InputError(dataset, f"none of its {len(folders)} cases has a whole mass-free kidney")
    logger.info("KiTS shapes: %d mass-free kidneys, %d tumours and %d cysts from %d cases in %s", len(kidneys),
                sum(m.kits_label == KITS_LABELS["tumor"] for m in masses),
                sum(m.kits_label == KITS_LABELS["cyst"] for m in masses), len(folders), dataset)
    return KitsShapes(tuple(kidneys), tuple(masses), dataset)


def load_kits_shapes(
    dataset: str | os.PathLike,
    case_ids: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
    spacing_mm: float = SHAPE_SPACING_MM,
) -> KitsShapes:
    """The whole mass-free kidneys, tumours and cysts of a KiTS23 ``dataset/`` folder
    (``case_*/segmentation.nii.gz``).

    A case contributes a kidney when both of its kidneys are found (the side comes from patient x:
    the component further to +x in LPS is the left one), the kidney lies inside the scan range, and
    it holds no tumour or cyst label; every tumour and cyst component of at least
    :data:`MIN_MASS_ML` is a mass shape. Loaded once per process and arguments (about 0.8 s per case).

    Args:
        dataset: the folder holding the case folders.
        case_ids: cases to read (default: all).
        exclude: cases left out (e.g. those a painted-KiTS control evaluates on).
        spacing_mm: isotropic voxel edge of the stored shapes, mm.

    Raises:
        InputError: no case folder, a bad label map, or no usable kidney.
    """
    return _load(str(Path(dataset).resolve()), None if case_ids is None else tuple(sorted(case_ids)),
                 tuple(sorted(exclude)), float(spacing_mm))


@dataclass(frozen=True)
class Placement:
    """Where stored voxels go: patient (LPS mm) = ``centre_mm + linear @ (source mm - source_centre_mm)``.

    ``linear`` holds the mirror (a kidney from the other side), rotation and scale; source mm are
    array index (x, y, z) times the shapes' spacing.
    """

    centre_mm: tuple[float, float, float]
    linear: tuple[float, ...]
    source_centre_mm: tuple[float, float, float]


def _linear(turn_deg, scale_xyz, mirror: bool = False) -> tuple[float, ...]:
    linear = np.asarray(rotation_deg(*turn_deg)).reshape(3, 3) @ np.diag(scale_xyz) @ (MIRROR_X if mirror else np.eye(3))
    return tuple(float(v) for v in linear.ravel())


@dataclass(frozen=True)
class PlacedKidney:
    """A kidney shape and where it goes."""

    shape: KidneyShape
    placement: Placement

    def envelope(self) -> Ellipsoid:
        """The solid ellipsoid with the placed outline's centre and second moments (for placing
        masses on the kidney's surface, perirenal fat, hilar vessels and the adrenal)."""
        linear = np.asarray(self.placement.linear).reshape(3, 3)
        values, vectors = np.linalg.eigh(linear @ self.shape.outline_covariance_mm2() @ linear.T)
        if np.linalg.det(vectors) < 0:
            vectors[:, 0] *= -1
        semi = np.sqrt(5.0 * np.clip(values, 1e-6, None))  # a solid ellipsoid's variance is a²/5
        return Ellipsoid(self.placement.centre_mm, tuple(float(v) for v in semi), tuple(float(v) for v in vectors.ravel()))

    def sample(self, geometry: ImageGeometry) -> tuple[tuple[slice, ...], dict[str, np.ndarray]] | None:
        """``parenchyma``, ``outline`` (bool) and ``depth_mm`` (float32, mm, scaled with the kidney)
        on a grid (see :func:`place_voxels`)."""
        shape = self.shape
        region = place_voxels(geometry, {"parenchyma": shape.parenchyma, "outline": shape.outline,
                                         "depth_mm": shape.depth_mm}, shape.spacing_mm, self.placement)
        if region is None:
            return None
        slices, maps = region
        scale = float(np.cbrt(abs(np.linalg.det(np.reshape(self.placement.linear, (3, 3))))))
        return slices, {"parenchyma": maps["parenchyma"] > 0.5, "outline": maps["outline"] > 0.5,
                        "depth_mm": maps["depth_mm"] * scale}


def draw_kidney(shapes: KitsShapes, side: str, centre_mm, scale: float, rng: np.random.Generator) -> PlacedKidney:
    """A random kidney of ``shapes`` for ``side``, centred at ``centre_mm`` (LPS): mirrored if it comes
    from the other side, turned by up to 10-15 degrees about each axis, scaled by ``scale`` times
    0.9-1.1 per axis."""
    shape = shapes.kidneys[int(rng.integers(len(shapes.kidneys)))]
    linear = _linear(rng.uniform([-10, -10, -15], [10, 10, 15]), scale * rng.uniform(0.9, 1.1, size=3),
                     mirror=shape.side != side)
    centroid = _centroid_mm(shape.outline, shape.spacing_mm)
    return PlacedKidney(shape, Placement(tuple(float(c) for c in centre_mm), linear, tuple(float(c) for c in centroid)))


def paint_mass_shape(labels: np.ndarray, geometry: ImageGeometry, shapes: KitsShapes, kits_label: int,
                     centre_mm, diameter_mm: float, rng: np.random.Generator) -> int:
    """Paint a random real tumour or cyst of ``shapes`` (its ``kits_label``; any of its masses when it
    holds none of that label; ``shapes.masses`` must not be empty), turned at random and
    scaled to ``diameter_mm`` (the equal-volume sphere's, times 0.9-1.1 per axis), centred at
    ``centre_mm`` (LPS); returns its voxel count on the grid."""
    candidates = shapes.masses_labelled(kits_label) or shapes.masses
    shape = candidates[int(rng.integers(len(candidates)))]
    linear = _linear(rng.uniform(0, 360, size=3), diameter_mm / shape.diameter_mm * rng.uniform(0.9, 1.1, size=3))
    placement = Placement(tuple(float(c) for c in centre_mm), linear,
                          tuple(float(c) for c in _centroid_mm(shape.inside, shape.spacing_mm)))
    region = place_voxels(geometry, {"inside": shape.inside}, shape.spacing_mm, placement)
    if region is None:
        return 0
    slices, maps = region
    inside = maps["inside"] > 0.5
    labels[slices][inside] = kits_label
    return int(inside.sum())


def place_voxels(geometry: ImageGeometry, volumes: dict[str, np.ndarray], spacing_mm: float,
                 placement: Placement) -> tuple[tuple[slice, ...], dict[str, np.ndarray]] | None:
    """Sample stored (z, y, x) volumes of one isotropic ``spacing_mm`` grid on a grid's voxel centres
    (trilinear, 0 outside).

    Returns:
        ``(slices, maps)``: numpy (z, y, x) slices of the placed volumes' bounding box on the grid,
        and each volume (float32) over that box; None when the placement misses the grid.
    """
    linear = np.asarray(placement.linear).reshape(3, 3)
    centre, source_centre = np.asarray(placement.centre_mm), np.asarray(placement.source_centre_mm)
    extent = np.asarray(next(iter(volumes.values())).shape[::-1]) * spacing_mm
    corners = np.array([[a, b, c] for a in (0, extent[0]) for b in (0, extent[1]) for c in (0, extent[2])])
    indices = geometry.mm_to_index((corners - source_centre) @ linear.T + centre)
    size = np.asarray(geometry.size)
    if np.any(indices.max(0) < 0) or np.any(indices.min(0) > size - 1):
        return None
    first = np.clip(np.floor(indices.min(0)).astype(int), 0, size - 1)
    last = np.clip(np.ceil(indices.max(0)).astype(int), 0, size - 1)
    grids = np.meshgrid(*[np.arange(f, l + 1) for f, l in zip(first, last)], indexing="ij")  # ITK x, y, z
    index = np.stack([g.ravel() for g in grids], axis=1)
    source_mm = (geometry.index_to_mm(index) - centre) @ np.linalg.inv(linear).T + source_centre
    source_zyx = (source_mm / spacing_mm)[:, ::-1].T
    box_xyz = tuple(int(l - f + 1) for f, l in zip(first, last))
    maps = {name: ndimage.map_coordinates(volume.astype(np.float32), source_zyx, order=1, mode="constant", cval=0.0)
            .reshape(box_xyz).transpose(2, 1, 0) for name, volume in volumes.items()}
    slices = tuple(slice(int(first[2 - d]), int(last[2 - d]) + 1) for d in range(3))
    return slices, maps
