"""CT intensities (HU) of the synthetic tissues and the textures of the three renal-mass kinds.

Values follow a portal-venous / corticomedullary-phase abdominal CT: fat about -100 HU, muscle
about 50, liver about 100, spleen about 110, bone 400-700, enhancing renal cortex 150-250 HU,
medulla 80-120 HU. Masses: cyst 0-20 HU homogeneous; solid tumour 40-150 HU heterogeneous
(smooth random enhancement pattern); AML soft tissue mixed with macroscopic fat (< -30 HU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

LesionKind = Literal["AML", "cystic", "solid"]
LESION_KINDS: tuple[str, ...] = ("AML", "cystic", "solid")

CYSTIC_SUBTYPES = frozenset({"cyst", "multilocular_cystic_rcc"})


def tumour_kind_for_subtype(subtype: str | None) -> str:
    """Appearance of a KiTS tumour (label 2) given the patient's histologic subtype.

    ``angiomyolipoma`` -> AML; ``cyst`` and ``multilocular_cystic_rcc`` -> cystic; any other
    subtype (or none) -> solid. Cysts (KiTS label 3) are always cystic.
    """
    if subtype == "angiomyolipoma":
        return "AML"
    if subtype in CYSTIC_SUBTYPES:
        return "cystic"
    return "solid"


@dataclass(frozen=True)
class TissueHU:
    """Mean attenuation (HU) of each background tissue for one synthetic patient, and noise sd."""

    air: float
    subcutaneous_fat: float
    visceral_fat: float
    muscle: float
    liver: float
    spleen: float
    trabecular_bone: float
    cortical_bone: float
    aorta: float
    ivc: float
    bowel: float
    bowel_gas: float
    renal_cortex: float
    renal_medulla: float
    sinus_fat: float
    noise_sd: float


def sample_tissue_hu(rng: np.random.Generator) -> TissueHU:
    """Draw one patient's tissue attenuations (HU) within physiological ranges."""
    return TissueHU(
        air=-1000.0,
        subcutaneous_fat=rng.uniform(-110, -90),
        visceral_fat=rng.uniform(-100, -80),
        muscle=rng.uniform(45, 60),
        liver=rng.uniform(90, 115),
        spleen=rng.uniform(105, 125),
        trabecular_bone=rng.uniform(400, 480),
        cortical_bone=rng.uniform(600, 700),
        aorta=rng.uniform(150, 190),
        ivc=rng.uniform(110, 140),
        bowel=rng.uniform(20, 40),
        bowel_gas=rng.uniform(-950, -850),
        renal_cortex=rng.uniform(160, 240),
        renal_medulla=rng.uniform(80, 120),
        sinus_fat=rng.uniform(-90, -70),
        noise_sd=rng.uniform(10, 16),
    )


def smooth_field(shape_zyx: tuple[int, ...], spacing_zyx_mm, correlation_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-sd Gaussian random field (float32) with ~``correlation_mm`` blob size."""
    sigma = [correlation_mm / float(s) for s in spacing_zyx_mm]
    field = ndimage.gaussian_filter(rng.standard_normal(shape_zyx).astype(np.float32), sigma, mode="reflect")
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def lesion_texture_hu(
    kind: LesionKind,
    inside: np.ndarray,
    spacing_zyx_mm,
    rng: np.random.Generator,
    multilocular: bool = False,
) -> np.ndarray:
    """Noise-free HU values (float32, shape of ``inside``) of one mass; only ``inside`` matters.

    Args:
        kind: ``AML``, ``cystic`` or ``solid``.
        inside: boolean mask (z, y, x) of the mass within its bounding box.
        spacing_zyx_mm: voxel spacing in numpy (z, y, x) order, mm.
        rng: random generator (the texture is deterministic given its state).
        multilocular: for cystic masses, add thin enhancing septa (multilocular cystic RCC).

    Raises:
        ValueError: unknown kind.
    """
    if kind not in LESION_KINDS:
        raise ValueError(f"unknown lesion kind {kind!r}; expected one of {LESION_KINDS}")
    field = smooth_field(inside.shape, spacing_zyx_mm, correlation_mm=3.0, rng=rng)
    if kind == "cystic":
        values = np.full(inside.shape, rng.uniform(4, 14), np.float32)
        if multilocular and inside.sum() > 20:
            septa = np.abs(field) < 0.08  # thin walls where the random field crosses zero
            values[septa] = rng.uniform(45, 60)
        return values
    if kind == "solid":
        # heterogeneous enhancement with mean 60-120 HU, clipped to the 40-150 HU promise
        return np.clip(rng.uniform(60, 120) + rng.uniform(18, 28) * field, 40, 150).astype(np.float32)
    soft_tissue = np.clip(rng.uniform(45, 70) + 12 * field, 20, 120)
    fat_fraction = rng.uniform(0.3, 0.7)
    threshold = np.quantile(field[inside], fat_fraction) if inside.any() else 0.0
    fat = field <= threshold  # includes the field's minimum inside, so even a 1-voxel AML has fat
    return np.where(fat, rng.uniform(-110, -70), soft_tissue).astype(np.float32)


def add_noise_hu(ct: np.ndarray, noise_sd_hu: float, rng: np.random.Generator, chunk_voxels: int = 1 << 22) -> None:
    """Add Gaussian noise (sd in HU) to an int16 CT array in place; clip to [-1024, 3071] HU.

    Drawing 10^8 normal deviates dominates painting a large CT, so a pool of at most
    ``2 * chunk_voxels`` rounded deviates is drawn once and each chunk of the flattened volume adds
    a window of it at a random offset: every voxel still gets N(0, sd^2) noise, and the repeats
    are shifted by arbitrary offsets, so no visible pattern appears.
    """
    flat = ct.reshape(-1)
    pool_size = min(flat.size, 2 * chunk_voxels)
    pool = np.rint(noise_sd_hu * rng.standard_normal(pool_size, dtype=np.float32)).astype(np.int16)
    for start in range(0, flat.size, chunk_voxels):
        block = flat[start:start + chunk_voxels]
        offset = int(rng.integers(0, pool_size - block.size + 1))
        block += pool[offset:offset + block.size]
        np.clip(block, -1024, 3071, out=block)
