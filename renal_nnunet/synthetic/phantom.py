"""Whole synthetic abdominal CT phantoms with kidneys and renal masses, and single-lesion patches.

Anatomy and masses are placed in patient coordinates (LPS mm) and then rasterised, so a phantom on
any grid orientation (pass ``direction``) has the same anatomy in patient space: the left kidney at
larger LPS x than the right one, the liver on the patient's right.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import ImageGeometry, image_like
from renal_nnunet.anatomy.labels import KITS_LABELS
from renal_nnunet.synthetic.anatomy import KIDNEY_CENTRE_MM, KIDNEY_SEMI_AXES_MM, BodyLayout, paint_background
from renal_nnunet.synthetic.shapes import Ellipsoid, paint, rasterise, rotation_deg
from renal_nnunet.synthetic.textures import (
    LESION_KINDS,
    LesionKind,
    TissueHU,
    add_noise_hu,
    lesion_texture_hu,
    sample_tissue_hu,
    tumour_kind_for_subtype,
)

PHANTOM_SUBTYPES: tuple[str, ...] = ("clear_cell_rcc", "papillary_rcc", "chromophobe_rcc", "oncocytoma", "angiomyolipoma")
"""Subtypes drawn when ``make_phantom`` is given none (KiTS23 spellings)."""

MASS_DIAMETER_RANGE_MM = (3.0, 60.0)
ADULT_FIELD_MM = np.array([360.0, 270.0, 260.0])
"""Field of view (LPS x, y, z in mm) that holds the adult anatomy at scale 1; smaller fields shrink it."""


@dataclass(frozen=True)
class SyntheticLesion:
    """One renal mass of a phantom.

    Attributes:
        kind: appearance class, ``AML``, ``cystic`` or ``solid``.
        side: kidney it grows from, ``left`` or ``right`` (patient sides).
        centre_mm: LPS centre in mm.
        diameter_mm: nominal diameter in mm.
        kits_label: 2 (tumour) or 3 (cyst) in the KiTS label map.
    """

    kind: LesionKind
    side: str
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    kits_label: int


@dataclass
class Phantom:
    """A synthetic CT with its KiTS label map (0 background, 1 kidney, 2 tumour, 3 cyst).

    Attributes:
        ct: int16 CT in HU.
        labels: uint8 KiTS labels on the same grid; renal-sinus fat is 0, as in KiTS.
        subtype: the patient's ``tumor_histologic_subtype`` (KiTS23 spelling); None for a patient
            without histology (e.g. a mass-free case of a synthetic cohort).
        lesions: the masses actually present in ``labels``.
        organ_centres_mm: nominal LPS centres of liver, spleen, spine and both kidneys.
        field_of_view: the scan range (see :data:`renal_nnunet.synthetic.randomised.FIELDS_OF_VIEW`).
        phase: the contrast phase the tissues were drawn for.
    """

    ct: sitk.Image
    labels: sitk.Image
    subtype: str | None
    lesions: list[SyntheticLesion]
    organ_centres_mm: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    field_of_view: str = "abdomen"
    phase: str = "corticomedullary"


def _empty_grid(shape_zyx, spacing_zyx_mm, direction, origin_mm) -> ImageGeometry:
    """Grid geometry; by default the volume is centred on LPS (0, 0, 0)."""
    spacing = tuple(float(s) for s in reversed(spacing_zyx_mm))
    direction = tuple(float(d) for d in (direction if direction is not None else np.eye(3).ravel()))
    if origin_mm is None:
        half_extent = (np.asarray(shape_zyx[::-1], float) - 1) / 2 * np.asarray(spacing)
        origin_mm = tuple(-np.asarray(direction).reshape(3, 3) @ half_extent)
    return ImageGeometry.from_parts(tuple(int(s) for s in reversed(shape_zyx)), spacing, origin_mm, direction)


def _kidney_frames(layout: BodyLayout, rng: np.random.Generator) -> dict[str, Ellipsoid]:
    """Each kidney as a rotated ellipsoid: upper pole tilted medially, hilum facing antero-medially."""
    kidneys = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        tilt = -sign * (15.0 + rng.uniform(-5, 5))
        turn = sign * (30.0 + rng.uniform(-8, 8))
        semi = np.asarray(KIDNEY_SEMI_AXES_MM) * rng.uniform(0.9, 1.1, size=3)
        centre = np.asarray(KIDNEY_CENTRE_MM[side]) + rng.uniform(-8, 8, size=3)
        kidneys[side] = Ellipsoid(layout.at(centre), layout.size(semi), rotation_deg(0.0, tilt, turn))
    return kidneys


def _paint_kidney(ct, labels, geometry, kidney: Ellipsoid, side: str, hu: TissueHU) -> None:
    """Perirenal fat, cortex, medulla and sinus fat; label 1 on cortex + medulla, 0 on the sinus."""
    semi = np.asarray(kidney.semi_axes_mm)
    rotation = np.asarray(kidney.rotation).reshape(3, 3)
    paint(ct, geometry, Ellipsoid(kidney.centre_mm, tuple(1.3 * semi + 5.0), kidney.rotation), hu.visceral_fat)
    paint(ct, geometry, kidney, hu.renal_cortex)
    paint(labels, geometry, kidney, KITS_LABELS["kidney"])
    paint(ct, geometry, Ellipsoid(kidney.centre_mm, tuple(0.7 * semi), kidney.rotation), hu.renal_medulla)
    medial = 1.0 if side == "right" else -1.0  # the hilum faces the midline
    sinus_centre = np.asarray(kidney.centre_mm) + rotation @ (np.array([medial * 0.55, -0.1, 0.0]) * semi)
    sinus = Ellipsoid(tuple(sinus_centre), tuple(np.array([0.5, 0.45, 0.55]) * semi), kidney.rotation)
    paint(ct, geometry, sinus, hu.sinus_fat)
    paint(labels, geometry, sinus, KITS_LABELS["background"])


def draw_masses(kidneys, subtype, masses_per_kidney, scale, voxel_mm, rng) -> list[SyntheticLesion]:
    """Sample separate masses on the kidney surfaces (partly exophytic, touching the kidney).

    Masses are at least 1.5 ``voxel_mm`` (the coarsest spacing) wide so each shows on the grid, and
    kept two voxels apart (beyond their +-12 % shape jitter) so each is its own connected component.

    The phantom's masses alternate tumour (label 2, kind from the subtype) and cyst (label 3),
    starting with a tumour, so any phantom with masses shows its subtype's appearance.
    """
    low, high = masses_per_kidney
    lesions: list[SyntheticLesion] = []
    radii: list[float] = []
    max_diameter = min(MASS_DIAMETER_RANGE_MM[1], 2.4 * scale * KIDNEY_SEMI_AXES_MM[1])
    min_diameter = min(max(MASS_DIAMETER_RANGE_MM[0], 1.5 * voxel_mm), max_diameter)
    for side in ("right", "left"):
        if side not in kidneys:  # an absent kidney (the randomised generator's nephrectomy)
            continue
        kidney = kidneys[side]
        semi = np.asarray(kidney.semi_axes_mm)
        rotation = np.asarray(kidney.rotation).reshape(3, 3)
        medial = np.array([1.0 if side == "right" else -1.0, 0.0, 0.0])
        for _ in range(int(rng.integers(low, high + 1))):
            diameter = float(np.exp(rng.uniform(np.log(min_diameter), np.log(max_diameter))))
            radius = diameter / 2
            for _attempt in range(20):
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                if direction @ medial > 0.6:  # not into the hilum
                    continue
                surface = direction / np.sqrt(np.sum((direction / semi) ** 2))
                normal = surface / semi**2
                normal /= np.linalg.norm(normal)
                local_centre = surface - rng.uniform(-0.3, 0.6) * radius * normal
                centre = np.asarray(kidney.centre_mm) + rotation @ local_centre
                if all(np.linalg.norm(centre - np.asarray(other.centre_mm)) > 1.15 * (radius + r) + 2.0 * voxel_mm
                       for other, r in zip(lesions, radii)):
                    break
            else:
                continue
            is_tumour = len(lesions) % 2 == 0
            kind = tumour_kind_for_subtype(subtype) if is_tumour else "cystic"
            label = KITS_LABELS["tumor"] if is_tumour else KITS_LABELS["cyst"]
            lesions.append(SyntheticLesion(kind, side, tuple(float(c) for c in centre), diameter, label))
            radii.append(radius)
    return lesions


def _mass_shape(lesion: SyntheticLesion, rng) -> Ellipsoid:
    """A mass's solid: its nominal sphere with +-12 % per axis and a random rotation."""
    semi = lesion.diameter_mm / 2 * rng.uniform(0.88, 1.12, size=3)
    return Ellipsoid(lesion.centre_mm, tuple(semi), rotation_deg(*rng.uniform(0, 180, size=3)))


def paint_mass_label(labels: np.ndarray, geometry: ImageGeometry, lesion: SyntheticLesion, rng) -> int:
    """Paint one mass's KiTS label (no texture: see :func:`renal_nnunet.synthetic.paint.paint_masses`);
    returns its voxel count on the grid."""
    region = rasterise(geometry, _mass_shape(lesion, rng))
    if region is None:
        return 0
    slices, mask = region
    mask = np.broadcast_to(mask, labels[slices].shape)
    labels[slices][mask] = lesion.kits_label
    return int(mask.sum())


def _paint_mass(ct, labels, geometry, lesion: SyntheticLesion, subtype: str, rng) -> int:
    """Paint one mass (texture + label); returns its voxel count."""
    region = rasterise(geometry, _mass_shape(lesion, rng))
    if region is None:
        return 0
    slices, mask = region
    mask = np.broadcast_to(mask, ct[slices].shape)
    spacing_zyx = geometry.spacing_mm[::-1]
    multilocular = lesion.kits_label == KITS_LABELS["tumor"] and subtype == "multilocular_cystic_rcc"
    values = lesion_texture_hu(lesion.kind, mask, spacing_zyx, rng, multilocular=multilocular)
    ct[slices][mask] = np.rint(values[mask]).astype(np.int16)
    labels[slices][mask] = lesion.kits_label
    return int(mask.sum())


def make_phantom(
    seed: int,
    shape_zyx: Sequence[int] = (64, 96, 96),
    spacing_zyx_mm: Sequence[float] = (5.0, 4.0, 4.0),
    masses_per_kidney: tuple[int, int] = (0, 4),
    subtype: str | None = None,
    direction: Sequence[float] | None = None,
    origin_mm: Sequence[float] | None = None,
) -> Phantom:
    """A whole-abdomen synthetic CT with two kidneys and 0-4 masses per kidney (deterministic per seed).

    Args:
        seed: random seed; the same seed and grid give identical voxels.
        shape_zyx: array shape, numpy (z, y, x) order.
        spacing_zyx_mm: voxel spacing per array axis, numpy (z, y, x) order, mm.
        masses_per_kidney: inclusive (min, max) number of masses drawn per kidney.
        subtype: the patient's KiTS23 ``tumor_histologic_subtype``; all its tumours share it
            (``angiomyolipoma`` -> fatty AML, ``cyst``/``multilocular_cystic_rcc`` -> cystic,
            others -> solid). Default: drawn from :data:`PHANTOM_SUBTYPES`.
        direction: ITK direction cosines (9 values, row-major); default identity (LPS).
        origin_mm: ITK origin; default centres the volume on LPS (0, 0, 0).

    The anatomy is adult-sized; a field of view smaller than :data:`ADULT_FIELD_MM` shrinks it
    uniformly. Mass diameters are 3-60 mm, but at least 1.5 voxels of the coarsest spacing so every
    mass is visible on the grid, and at most what fits the kidney. A mass that cannot be placed
    apart from the others is dropped, so a phantom may hold fewer than the drawn count.

    Raises:
        ValueError: a bad ``masses_per_kidney``, shape or spacing.
    """
    low_count, high_count = masses_per_kidney
    if not 0 <= low_count <= high_count:
        raise ValueError(f"masses_per_kidney must be (min, max) with 0 <= min <= max, got {masses_per_kidney}")
    if len(shape_zyx) != 3 or min(shape_zyx) < 2 or len(spacing_zyx_mm) != 3 or min(spacing_zyx_mm) <= 0:
        raise ValueError(f"need a 3D shape (>= 2 voxels per axis) and positive spacing; got {shape_zyx}, {spacing_zyx_mm}")
    rng = np.random.default_rng(seed)
    if subtype is None:
        subtype = str(rng.choice(PHANTOM_SUBTYPES))
    geometry = _empty_grid(shape_zyx, spacing_zyx_mm, direction, origin_mm)
    low, high = geometry.patient_bounds_mm()
    field_mm = high - low + np.abs(geometry.index_to_patient).sum(1)
    scale = float(min(1.0, *(field_mm / ADULT_FIELD_MM)))
    centre = geometry.centre_mm()
    body_semi_axes = tuple(float(a) for a in scale * np.array([165.0, 120.0]) * rng.uniform(0.92, 1.05, size=2))
    layout = BodyLayout((centre[0], centre[1], centre[2] - 20.0 * scale), body_semi_axes, scale)
    hu = sample_tissue_hu(rng)
    ct = np.empty(geometry.shape_zyx, np.int16)
    labels = np.zeros(geometry.shape_zyx, np.uint8)
    paint_background(ct, geometry, layout, hu, rng)
    kidneys = _kidney_frames(layout, rng)
    for side, kidney in kidneys.items():
        _paint_kidney(ct, labels, geometry, kidney, side, hu)
    lesions = draw_masses(kidneys, subtype, masses_per_kidney, scale, max(spacing_zyx_mm), rng)
    lesions = [lesion for lesion in lesions if _paint_mass(ct, labels, geometry, lesion, subtype, rng) > 0]
    add_noise_hu(ct, hu.noise_sd, rng)
    organs = layout.organ_centres_mm() | {f"kidney_{side}": kidney.centre_mm for side, kidney in kidneys.items()}
    reference = geometry.reference_image()
    return Phantom(image_like(ct, reference), image_like(labels, reference), subtype, lesions, organs)


def make_lesion_patch(
    kind: str,
    seed: int,
    size_zyx: Sequence[int] = (32, 32, 32),
    spacing_zyx_mm: Sequence[float] = (1.0, 1.0, 1.0),
) -> tuple[sitk.Image, sitk.Image]:
    """A CT patch (int16 HU) of renal parenchyma holding one mass of ``kind``, and its uint8 mask.

    The mass is an ellipsoid near the patch centre with diameter 30-70 % of the patch's smallest
    physical edge. AML contains fat (< -30 HU), a cyst is homogeneous water (0-20 HU), a solid
    tumour is heterogeneous enhancing tissue (40-150 HU); background cortex 160-240 HU.

    Raises:
        ValueError: unknown kind.
    """
    if kind not in LESION_KINDS:
        raise ValueError(f"unknown lesion kind {kind!r}; expected one of {LESION_KINDS}")
    rng = np.random.default_rng(seed)
    geometry = _empty_grid(size_zyx, spacing_zyx_mm, None, None)
    hu = sample_tissue_hu(rng)
    ct = np.full(geometry.shape_zyx, np.int16(hu.renal_cortex), np.int16)
    low, high = geometry.patient_bounds_mm()
    for _ in range(3):  # medullary pyramids give the parenchyma some structure
        pyramid = Ellipsoid(tuple(rng.uniform(low, high)), tuple(rng.uniform(0.1, 0.2, 3) * (high - low)))
        paint(ct, geometry, pyramid, hu.renal_medulla)
    edge_mm = float(np.min(np.asarray(size_zyx) * np.asarray(spacing_zyx_mm)))
    diameter = rng.uniform(0.3, 0.7) * edge_mm
    centre = geometry.centre_mm() + rng.uniform(-0.1, 0.1, 3) * edge_mm
    lesion = SyntheticLesion(kind, "left", tuple(float(c) for c in centre), diameter, KITS_LABELS["tumor"])
    mask = np.zeros(geometry.shape_zyx, np.uint8)
    _paint_mass(ct, mask, geometry, lesion, "", rng)
    add_noise_hu(ct, hu.noise_sd, rng)
    reference = geometry.reference_image()
    return image_like(ct, reference), image_like((mask > 0).astype(np.uint8), reference)
