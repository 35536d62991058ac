"""Grad-CAM: matches an independent autograd + scipy computation, and each feature cell's value
lands on the centre of its receptive field, measured with autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from renal_nnunet.classification import build_classifier, grad_cam
from renal_nnunet.classification.gradcam import ExplainedForward, cam_to_input_grid, feature_cells


def _reference_grad_cam(model, volume, target_class):
    """Grad-CAM from its definition (Selvaraju et al.): weights = spatial mean of d score / d A,
    map = ReLU(sum_k w_k A_k), upsampled with scipy so that feature cell c sits at input voxel
    stride * c (voxel i samples feature coordinate i / stride), scaled by its maximum."""
    captured = {}
    hook = model.layer4.register_forward_hook(lambda module, inputs, output: captured.update(a=output))
    try:
        logits = model(volume)
    finally:
        hook.remove()
    activations = captured["a"]
    (gradients,) = torch.autograd.grad(logits[0, target_class], activations)
    weights = gradients.mean(dim=(2, 3, 4), keepdim=True)
    raw = torch.relu((weights * activations).sum(dim=1))[0].detach().numpy().astype(np.float64)
    shape = volume.shape[-3:]
    grids = np.meshgrid(*[np.arange(n) * raw.shape[a] / n for a, n in enumerate(shape)], indexing="ij")
    upsampled = ndimage.map_coordinates(raw, grids, order=1, mode="nearest")
    return upsampled / upsampled.max() if upsampled.max() > 0 else upsampled


def test_grad_cam_matches_reference_computation():
    torch.manual_seed(3)
    model = build_classifier(num_classes=3).eval()
    volume = torch.randn(1, 1, 32, 24, 40, generator=torch.Generator().manual_seed(4))
    nonzero = 0
    for target in range(3):
        cam = grad_cam(model, volume, target)
        expected = _reference_grad_cam(model, volume, target)
        assert cam.shape == (32, 24, 40) and cam.dtype == np.float32
        np.testing.assert_allclose(cam, expected, atol=1e-4)
        nonzero += cam.max() > 0
    assert nonzero >= 1, "every class gave an all-zero map; the comparison would be vacuous"
    assert all(parameter.requires_grad for parameter in model.parameters()), "weights left frozen"
    assert grad_cam(model, volume[0, 0].numpy(), 0).shape == (32, 24, 40)


def test_one_forward_pass_explains_every_class():
    """The ensemble keeps each fold's pass and explains its class afterwards: same logits as a
    plain forward pass, same maps as separate Grad-CAM runs, for every class in any order."""
    torch.manual_seed(5)
    model = build_classifier(num_classes=3).eval()
    volume = torch.randn(1, 1, 24, 24, 24, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        plain = model(volume)
    with ExplainedForward(model, volume) as forward:
        torch.testing.assert_close(forward.logits.detach(), plain)
        maps = {target: forward.cam(target) for target in (2, 0, 1, 2)}
    for target, cam in maps.items():
        np.testing.assert_allclose(cam, grad_cam(model, volume, target), atol=1e-6)


def _measured_centre(model, size: int, cell: tuple[int, int, int]) -> tuple[tuple[int, ...], np.ndarray]:
    """The layer4 feature shape and the centroid (input voxels, (z, y, x)) of |d cell / d input|
    for a random input: where the cell looks."""
    volume = torch.randn(1, 1, size, size, size, generator=torch.Generator().manual_seed(1), requires_grad=True)
    captured = {}
    hook = model.layer4.register_forward_hook(lambda module, inputs, output: captured.update(a=output))
    try:
        model(volume)
    finally:
        hook.remove()
    (gradient,) = torch.autograd.grad(captured["a"][0, :, cell[0], cell[1], cell[2]].sum(), volume)
    return tuple(captured["a"].shape[-3:]), np.array(ndimage.center_of_mass(gradient[0, 0].abs().numpy()))


@pytest.mark.parametrize("dilated, size, cell", [(True, 64, (2, 3, 4)), (False, 128, (1, 2, 1))],
                         ids=["medicalnet-dilated", "plain"])
def test_a_feature_cell_lands_on_the_centre_of_its_receptive_field(dilated, size, cell):
    """Measured centres are 8c (dilated, stride 8) and 32c (plain, stride 32), not the middle of
    the block of voxels a cell "covers" (8c + 3.5, 32c + 15.5)."""
    torch.manual_seed(2)
    model = build_classifier(num_classes=3, dilated=dilated).eval()
    feature_shape, measured = _measured_centre(model, size, cell)
    one_cell = np.zeros(feature_shape, np.float32)
    one_cell[cell] = 3.0
    cam = cam_to_input_grid(one_cell, (size,) * 3, feature_cells(model))
    peak = np.array(np.unravel_index(np.argmax(cam), cam.shape))
    np.testing.assert_array_less(np.abs(peak - measured), 0.5)
    assert cam.max() == pytest.approx(1.0) and cam.shape == (size,) * 3 and cam.dtype == np.float32
    assert not cam_to_input_grid(np.zeros((2, 2, 2)), (8, 8, 8), feature_cells(model)).any()


def test_grad_cam_rejects_a_batch():
    with pytest.raises(ValueError, match="expected one volume"):
        grad_cam(build_classifier(), torch.zeros(2, 1, 16, 16, 16), 0)
