"""The synthetic abdomen around the kidneys: body wall, fat, muscles, spine, vessels, liver, spleen.

Everything is placed in a body frame given in patient coordinates (LPS mm): x = the body midline,
y = the body's antero-posterior centre, z = the level of the kidneys' centres. The liver lies on the
patient's RIGHT (smaller LPS x), the spleen and the aorta slightly to the LEFT (larger x), the spine
posterior in the midline. Distances are for an average adult and multiplied by ``scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renal_nnunet.anatomy.geometry import ImageGeometry
from renal_nnunet.synthetic.shapes import Ellipsoid, paint
from renal_nnunet.synthetic.textures import TissueHU

INF = np.inf
SUBCUTANEOUS_FAT_MM = 18.0
ABDOMINAL_WALL_MM = 10.0

# Organ centres relative to the body frame (LPS mm, scale 1) and semi-axes (mm).
KIDNEY_CENTRE_MM = {"right": (-75.0, 50.0, -12.0), "left": (75.0, 50.0, 0.0)}
KIDNEY_SEMI_AXES_MM = (30.0, 25.0, 55.0)  # (lateral, antero-posterior, cranio-caudal)
LIVER = ((-65.0, 0.0, 95.0), (70.0, 85.0, 95.0))
SPLEEN = ((90.0, 45.0, 80.0), (30.0, 48.0, 50.0))


@dataclass(frozen=True)
class BodyLayout:
    """Where the body is: frame origin (LPS mm), body semi-axes (mm, x and y) and a size scale."""

    origin_mm: tuple[float, float, float]
    body_semi_axes_mm: tuple[float, float]
    scale: float = 1.0

    def at(self, offset_mm) -> tuple[float, float, float]:
        """LPS position (mm) of an offset given in the body frame at scale 1."""
        return tuple(float(o + self.scale * d) for o, d in zip(self.origin_mm, offset_mm))

    def size(self, semi_axes_mm) -> tuple[float, float, float]:
        """Scaled semi-axes (mm); infinite axes stay infinite."""
        return tuple(float(self.scale * a) for a in semi_axes_mm)

    def organ_centres_mm(self) -> dict[str, tuple[float, float, float]]:
        """Nominal LPS centres (mm) of the background organs, for checks and documentation."""
        return {"liver": self.at(LIVER[0]), "spleen": self.at(SPLEEN[0]), "spine": self.at((0.0, 60.0, 0.0))}


def _cylinder(layout: BodyLayout, centre_xy, semi_xy) -> Ellipsoid:
    """An elliptic cylinder along the patient's cranio-caudal axis (frame offsets at scale 1)."""
    return Ellipsoid(layout.at((*centre_xy, 0.0)), (*layout.size(semi_xy), INF))


def paint_background(ct: np.ndarray, geometry: ImageGeometry, layout: BodyLayout, hu: TissueHU, rng: np.random.Generator) -> None:
    """Paint air, body wall, visceral fat, bowel, liver, spleen, muscles, spine and vessels (in place).

    Args:
        ct: int16 array (z, y, x) on ``geometry``; overwritten everywhere.
        geometry: the image grid.
        layout: body frame and size.
        hu: tissue attenuations in HU.
        rng: random generator for bowel loops.
    """
    ct[...] = np.int16(hu.air)
    ax, ay = layout.body_semi_axes_mm
    wall, cavity = layout.scale * SUBCUTANEOUS_FAT_MM, layout.scale * (SUBCUTANEOUS_FAT_MM + ABDOMINAL_WALL_MM)
    centre = (layout.origin_mm[0], layout.origin_mm[1], 0.0)
    paint(ct, geometry, Ellipsoid(centre, (ax, ay, INF)), hu.subcutaneous_fat)
    paint(ct, geometry, Ellipsoid(centre, (ax - wall, ay - wall, INF)), hu.muscle)
    paint(ct, geometry, Ellipsoid(centre, (ax - cavity, ay - cavity, INF)), hu.visceral_fat)
    for _ in range(6):  # bowel loops in the anterior abdomen, some holding gas
        loop_centre = (rng.uniform(-80, 80), rng.uniform(-75, -20), rng.uniform(-60, 80))
        loop_semi = rng.uniform(14, 26, size=3)
        paint(ct, geometry, Ellipsoid(layout.at(loop_centre), layout.size(loop_semi)), hu.bowel)
        if rng.random() < 0.4:
            gas_centre = (loop_centre[0], loop_centre[1] - 0.4 * loop_semi[1], loop_centre[2])
            paint(ct, geometry, Ellipsoid(layout.at(gas_centre), layout.size(0.35 * loop_semi)), hu.bowel_gas)
    paint(ct, geometry, Ellipsoid(layout.at(LIVER[0]), layout.size(LIVER[1])), hu.liver)
    paint(ct, geometry, Ellipsoid(layout.at(SPLEEN[0]), layout.size(SPLEEN[1])), hu.spleen)
    for side in (-1.0, 1.0):
        paint(ct, geometry, _cylinder(layout, (side * 42.0, 42.0), (17.0, 15.0)), hu.muscle)  # psoas
        paint(ct, geometry, _cylinder(layout, (side * 35.0, 97.0), (24.0, 17.0)), hu.muscle)  # erector spinae
    paint(ct, geometry, _cylinder(layout, (0.0, 60.0), (22.0, 20.0)), hu.cortical_bone)  # vertebral body
    paint(ct, geometry, _cylinder(layout, (0.0, 60.0), (18.5, 16.5)), hu.trabecular_bone)
    paint(ct, geometry, _cylinder(layout, (0.0, 100.0), (5.0, 15.0)), hu.cortical_bone)  # spinous process
    paint(ct, geometry, _cylinder(layout, (12.0, 28.0), (11.0, 11.0)), hu.aorta)  # aorta, left of midline
    paint(ct, geometry, _cylinder(layout, (-24.0, 32.0), (13.0, 10.0)), hu.ivc)  # IVC, right of midline
