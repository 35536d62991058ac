"""Grad-CAM: matches an independent autograd + scipy computation, and upsampling is cell-centred."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from renal_nnunet.classification import build_classifier, grad_cam
from renal_nnunet.classification.gradcam import ExplainedForward, upsample_cam


def _reference_grad_cam(model, volume, target_class):
    """Grad-CAM from its definition (Selvaraju et al.): weights = spatial mean of d score / d A,
    map = ReLU(sum_k w_k A_k), upsampled cell-centred with scipy (voxel i samples feature
    coordinate (i + 0.5) / scale - 0.5), scaled by its maximum."""
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
    grids = np.meshgrid(*[(np.arange(n) + 0.5) * raw.shape[a] / n - 0.5 for a, n in enumerate(shape)], indexing="ij")
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


def test_upsampling_puts_a_feature_cell_at_the_centre_of_its_voxels():
    feature = np.zeros((5, 5, 5), np.float32)
    feature[1, 2, 3] = 2.0
    cam = upsample_cam(feature, (40, 40, 40))  # stride 8: cell c covers voxels [8c, 8c + 8)
    assert cam.max() == pytest.approx(1.0)
    np.testing.assert_allclose(ndimage.center_of_mass(cam), (11.5, 19.5, 27.5), atol=1e-6)
    assert np.array_equal(upsample_cam(np.zeros((2, 2, 2)), (8, 8, 8)), np.zeros((8, 8, 8), np.float32))


def test_grad_cam_rejects_a_batch():
    with pytest.raises(ValueError, match="expected one volume"):
        grad_cam(build_classifier(), torch.zeros(2, 1, 16, 16, 16), 0)
