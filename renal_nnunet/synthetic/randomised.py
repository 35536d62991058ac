"""Domain-randomised synthetic CT: a tissue label map of the whole torso, then a random appearance.

The ellipsoid phantoms of :mod:`.phantom` have one fixed contrast and one field of view, so
networks trained on them learn "a bright blob beside the spine" and fail on real CT. Following
SynthSeg (Billot et al., MedIA 2023) and ABDSynth (arXiv 2403.15609), this generator first draws
the anatomy as a map of tissues, and then draws, anew for every case:

* **the anatomy**: body size and fat, liver, spleen, stomach, gallbladder, pancreas, bowel loops and
  colon (fluid, gas or oral contrast), aorta and IVC with renal vessels, adrenals, psoas and back
  muscles, vertebrae with discs, ribs, lungs and heart, pelvis, bladder and femoral heads, arms
  beside the trunk in some cases, the patient table; kidneys with cortex, medullary pyramids, sinus fat
  and collecting system, shifted, scaled, tilted and sometimes absent, either ellipsoids or real
  KiTS23 kidneys (:mod:`.kits_shapes`, then tumours and cysts are real KiTS shapes too); a smooth
  random deformation of all of it;
* **the field of view** (:data:`FIELDS_OF_VIEW`): abdomen, abdomen-pelvis, chest-abdomen-pelvis,
  kidneys cut by the first or last slice, and chest-only or pelvis-only scans with no kidney;
  in-plane margins, body position and voxel size;
* **the appearance**: a contrast phase (non-contrast, corticomedullary, nephrographic, excretory)
  and, within it, each tissue's mean HU around CT-plausible priors (:data:`PHASE_HU`), a texture
  amplitude per tissue, a smooth additive shading field, blur along and across slices (slice
  thickness and partial volume), noise of random level and grain, and sub-voxel soft tissue
  scattered in the fat (vessels and bowel walls: what a real CT resampled to a coarse grid shows).

Masses keep their defining features under randomisation (textures of
:func:`renal_nnunet.synthetic.textures.lesion_texture_hu`): AML holds macroscopic fat, a cyst is
homogeneous water, a solid mass enhances heterogeneously.

All placement is in patient coordinates (LPS mm: +x the patient's left, +y posterior, +z superior)
and then rasterised, so any grid orientation keeps the anatomy right.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, Sequence

import numpy as np
from scipy import ndimage

from renal_nnunet.anatomy.geometry import ImageGeometry, image_like
from renal_nnunet.anatomy.labels import KITS_LABELS
from renal_nnunet.synthetic.anatomy import KIDNEY_CENTRE_MM, KIDNEY_SEMI_AXES_MM, BodyLayout
from renal_nnunet.synthetic.kits_shapes import KitsShapes, PlacedKidney, draw_kidney, paint_mass_shape
from renal_nnunet.synthetic.paint import paint_masses
from renal_nnunet.synthetic.phantom import PHANTOM_SUBTYPES, Phantom, draw_masses, paint_mass_label
from renal_nnunet.synthetic.shapes import Ellipsoid, paint, rasterise, rotation_deg
from renal_nnunet.synthetic.textures import smooth_field

INF = np.inf


class Tissue(IntEnum):
    """Tissues of the label map the appearance is drawn for."""

    AIR = 0
    TABLE = 1
    SUBCUTANEOUS_FAT = 2
    MUSCLE = 3
    VISCERAL_FAT = 4
    LUNG = 5
    HEART = 6
    LIVER = 7
    SPLEEN = 8
    STOMACH = 9
    GALLBLADDER = 10
    PANCREAS = 11
    BOWEL_FLUID = 12
    BOWEL_GAS = 13
    BOWEL_CONTRAST = 14
    AORTA = 15
    IVC = 16
    RENAL_VEIN = 17
    ADRENAL = 18
    BONE_CORTEX = 19
    BONE_MARROW = 20
    DISC = 21
    BLADDER = 22
    RENAL_CORTEX = 23
    RENAL_MEDULLA = 24
    SINUS_FAT = 25
    COLLECTING_SYSTEM = 26


Phase = Literal["non-contrast", "corticomedullary", "nephrographic", "excretory"]
PHASES: tuple[str, ...] = ("non-contrast", "corticomedullary", "nephrographic", "excretory")
PHASE_PROBABILITIES = (0.15, 0.3, 0.4, 0.15)

# Mean HU range per tissue and phase (non-contrast, corticomedullary, nephrographic, excretory):
# abdominal CT literature values, widened; the case's value is drawn uniformly in the range.
PHASE_HU: dict[Tissue, tuple[tuple[float, float], ...]] = {
    Tissue.AIR: ((-1024, -980),) * 4,
    Tissue.TABLE: ((-400, 250),) * 4,
    Tissue.SUBCUTANEOUS_FAT: ((-125, -80),) * 4,
    Tissue.MUSCLE: ((35, 70),) * 4,
    Tissue.VISCERAL_FAT: ((-120, -70),) * 4,
    Tissue.LUNG: ((-920, -720),) * 4,
    Tissue.HEART: ((30, 55), (180, 400), (120, 200), (90, 150)),
    Tissue.LIVER: ((40, 70), (60, 100), (90, 140), (80, 120)),
    Tissue.SPLEEN: ((35, 55), (80, 170), (100, 150), (90, 130)),
    Tissue.STOMACH: ((-10, 45),) * 4,
    Tissue.GALLBLADDER: ((-5, 25),) * 4,
    Tissue.PANCREAS: ((30, 55), (90, 150), (80, 120), (70, 100)),
    Tissue.BOWEL_FLUID: ((-10, 45),) * 4,
    Tissue.BOWEL_GAS: ((-1000, -700),) * 4,
    Tissue.BOWEL_CONTRAST: ((150, 450),) * 4,
    Tissue.AORTA: ((30, 55), (200, 450), (130, 220), (90, 150)),
    Tissue.IVC: ((30, 55), (60, 130), (120, 190), (90, 140)),
    Tissue.RENAL_VEIN: ((30, 55), (100, 220), (130, 200), (90, 150)),
    Tissue.ADRENAL: ((20, 50), (50, 100), (60, 100), (50, 80)),
    Tissue.BONE_CORTEX: ((500, 1200),) * 4,
    Tissue.BONE_MARROW: ((120, 350),) * 4,
    Tissue.DISC: ((60, 110),) * 4,
    Tissue.BLADDER: ((-5, 25), (-5, 25), (0, 40), (150, 900)),
    Tissue.RENAL_CORTEX: ((25, 45), (140, 260), (130, 220), (110, 190)),
    Tissue.RENAL_MEDULLA: ((25, 45), (50, 110), (130, 220), (110, 190)),
    Tissue.SINUS_FAT: ((-110, -60),) * 4,
    Tissue.COLLECTING_SYSTEM: ((-5, 25), (-5, 30), (10, 60), (300, 1000)),
}
"""Mean HU range of each tissue in each of :data:`PHASES` (one range: the same in every phase)."""

TEXTURE_SD_HU = {Tissue.LIVER: 12, Tissue.SPLEEN: 25, Tissue.PANCREAS: 15, Tissue.BOWEL_FLUID: 20,
                 Tissue.STOMACH: 20, Tissue.MUSCLE: 10, Tissue.BONE_MARROW: 60, Tissue.BONE_CORTEX: 150,
                 Tissue.RENAL_CORTEX: 15, Tissue.RENAL_MEDULLA: 15, Tissue.HEART: 20, Tissue.LUNG: 40,
                 Tissue.TABLE: 60}
"""Largest texture amplitude (sd, HU) per tissue; a case draws it between 0 and this value."""

FieldOfView = Literal["abdomen", "abdomen_pelvis", "chest_abdomen_pelvis", "kidney_cut", "chest", "pelvis"]
FIELDS_OF_VIEW: dict[str, float] = {
    "abdomen": 0.3, "abdomen_pelvis": 0.2, "chest_abdomen_pelvis": 0.2, "kidney_cut": 0.1, "chest": 0.1,
    "pelvis": 0.1,
}
"""Scan ranges and how often each is drawn; ``chest`` and ``pelvis`` hold no kidney."""
NEGATIVE_FIELDS_OF_VIEW = frozenset({"chest", "pelvis"})

# Cranio-caudal landmarks in the body frame (mm at scale 1; z = 0 at the kidneys' level).
DIAPHRAGM_Z_MM = 110.0
ILIAC_CREST_Z_MM = -120.0
NO_KIDNEY_MARGIN_MM = 15.0


@dataclass(frozen=True)
class Appearance:
    """One case's appearance: phase, mean HU and texture sd per tissue, shading, blur, noise, and the
    fraction of fat voxels holding sub-voxel soft tissue (clutter)."""

    phase: str
    mean_hu: dict[int, float]
    texture_sd_hu: dict[int, float]
    shading_hu: float
    blur_voxels_zyx: tuple[float, float, float]
    noise_sd_hu: float
    noise_grain_voxels: float
    clutter_fraction: float


def draw_appearance(rng: np.random.Generator, phase: str | None = None) -> Appearance:
    """Draw a case's appearance (:class:`Appearance`) within the priors of its phase.

    Args:
        rng: random generator.
        phase: one of :data:`PHASES`; drawn with :data:`PHASE_PROBABILITIES` when None.
    """
    phase = str(rng.choice(PHASES, p=PHASE_PROBABILITIES)) if phase is None else phase
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
    column = PHASES.index(phase)
    mean_hu = {}
    for tissue, ranges in PHASE_HU.items():
        low, high = ranges[column if len(ranges) > 1 else 0]
        mean_hu[int(tissue)] = float(rng.uniform(low, high))
    texture = {int(t): float(rng.uniform(0, sd)) for t, sd in TEXTURE_SD_HU.items()}
    across_slices = float(rng.uniform(0.0, 0.9))  # slice thickness; in-plane blur is the same on both axes
    blur = (across_slices, *[float(rng.uniform(0.0, 0.6))] * 2)
    return Appearance(phase, mean_hu, texture, float(rng.uniform(0, 20)), blur, float(rng.uniform(4, 40)),
                      float(rng.uniform(0.0, 1.0)), float(rng.uniform(0.0, 0.3)))


def _segment(start_mm, end_mm, radius_mm: float) -> Ellipsoid:
    """A spindle from ``start_mm`` to ``end_mm`` (LPS mm) of the given radius at its middle."""
    start, end = np.asarray(start_mm, float), np.asarray(end_mm, float)
    axis = end - start
    length = float(np.linalg.norm(axis))
    z = axis / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rotation = np.stack([x, y, z], axis=1)
    return Ellipsoid(tuple((start + end) / 2), (radius_mm, radius_mm, length / 2), tuple(rotation.ravel()))


def _paint_where(tissue: np.ndarray, geometry: ImageGeometry, shape: Ellipsoid, value: int,
                 onto: Sequence[int]) -> None:
    """Paint ``value`` inside ``shape`` only over voxels currently holding one of ``onto``."""
    region = rasterise(geometry, shape)
    if region is not None:
        slices, mask = region
        target = tissue[slices]
        np.copyto(target, np.uint8(value), where=mask & np.isin(target, onto))


@dataclass(frozen=True)
class _Body:
    """A case's body: frame, semi-axes of the outline, fat and wall thickness (mm)."""

    layout: BodyLayout
    fat_mm: float
    wall_mm: float


def _paint_trunk(tissue, geometry, body: _Body, rng) -> None:
    """Table, arms, body wall, visceral fat, lungs and heart above the diaphragm."""
    layout = body.layout
    ax, ay = layout.body_semi_axes_mm
    x0, y0, z0 = layout.origin_mm
    table_top = y0 + ay + rng.uniform(0, 15)
    table_thickness = rng.uniform(8, 40)
    # the table: a wide, gently curved slab under the back (the lower edge of a 600 mm ellipse)
    paint(tissue, geometry, Ellipsoid((x0, table_top + 600, 0.0), (max(ax * 1.6, 260), 600, INF)), Tissue.TABLE)
    paint(tissue, geometry, Ellipsoid((x0, table_top + 600 + table_thickness, 0.0),
                                      (max(ax * 1.6, 260) + 40, 600, INF)), Tissue.AIR)
    cylinder = lambda a, b: Ellipsoid((x0, y0, 0.0), (a, b, INF))  # noqa: E731
    if rng.random() < 0.35:  # arms down beside the trunk (otherwise raised out of the field of view)
        for side in (-1.0, 1.0):
            arm = (x0 + side * (ax + rng.uniform(20, 55)), y0 + rng.uniform(-30, 30), 0.0)
            radius = rng.uniform(35, 50)
            paint(tissue, geometry, Ellipsoid(arm, (radius, radius * 1.1, INF)), Tissue.SUBCUTANEOUS_FAT)
            paint(tissue, geometry, Ellipsoid(arm, (radius - 8, radius * 1.1 - 8, INF)), Tissue.MUSCLE)
            paint(tissue, geometry, Ellipsoid(arm, (11.0, 11.0, INF)), Tissue.BONE_CORTEX)
            paint(tissue, geometry, Ellipsoid(arm, (7.0, 7.0, INF)), Tissue.BONE_MARROW)
    paint(tissue, geometry, cylinder(ax, ay), Tissue.SUBCUTANEOUS_FAT)
    paint(tissue, geometry, cylinder(ax - body.fat_mm, ay - body.fat_mm), Tissue.MUSCLE)
    inner = (ax - body.fat_mm - body.wall_mm, ay - body.fat_mm - body.wall_mm)
    paint(tissue, geometry, cylinder(*inner), Tissue.VISCERAL_FAT)
    s = layout.scale
    diaphragm = z0 + s * (DIAPHRAGM_Z_MM + rng.uniform(-20, 20))
    for side in (-1.0, 1.0):  # lungs: domes sitting on the diaphragm, recesses reaching down posteriorly
        dome = diaphragm - (0.0 if side < 0 else s * 10.0)
        paint(tissue, geometry, Ellipsoid((x0 + side * 0.48 * inner[0], y0 + 0.05 * inner[1], dome + s * 170),
                                          (0.5 * inner[0], 0.9 * inner[1], s * 180)), Tissue.LUNG)
    paint(tissue, geometry, Ellipsoid((x0 + s * 20, y0 - 0.25 * inner[1], diaphragm + s * 80),
                                      (0.4 * inner[0], 0.45 * inner[1], s * 70)), Tissue.HEART)


def _paint_skeleton(tissue, geometry, body: _Body, z_range_mm, rng) -> None:
    """Vertebrae with discs, spinous processes, ribs above the kidneys' lower poles, pelvis."""
    layout = body.layout
    s = layout.scale
    x0, y0, z0 = layout.origin_mm
    ax, ay = layout.body_semi_axes_mm
    spine_y = y0 + s * 60.0
    level = s * rng.uniform(30, 38)
    z = z_range_mm[1] + rng.uniform(0, level)
    while z > z_range_mm[0] - level:
        body_semi = (s * 22, s * 18, 0.5 * level - s * 4)
        paint(tissue, geometry, Ellipsoid((x0, spine_y, z), body_semi), Tissue.BONE_CORTEX)
        paint(tissue, geometry, Ellipsoid((x0, spine_y, z), (body_semi[0] - 3, body_semi[1] - 3, body_semi[2] - 2)),
              Tissue.BONE_MARROW)
        paint(tissue, geometry, Ellipsoid((x0, spine_y, z - 0.5 * level), (s * 21, s * 17, s * 4)), Tissue.DISC)
        paint(tissue, geometry, Ellipsoid((x0, spine_y + s * 38, z), (s * 5, s * 20, 0.4 * level)), Tissue.BONE_CORTEX)
        for side in (-1.0, 1.0):  # pedicles and transverse processes
            paint(tissue, geometry, _segment((x0 + side * s * 10, spine_y + s * 16, z),
                                             (x0 + side * s * 38, spine_y + s * 20, z), s * 5), Tissue.BONE_CORTEX)
        rib_level = z - z0 > s * rng.uniform(-10, 40)
        if rib_level:  # a tilted rib ring, painted only on the trunk wall's muscle; below 150 mm above the
            # kidneys it is shifted back 40 mm, so its anterior arc misses the wall (the costal margin)
            tilt = rotation_deg(rng.uniform(15, 30), 0.0, 0.0)
            ring = (ax - 0.6 * body.fat_mm, ay - 0.6 * body.fat_mm, s * 6)
            _paint_where(tissue, geometry, Ellipsoid((x0, y0 + (0 if z - z0 > s * 150 else s * 40), z), ring, tilt),
                         Tissue.BONE_CORTEX, onto=(Tissue.MUSCLE,))
        z -= level
    crest = z0 + s * (ILIAC_CREST_Z_MM + rng.uniform(-20, 20))
    for side in (-1.0, 1.0):
        wing = Ellipsoid((x0 + side * s * 85, y0 + s * 45, crest - s * 45), (s * 18, s * 45, s * 50),
                         rotation_deg(0.0, 0.0, side * 35.0))
        paint(tissue, geometry, wing, Tissue.BONE_CORTEX)
        paint(tissue, geometry, Ellipsoid(wing.centre_mm, (s * 10, s * 38, s * 43), wing.rotation), Tissue.BONE_MARROW)
        paint(tissue, geometry, Ellipsoid((x0 + side * s * 85, y0 + s * 5, crest - s * 170), (s * 24,) * 3),
              Tissue.BONE_CORTEX)  # femoral head
    paint(tissue, geometry, Ellipsoid((x0, y0 + s * 85, crest - s * 60), (s * 40, s * 22, s * 60)), Tissue.BONE_MARROW)


def _paint_muscles_and_vessels(tissue, geometry, body: _Body, kidneys, rng) -> None:
    layout = body.layout
    s = layout.scale
    x0, y0, z0 = layout.origin_mm
    for side in (-1.0, 1.0):
        paint(tissue, geometry, Ellipsoid((x0 + side * s * 40, y0 + s * 42, z0 - s * 170),
                                          (s * rng.uniform(14, 24), s * 16, s * 210)), Tissue.MUSCLE)  # psoas
        paint(tissue, geometry, Ellipsoid((x0 + side * s * 35, y0 + s * 95, z0),
                                          (s * rng.uniform(20, 30), s * 17, INF)), Tissue.MUSCLE)  # erector spinae
    aorta_x, ivc_x = x0 + s * 12, x0 - s * 24
    aorta_r, ivc_r = s * rng.uniform(8, 14), s * rng.uniform(9, 14)
    bifurcation = z0 + s * (-110 + rng.uniform(-20, 20))
    paint(tissue, geometry, Ellipsoid((aorta_x, y0 + s * 28, bifurcation + 300), (aorta_r, aorta_r, 300)), Tissue.AORTA)
    paint(tissue, geometry, Ellipsoid((ivc_x, y0 + s * 32, bifurcation + 300), (ivc_r, 0.8 * ivc_r, 300)), Tissue.IVC)
    for side in (-1.0, 1.0):
        iliac_end = (x0 + side * s * 80, y0 + s * 30, bifurcation - s * 160)
        paint(tissue, geometry, _segment((aorta_x, y0 + s * 28, bifurcation), iliac_end, 0.7 * aorta_r), Tissue.AORTA)
    for side, kidney in kidneys.items():
        hilum = np.asarray(kidney.centre_mm) + np.array([s * 15 if side == "right" else -s * 15, -s * 8, 0.0])
        paint(tissue, geometry, _segment((ivc_x, y0 + s * 32, hilum[2]), hilum, s * rng.uniform(4, 7)), Tissue.RENAL_VEIN)
        paint(tissue, geometry, _segment((aorta_x, y0 + s * 28, hilum[2] + s * 5), hilum, s * rng.uniform(2.5, 4.5)),
              Tissue.AORTA)
        adrenal = (kidney.centre_mm[0] + (s * 12 if side == "right" else -s * 12), kidney.centre_mm[1] - s * 5,
                   kidney.centre_mm[2] + kidney.semi_axes_mm[2] + s * 12)
        paint(tissue, geometry, Ellipsoid(adrenal, (s * 4, s * 14, s * 16), rotation_deg(0, 0, rng.uniform(-30, 30))),
              Tissue.ADRENAL)


def _paint_viscera(tissue, geometry, body: _Body, rng, oral_contrast: bool) -> None:
    """Liver, gallbladder, spleen, stomach, pancreas, bowel loops, colon, bladder."""
    layout = body.layout
    s = layout.scale
    x0, y0, z0 = layout.origin_mm
    jitter = lambda r: rng.uniform(-r, r, size=3)  # noqa: E731
    liver_semi = np.array([85.0, 90.0, 85.0]) * rng.uniform(0.85, 1.2, size=3)
    liver_centre = np.array([-60.0, 5.0, 75.0]) + jitter(15)
    paint(tissue, geometry, Ellipsoid(layout.at(liver_centre), layout.size(liver_semi)), Tissue.LIVER)
    paint(tissue, geometry, Ellipsoid(layout.at(liver_centre + [70, -50, 25]), layout.size(liver_semi * [0.6, 0.4, 0.45])),
          Tissue.LIVER)
    paint(tissue, geometry, Ellipsoid(layout.at((-60, -45, 20) + jitter(10)), layout.size(rng.uniform(10, 22, 3))),
          Tissue.GALLBLADDER)
    paint(tissue, geometry, Ellipsoid(layout.at((92, 45, 70) + jitter(12)), layout.size(np.array([30, 50, 50]) * rng.uniform(0.7, 1.4, 3))),
          Tissue.SPLEEN)
    stomach = layout.at((45, -40, 80) + jitter(15))
    stomach_semi = layout.size(np.array([50, 35, 55]) * rng.uniform(0.7, 1.3, 3))
    paint(tissue, geometry, Ellipsoid(stomach, stomach_semi), Tissue.MUSCLE)
    content = Tissue.BOWEL_CONTRAST if oral_contrast and rng.random() < 0.5 else Tissue.STOMACH
    paint(tissue, geometry, Ellipsoid(stomach, tuple(np.asarray(stomach_semi) - 4)), content)
    paint(tissue, geometry, Ellipsoid((stomach[0], stomach[1] - 0.5 * stomach_semi[1], stomach[2]),
                                      tuple(np.asarray(stomach_semi) * [0.6, rng.uniform(0.2, 0.6), 0.6])), Tissue.BOWEL_GAS)
    paint(tissue, geometry, _segment(layout.at((-25, 10, 15) + jitter(8)), layout.at((85, 25, 40) + jitter(8)),
                                     s * rng.uniform(9, 15)), Tissue.PANCREAS)
    loops = int(rng.integers(10, 40))
    for _ in range(loops):  # small bowel and colon: fluid, gas or positive oral contrast, in a wall
        centre = layout.at((rng.uniform(-100, 100), rng.uniform(-85, 10), rng.uniform(-260, 40)))
        semi = layout.size(rng.uniform(10, 24, 3))
        paint(tissue, geometry, Ellipsoid(centre, semi), Tissue.MUSCLE)
        draw = rng.random()
        content = Tissue.BOWEL_GAS if draw < 0.3 else Tissue.BOWEL_CONTRAST if oral_contrast and draw < 0.65 else Tissue.BOWEL_FLUID
        paint(tissue, geometry, Ellipsoid(centre, tuple(np.asarray(semi) - 2.5)), content)
    for side in (-1.0, 1.0):  # ascending and descending colon beside the kidneys, often with gas
        colon = layout.at((side * 105, rng.uniform(-10, 25), -80))
        radius = s * rng.uniform(12, 22)
        paint(tissue, geometry, Ellipsoid(colon, (radius, radius, s * 110)), Tissue.MUSCLE)
        paint(tissue, geometry, Ellipsoid(colon, (radius - 2.5, radius - 2.5, s * 108)),
              Tissue.BOWEL_GAS if rng.random() < 0.6 else Tissue.BOWEL_FLUID)
    paint(tissue, geometry, Ellipsoid(layout.at((0, -40, -265) + jitter(10)), layout.size(rng.uniform(20, 45, 3))),
          Tissue.BLADDER)


def _draw_kidneys(layout: BodyLayout, rng) -> dict[str, Ellipsoid]:
    """Each kidney as a rotated ellipsoid (upper pole medial, hilum antero-medial), position, size and
    tilt varied; each kidney is absent with probability 0.04 (nephrectomy, agenesis)."""
    kidneys = {}
    for side, sign in (("right", -1.0), ("left", 1.0)):
        if rng.random() < 0.04:
            continue
        tilt = -sign * rng.uniform(5, 25)
        turn = sign * rng.uniform(15, 45)
        semi = np.asarray(KIDNEY_SEMI_AXES_MM) * rng.uniform(0.75, 1.15) * rng.uniform(0.9, 1.1, size=3)
        centre = np.asarray(KIDNEY_CENTRE_MM[side]) + rng.uniform([-15, -12, -35], [15, 12, 25])
        kidneys[side] = Ellipsoid(layout.at(centre), layout.size(semi), rotation_deg(rng.uniform(-10, 10), tilt, turn))
    return kidneys


def _paint_kidney(tissue, labels, geometry, kidney: Ellipsoid, side: str, rng,
                  placed: PlacedKidney | None = None) -> None:
    """Perirenal fat, cortex, medullary pyramids, sinus fat and collecting system; KiTS label 1 on
    the parenchyma, 0 on the sinus. With ``placed`` the kidney is that real shape (``kidney`` is
    then its envelope), otherwise the ellipsoid ``kidney``."""
    semi = np.asarray(kidney.semi_axes_mm)
    paint(tissue, geometry, Ellipsoid(kidney.centre_mm, tuple(semi * rng.uniform(1.0, 1.4) + rng.uniform(0.0, 5.0)), kidney.rotation),
          Tissue.VISCERAL_FAT)
    if placed is not None:
        _paint_kidney_shape(tissue, labels, geometry, placed, rng)
        return
    rotation = np.asarray(kidney.rotation).reshape(3, 3)
    local = lambda offset: tuple(np.asarray(kidney.centre_mm) + rotation @ (np.asarray(offset) * semi))  # noqa: E731
    paint(tissue, geometry, kidney, Tissue.RENAL_CORTEX)
    paint(labels, geometry, kidney, KITS_LABELS["kidney"])
    medial = 1.0 if side == "right" else -1.0  # the hilum faces the midline
    for _ in range(int(rng.integers(6, 11))):  # medullary pyramids between cortex and sinus
        angle = rng.uniform(0, 2 * np.pi)
        offset = np.array([0.45 * np.cos(angle), 0.45 * np.sin(angle), rng.uniform(-0.7, 0.7)])
        pyramid = Ellipsoid(local(offset), tuple(semi * [0.22, 0.22, 0.2]), kidney.rotation)
        _paint_where(tissue, geometry, pyramid, Tissue.RENAL_MEDULLA, onto=(Tissue.RENAL_CORTEX,))
    sinus = Ellipsoid(local([medial * 0.55, -0.1, 0.0]), tuple(semi * [0.5, 0.45, rng.uniform(0.45, 0.6)]), kidney.rotation)
    paint(tissue, geometry, sinus, Tissue.SINUS_FAT)
    paint(labels, geometry, sinus, KITS_LABELS["background"])
    pelvis = Ellipsoid(local([medial * 0.6, -0.1, 0.0]), tuple(semi * [0.25, 0.2, rng.uniform(0.15, 0.35)]),
                       kidney.rotation)
    paint(tissue, geometry, pelvis, Tissue.COLLECTING_SYSTEM)
    paint(labels, geometry, pelvis, KITS_LABELS["background"])


def _paint_kidney_shape(tissue, labels, geometry, placed: PlacedKidney, rng) -> None:
    """A real kidney shape: cortex of random thickness (4-8 mm) over medulla broken into pyramids by
    a random field, sinus fat inside the outline, and a collecting system in the sinus's deepest part."""
    region = placed.sample(geometry)
    if region is None:
        return
    slices, maps = region
    parenchyma, outline, depth = maps["parenchyma"], maps["outline"], maps["depth_mm"]
    spacing_zyx = geometry.spacing_mm[::-1]
    columns = smooth_field(parenchyma.shape, spacing_zyx, correlation_mm=rng.uniform(5, 10), rng=rng)
    medulla = parenchyma & (depth >= rng.uniform(4, 8)) & (columns > rng.uniform(-0.8, 0.0))
    sinus = outline & ~parenchyma
    collecting = sinus & (depth >= np.quantile(depth[sinus], rng.uniform(0.4, 0.85))) if sinus.any() else sinus
    box = tissue[slices]
    box[outline] = Tissue.SINUS_FAT
    box[parenchyma] = Tissue.RENAL_CORTEX
    box[medulla] = Tissue.RENAL_MEDULLA
    box[collecting] = Tissue.COLLECTING_SYSTEM
    labels[slices][parenchyma] = KITS_LABELS["kidney"]


def _scan_range_mm(field_of_view: str, body_z_mm: float, kidneys: dict[str, Ellipsoid], rng) -> tuple[float, float]:
    """(bottom, top) LPS z (mm) of the scan for a field of view (see :data:`FIELDS_OF_VIEW`)."""
    extents = [abs(np.asarray(k.rotation).reshape(3, 3)[2] * np.asarray(k.semi_axes_mm)).sum() for k in kidneys.values()]
    tops = [k.centre_mm[2] + e for k, e in zip(kidneys.values(), extents)] or [body_z_mm + 60]
    bottoms = [k.centre_mm[2] - e for k, e in zip(kidneys.values(), extents)] or [body_z_mm - 60]
    kidney_top, kidney_bottom = max(tops), min(bottoms)
    z = body_z_mm
    if field_of_view == "abdomen":
        return z + rng.uniform(-220, -130), z + rng.uniform(120, 200)
    if field_of_view == "abdomen_pelvis":
        return z + rng.uniform(-380, -280), z + rng.uniform(120, 220)
    if field_of_view == "chest_abdomen_pelvis":
        return z + rng.uniform(-380, -250), z + rng.uniform(250, 360)
    if field_of_view == "kidney_cut":
        cut = rng.uniform(min(bottoms), max(tops))
        return (cut, z + rng.uniform(150, 250)) if rng.random() < 0.5 else (z + rng.uniform(-250, -150), cut)
    if field_of_view == "chest":
        bottom = kidney_top + NO_KIDNEY_MARGIN_MM + rng.uniform(0, 60)
        return bottom, bottom + rng.uniform(180, 300)
    if field_of_view == "pelvis":
        top = kidney_bottom - NO_KIDNEY_MARGIN_MM - rng.uniform(0, 60)
        return top - rng.uniform(180, 260), top
    raise ValueError(f"unknown field of view {field_of_view!r}; expected one of {sorted(FIELDS_OF_VIEW)}")


def _deform(volumes: Sequence[np.ndarray], spacing_zyx_mm, amplitude_mm: float, rng) -> list[np.ndarray]:
    """Warp label volumes by one smooth random displacement field (nearest neighbour)."""
    shape = volumes[0].shape
    control = [max(2, int(round(n * sp / 60.0))) for n, sp in zip(shape, spacing_zyx_mm)]  # one node per ~6 cm
    coordinates = list(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"))
    for axis in range(3):
        coarse = rng.normal(0.0, amplitude_mm / spacing_zyx_mm[axis], size=control).astype(np.float32)
        fine = ndimage.zoom(coarse, [n / c for n, c in zip(shape, control)], order=3, mode="nearest")
        fine = np.pad(fine, [(0, max(0, n - f)) for n, f in zip(shape, fine.shape)], mode="edge")
        coordinates[axis] += fine[: shape[0], : shape[1], : shape[2]]
    return [ndimage.map_coordinates(v, coordinates, order=0, mode="nearest") for v in volumes]


def render(tissue: np.ndarray, appearance: Appearance, spacing_zyx_mm, rng) -> np.ndarray:
    """HU (float32) of a tissue label map with a case's appearance, before masses, blur and noise."""
    lookup = np.zeros(max(int(t) for t in Tissue) + 1, np.float32)
    for t, value in appearance.mean_hu.items():
        lookup[t] = value
    ct = lookup[tissue]
    fine = smooth_field(tissue.shape, spacing_zyx_mm, correlation_mm=rng.uniform(3, 10), rng=rng)
    amplitude = np.zeros_like(lookup)
    for t, value in appearance.texture_sd_hu.items():
        amplitude[t] = value
    ct += amplitude[tissue] * fine
    if appearance.shading_hu > 0:
        ct += appearance.shading_hu * smooth_field(tissue.shape, spacing_zyx_mm, correlation_mm=80.0, rng=rng)
    for fat, fraction in ((Tissue.VISCERAL_FAT, appearance.clutter_fraction),
                          (Tissue.SUBCUTANEOUS_FAT, appearance.clutter_fraction / 4)):
        # vessels, lymph nodes, bowel walls and strands in the fat, smaller than a voxel: at a coarse
        # grid they show as scattered soft-tissue voxels, as real CT resampled to the grid does
        clutter = (tissue == fat) & (rng.random(tissue.shape, dtype=np.float32) < fraction)
        ct[clutter] = rng.uniform(-40, 250, size=int(clutter.sum())).astype(np.float32)
    return ct


def _finish(ct: np.ndarray, appearance: Appearance, rng) -> np.ndarray:
    """Blur (slice thickness, partial volume), noise of random grain; int16 HU."""
    ct = ndimage.gaussian_filter(ct, appearance.blur_voxels_zyx, mode="nearest")
    noise = rng.standard_normal(ct.shape).astype(np.float32)
    if appearance.noise_grain_voxels > 0.3:
        noise = ndimage.gaussian_filter(noise, appearance.noise_grain_voxels)
        noise /= max(float(noise.std()), 1e-6)
    ct += appearance.noise_sd_hu * noise
    return np.clip(np.rint(ct), -1024, 3071).astype(np.int16)


def make_randomised_phantom(
    seed: int,
    masses_per_kidney: tuple[int, int] = (0, 3),
    subtype: str | None = None,
    field_of_view: str | None = None,
    phase: str | None = None,
    inplane_voxels: tuple[int, int] = (56, 80),
    slice_spacing_mm: tuple[float, float] = (4.0, 8.0),
    direction: Sequence[float] | None = None,
    kits_shapes: KitsShapes | None = None,
) -> Phantom:
    """A domain-randomised synthetic torso CT and its KiTS label map (deterministic per seed).

    Args:
        seed: random seed; the same seed and arguments give identical voxels.
        masses_per_kidney: inclusive (min, max) number of masses drawn per kidney.
        subtype: KiTS23 ``tumor_histologic_subtype`` of the patient's tumours (drawn when None).
        field_of_view: one of :data:`FIELDS_OF_VIEW` (drawn with its probabilities when None);
            ``chest`` and ``pelvis`` scans hold no kidney and no mass.
        phase: contrast phase, one of :data:`PHASES` (drawn when None).
        inplane_voxels: inclusive range of the in-plane matrix size (voxels per in-plane edge; the
            in-plane spacing follows from the field of view, mm).
        slice_spacing_mm: range of the slice spacing, mm.
        direction: ITK direction cosines of the grid (9 values row-major); default LPS identity.
        kits_shapes: real kidney, tumour and cyst shapes
            (:func:`~renal_nnunet.synthetic.kits_shapes.load_kits_shapes`): each kidney and mass is
            one of them, mirrored, turned and scaled (masses stay ellipsoids if it holds none); None
            for ellipsoid kidneys and masses.

    Returns:
        A :class:`~renal_nnunet.synthetic.phantom.Phantom`; ``field_of_view`` and ``phase`` record
        what was drawn; ``organ_centres_mm`` holds the kidneys present.

    Raises:
        ValueError: unknown field of view or phase, or bad ranges.
    """
    low_count, high_count = masses_per_kidney
    if not 0 <= low_count <= high_count:
        raise ValueError(f"masses_per_kidney must be (min, max) with 0 <= min <= max, got {masses_per_kidney}")
    if not 8 <= inplane_voxels[0] <= inplane_voxels[1] or not 0 < slice_spacing_mm[0] <= slice_spacing_mm[1]:
        raise ValueError(f"bad grid ranges: inplane_voxels {inplane_voxels}, slice_spacing_mm {slice_spacing_mm}")
    rng = np.random.default_rng(seed)
    subtype = str(rng.choice(PHANTOM_SUBTYPES)) if subtype is None else subtype
    names = list(FIELDS_OF_VIEW)
    field_of_view = str(rng.choice(names, p=list(FIELDS_OF_VIEW.values()))) if field_of_view is None else field_of_view
    if field_of_view not in FIELDS_OF_VIEW:
        raise ValueError(f"unknown field of view {field_of_view!r}; expected one of {names}")
    appearance = draw_appearance(rng, phase)

    scale = rng.uniform(0.85, 1.1)
    body_semi = (scale * rng.uniform(140, 195), scale * rng.uniform(100, 145))
    layout = BodyLayout((0.0, 0.0, 0.0), body_semi, scale)
    body = _Body(layout, fat_mm=rng.uniform(5, 40), wall_mm=rng.uniform(7, 14))
    kidneys = _draw_kidneys(layout, rng)
    placed: dict[str, PlacedKidney] = {}
    if kits_shapes is not None:
        for side, kidney in kidneys.items():
            placed[side] = draw_kidney(kits_shapes, side, kidney.centre_mm, scale, rng)
            kidneys[side] = placed[side].envelope()
    bottom, top = _scan_range_mm(field_of_view, 0.0, kidneys, rng)

    fov = 2 * body_semi[0] * rng.uniform(1.05, 1.5)
    n_xy = int(rng.integers(inplane_voxels[0], inplane_voxels[1] + 1))
    dz = rng.uniform(*slice_spacing_mm)
    n_z = max(8, int(round((top - bottom) / dz)))
    spacing = (fov / n_xy, fov / n_xy, dz)
    free = np.array([fov - 2 * body_semi[0], fov - 2 * body_semi[1] - 40])
    centre = np.array([rng.uniform(-0.4, 0.4) * free[0], rng.uniform(-0.4, 0.1) * max(free[1], 0), (top + bottom) / 2])
    direction = tuple(float(d) for d in (direction if direction is not None else np.eye(3).ravel()))
    half_extent = (np.array([n_xy, n_xy, n_z], float) - 1) / 2 * np.asarray(spacing)
    origin = centre - np.asarray(direction).reshape(3, 3) @ half_extent
    geometry = ImageGeometry.from_parts((n_xy, n_xy, n_z), spacing, origin, direction)

    tissue = np.full(geometry.shape_zyx, np.uint8(Tissue.AIR))
    labels = np.zeros(geometry.shape_zyx, np.uint8)
    z_range = (bottom, top)
    _paint_trunk(tissue, geometry, body, rng)
    _paint_muscles_and_vessels(tissue, geometry, body, kidneys, rng)
    _paint_viscera(tissue, geometry, body, rng, oral_contrast=rng.random() < 0.4)
    _paint_skeleton(tissue, geometry, body, z_range, rng)
    for side, kidney in kidneys.items():
        _paint_kidney(tissue, labels, geometry, kidney, side, rng, placed.get(side))
    spacing_zyx = geometry.spacing_mm[::-1]
    voxel_mm = max(spacing_zyx)
    drawn = draw_masses(kidneys, subtype, masses_per_kidney, scale, voxel_mm, rng)
    if kits_shapes is None or not kits_shapes.masses:
        lesions = [lesion for lesion in drawn if paint_mass_label(labels, geometry, lesion, rng) > 0]
    else:
        lesions = [lesion for lesion in drawn if paint_mass_shape(labels, geometry, kits_shapes, lesion.kits_label,
                                                                  lesion.centre_mm, lesion.diameter_mm, rng) > 0]
    tissue[labels >= KITS_LABELS["tumor"]] = Tissue.RENAL_CORTEX
    if rng.random() < 0.8:
        tissue, labels = _deform([tissue, labels], spacing_zyx, rng.uniform(2, 10), rng)
    ct = render(tissue, appearance, spacing_zyx, rng)
    ct_int = np.clip(np.rint(ct), -1024, 3071).astype(np.int16)
    paint_masses(ct_int, labels, (slice(None),) * 3, spacing_zyx, subtype, rng)
    ct = _finish(ct_int.astype(np.float32), appearance, rng)
    in_view = {f"kidney_{side}": k.centre_mm for side, k in kidneys.items()
               if rasterise(geometry, k) is not None and (labels == KITS_LABELS["kidney"]).any()}
    reference = geometry.reference_image()
    return Phantom(image_like(ct, reference), image_like(labels, reference), subtype, lesions, in_view,
                   field_of_view=field_of_view, phase=appearance.phase)
