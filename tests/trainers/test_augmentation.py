"""The paper's augmentation: rotation within +-10 deg per axis, in-plane shift within +-10 %, noise.

Ranges are measured on the transformed output (markers whose positions are known), not read
back from the transform's own parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from renal_nnunet.trainers.augmentation import (
    PaperAugmentation,
    RandomInplaneTranslation,
    augment_volume,
    paper_augmentation_transforms,
    shift_volume,
)

SIZE = 48
MARKER_OFFSETS = np.array([(11, 0, 0), (0, 11, 0), (0, 0, 11), (-7, -7, 7)], float)  # voxels from the centre, (z, y, x)
# Voxel positions relative to the volume centre, (z, y, x): the frame batchgeneratorsv2 rotates in.
POSITIONS = np.stack(np.meshgrid(*[np.arange(SIZE)] * 3, indexing="ij"), -1).reshape(-1, 3) - (SIZE - 1) / 2


def _marker_volume() -> torch.Tensor:
    """One smooth blob per channel at a known offset from the volume centre."""
    channels = [np.exp(-((POSITIONS - offset) ** 2).sum(-1) / (2 * 1.5 ** 2)) for offset in MARKER_OFFSETS]
    return torch.from_numpy(np.stack(channels).reshape(-1, SIZE, SIZE, SIZE).astype(np.float32))


def _centroids(volume: torch.Tensor) -> np.ndarray:
    weights = volume.numpy().reshape(len(volume), -1)
    return (weights @ POSITIONS) / weights.sum(1, keepdims=True)


def _fit_rigid(moved: np.ndarray, original: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kabsch: rotation R and translation t with original ~= R @ moved + t."""
    mc, oc = moved.mean(0), original.mean(0)
    u, _, vt = np.linalg.svd((moved - mc).T @ (original - oc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1, 1, d]) @ u.T
    return rotation, oc - rotation @ mc


def _euler_zyx_deg(rotation: np.ndarray) -> np.ndarray:
    """Angles (a, b, c) of batchgeneratorsv2's R = Rz(c) Ry(b) Rx(a), in degrees."""
    a = np.arctan2(rotation[2, 1], rotation[2, 2])
    b = -np.arcsin(np.clip(rotation[2, 0], -1, 1))
    c = np.arctan2(rotation[1, 0], rotation[0, 0])
    return np.rad2deg([a, b, c])


def test_rotation_and_shift_of_markers_stay_within_paper_ranges():
    np.random.seed(0)
    torch.manual_seed(0)
    transforms = paper_augmentation_transforms((SIZE,) * 3, PaperAugmentation(p_noise=0.0), seg_fill=0)
    volume = _marker_volume()
    original = _centroids(volume)
    angles, shifts = [], []
    for _ in range(25):
        out = transforms(image=volume.clone())["image"]
        rotation, translation = _fit_rigid(_centroids(out), original)
        angles.append(_euler_zyx_deg(rotation))
        shifts.append(-rotation.T @ translation)  # content displacement in output voxels, (z, y, x)
    angles, shifts = np.array(angles), np.array(shifts)
    assert np.abs(angles).max() <= 10.0 + 0.3
    assert np.abs(angles).max(axis=0).min() > 5.0, "each axis should actually be rotated"
    assert np.abs(shifts[:, 0]).max() < 0.3, "no translation along z (slices)"
    assert np.abs(shifts[:, 1:]).max() <= 0.1 * SIZE + 0.3
    assert (shifts[:, 1:] > 2).any() and (shifts[:, 1:] < -2).any(), "shifts go both ways in-plane"


def test_translation_moves_image_and_labels_together_by_whole_voxels():
    np.random.seed(1)
    image = torch.zeros((1, 10, 40, 50))
    image[0, 5, 20, 25] = 1.0
    seg = torch.zeros((1, 10, 40, 50))
    seg[0, 5, 20, 25] = 2
    transform = RandomInplaneTranslation(0.1, seg_fill=-1)
    seen = set()
    for _ in range(100):
        out = transform(image=image.clone(), segmentation=seg.clone())
        (z, y, x), = np.argwhere(out["image"][0].numpy() == 1.0)
        (sz, sy, sx), = np.argwhere(out["segmentation"][0].numpy() == 2)
        assert (z, y, x) == (sz, sy, sx) and z == 5
        assert abs(y - 20) <= 4 and abs(x - 25) <= 5
        seen.add((y - 20, x - 25))
        assert set(np.unique(out["segmentation"].numpy())) <= {-1.0, 0.0, 2.0}
    dys, dxs = zip(*seen)
    assert min(dys) <= -3 and max(dys) >= 3 and min(dxs) <= -4 and max(dxs) >= 4


def test_shift_volume_is_exact_and_fills_what_enters():
    volume = torch.arange(2 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 4, 5, 6)
    shifted = shift_volume(volume, (0, 2, -3), fill_value=-7)
    assert torch.equal(shifted[:, :, 2:, :3], volume[:, :, :3, 3:])
    assert (shifted[:, :, :2, :] == -7).all() and (shifted[:, :, :, 3:] == -7).all()
    assert (shift_volume(volume, (0, 9, 0), 0) == 0).all()


def test_noise_is_additive_zero_mean_and_leaves_labels_alone():
    np.random.seed(2)
    torch.manual_seed(2)
    transforms = paper_augmentation_transforms((20, 20, 20), PaperAugmentation(p_rotation=0, p_translation=0))
    image = torch.ones((1, 20, 20, 20))
    seg = torch.randint(0, 3, (1, 20, 20, 20)).float()
    variances = []
    for _ in range(20):
        out = transforms(image=image.clone(), segmentation=seg.clone())
        assert torch.equal(out["segmentation"], seg)
        noise = (out["image"] - image).numpy()
        assert abs(noise.mean()) < 0.05
        variances.append(noise.var())
    assert 0 < min(variances) and max(variances) <= 0.1 * 1.1


def test_augment_volume_keeps_shape_and_dtype():
    np.random.seed(3)
    volume = np.random.default_rng(0).normal(size=(16, 24, 24)).astype(np.float64)
    out = augment_volume(volume)
    assert out.shape == volume.shape and out.dtype == np.float32
    assert augment_volume(np.stack([volume, volume])).shape == (2, 16, 24, 24)
    with pytest.raises(ValueError, match="volume"):
        augment_volume(np.zeros((4, 4)))


def test_translation_fraction_must_be_below_one():
    with pytest.raises(ValueError, match="max_fraction"):
        RandomInplaneTranslation(1.5)
