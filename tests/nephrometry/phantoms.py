"""Hand-built kidneys with one mass, placed in patient coordinates (LPS mm) and rasterised on any
grid: every nephrometry component is known by construction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import ImageGeometry
from renal_nnunet.synthetic.shapes import Ellipsoid, rasterise

PARENCHYMA_HU, SINUS_FAT_HU, PERIRENAL_FAT_HU, MASS_HU = 160, -90, -100, 40
RIGHT, LEFT = 1, 2


@dataclass(frozen=True)
class Scene:
    """A kidney (the whole organ, sinus included), its sinus fat (opening medially at the hilum)
    and one mass, in LPS mm; ``side`` 1 right or 2 left."""

    kidney: Ellipsoid
    sinus: Ellipsoid
    mass: Ellipsoid
    side: int

    def mirrored(self) -> "Scene":
        """The same scene on the other side of the body (x -> -x)."""
        flip = lambda e: Ellipsoid((-e.centre_mm[0], *e.centre_mm[1:]), e.semi_axes_mm)  # noqa: E731
        return Scene(flip(self.kidney), flip(self.sinus), flip(self.mass), LEFT if self.side == RIGHT else RIGHT)


def _ball(centre, diameter_mm):
    return Ellipsoid(tuple(float(c) for c in centre), (diameter_mm / 2,) * 3)


def exophytic_lower_pole_scene() -> Scene:
    """Right kidney (60 x 60 x 110 mm), a 35 mm mass at its lower pole, lateral and anterior, with
    its centre outside the kidney: R1 E1 N1 A=a L1."""
    centre = np.array([-75.0, 0.0, 0.0])
    kidney = Ellipsoid(tuple(centre), (30.0, 30.0, 55.0))
    sinus = Ellipsoid((-57.0, 0.0, 0.0), (18.0, 12.0, 24.0))  # reaches past the medial surface (x = -45)
    direction = np.array([-0.45, -0.45, -0.77])  # lateral (-x on the right), anterior (-y), inferior
    direction /= np.linalg.norm(direction)
    surface = centre + direction / np.sqrt(np.sum((direction / np.array(kidney.semi_axes_mm)) ** 2))
    return Scene(kidney, sinus, _ball(surface + 0.35 * 35.0 * direction, 35.0), RIGHT)


def endophytic_central_scene() -> Scene:
    """Right kidney (100 x 100 x 170 mm), a 75 mm mass inside it, crossing the axial midline and
    reaching into the sinus: R3 E3 N3 L3."""
    kidney = Ellipsoid((-75.0, 0.0, 0.0), (50.0, 50.0, 85.0))
    sinus = Ellipsoid((-35.0, 0.0, 0.0), (20.0, 15.0, 30.0))  # medial, opening at x = -25
    return Scene(kidney, sinus, _ball((-81.0, 0.0, 2.0), 75.0), RIGHT)


def grid(scene: Scene, spacing_mm=(2.0, 2.0, 3.0), flip_x=False, permute=False, extent_mm=(150.0, 150.0, 210.0)
         ) -> ImageGeometry:
    """A grid of ``extent_mm`` (LPS x, y, z) centred on the scene's kidney, ``spacing_mm`` (x, y, z).
    ``flip_x`` stores the x axis reversed (an RPS affine); ``permute`` stores the axes as KiTS does
    (index axes along inferior, posterior, left)."""
    centre = np.asarray(scene.kidney.centre_mm, float)
    extent = np.asarray(extent_mm, float)
    directions = np.eye(3)
    if flip_x:
        directions[:, 0] *= -1
    spacing = np.asarray(spacing_mm, float)
    if permute:
        directions = np.stack([-np.eye(3)[2], np.eye(3)[1], np.eye(3)[0]], axis=1)
        spacing, extent = spacing[[2, 1, 0]], extent[[2, 1, 0]]
    size = np.ceil(extent / spacing).astype(int)
    origin = centre - directions @ (spacing * (size - 1) / 2)
    return ImageGeometry.from_parts(size, spacing, origin, directions.ravel())


def render(scene: Scene, geometry: ImageGeometry) -> tuple[sitk.Image, sitk.Image, sitk.Image]:
    """(CT in HU, kidney labels: side on the whole kidney and its mass, mass components: 1)."""
    shape = geometry.shape_zyx

    def mask(shape_in_mm: Ellipsoid) -> np.ndarray:
        out = np.zeros(shape, bool)
        region = rasterise(geometry, shape_in_mm)
        if region is not None:
            slices, inside = region
            out[slices] = np.broadcast_to(inside, out[slices].shape)
        return out

    kidney, sinus, mass = mask(scene.kidney), mask(scene.sinus), mask(scene.mass)
    ct = np.full(shape, PERIRENAL_FAT_HU, np.int16)
    ct[kidney] = PARENCHYMA_HU
    ct[kidney & sinus] = SINUS_FAT_HU
    ct[mass] = MASS_HU
    images = []
    for array in (ct, ((kidney | mass) * scene.side).astype(np.uint8), mass.astype(np.uint8)):
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(geometry.reference_image())
        images.append(image)
    return tuple(images)


def hilar_upper_scene() -> Scene:
    """The kidney of :func:`exophytic_lower_pole_scene` with a 30 mm mass on its medial, posterior
    lip at the upper end of the hilum: it touches the hilar opening (h), crosses the upper polar
    line with about a third of it between the lines (L2), lies posterior (p) and medial (PADUA rim 2)."""
    base = exophytic_lower_pole_scene()
    return Scene(base.kidney, base.sinus, _ball((-50.0, 14.0, 25.0), 30.0), RIGHT)


def hand_made_nephrometry(points: bool):
    """A hand-made nephrometry result: a 52 mm mass, R2 E2 N3 p L3 h (PADUA 11), or measurements only."""
    from renal_nnunet.nephrometry.measure import MassMeasurements
    from renal_nnunet.nephrometry.score import MassNephrometry, score_points

    m = MassMeasurements(max_diameter_mm=52.0, endophytic_fraction=0.7, sinus_distance_mm=0.0, anterior_offset_mm=14.0,
                         polar_fraction=0.8, crosses_polar_midline=True, hilum_distance_mm=0.0, sinus_line_fraction=0.9,
                         medial_offset_mm=5.0, sinus_fat_distance_mm=0.0, collecting_system_distance_mm=3.0,
                         centre_distance_mm=20.0, centroid_mm=(0.0, 0.0, 0.0))
    result = MassNephrometry(1, "right", m, score_points(m, hilum_found=True, collecting_system_found=True), "hilum")
    return result if points else result.measurements_only("cystic mass: measurements only")
