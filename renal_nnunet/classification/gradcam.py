"""Grad-CAM heat maps for the 3D lesion classifier.

pytorch-grad-cam computes the 3D Grad-CAM (channel weights = spatial mean of the class-score
gradient at ``layer4``; map = ReLU of the weighted feature sum), but it resizes the map with
``scipy.ndimage.zoom``, which aligns the corner voxels and so shifts the map by up to half a feature
cell and overshoots (cubic). We take the library's raw feature-resolution map and upsample it
trilinearly with ``align_corners=False``, which puts each feature cell's value at the centre of
the input voxels it covers.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

__all__ = ["ExplainedForward", "grad_cam", "upsample_cam"]


class _FeatureResolutionGradCAM(GradCAM):
    """pytorch-grad-cam's GradCAM returning the ReLU'd map at feature resolution (no resizing)."""

    def compute_cam_per_layer(self, input_tensor, targets, eigen_smooth):
        activations = [a.cpu().data.numpy() for a in self.activations_and_grads.activations]
        gradients = [g.cpu().data.numpy() for g in self.activations_and_grads.gradients]
        return [
            np.maximum(self.get_cam_image(input_tensor, layer, targets, act, grad, eigen_smooth), 0)[:, None]
            for layer, act, grad in zip(self.target_layers, activations, gradients)
        ]

    def aggregate_multi_layers(self, cam_per_target_layer):
        return np.mean(np.concatenate(cam_per_target_layer, axis=1), axis=1)


class ExplainedForward:
    """One forward pass of the classifier whose Grad-CAM can then be taken for any class.

    A fold ensemble knows the class to explain only after every fold's forward pass; keeping each
    fold's pass (only the head's small graph is kept, see :func:`_backward_stops_at`) gives its map
    without a second forward pass at 128^3. Use as a context manager: leaving it removes the hooks.

    Attributes:
        logits: (1, n_classes) tensor of the forward pass.
    """

    def __init__(self, model: nn.Module, volume: torch.Tensor | np.ndarray, target_layer: nn.Module | None = None):
        tensor = torch.as_tensor(np.asarray(volume) if not isinstance(volume, torch.Tensor) else volume)
        self._shape = tuple(tensor.shape[-3:])
        if tensor.ndim < 3 or tensor.ndim > 5 or tensor[..., 0, 0, 0].numel() != 1:
            raise ValueError(f"expected one volume shaped (D, H, W) or (1, 1, D, H, W), got {tuple(tensor.shape)}")
        self._input = tensor.reshape(1, 1, *self._shape).float().to(next(model.parameters()).device)
        layer = target_layer if target_layer is not None else model.layer4
        with torch.enable_grad(), _backward_stops_at(model, layer):
            self._cam = _FeatureResolutionGradCAM(model=model, target_layers=[layer])  # puts the model in eval mode
            try:
                self.logits = self._cam.activations_and_grads(self._input)
            except BaseException:
                self.close()
                raise

    def cam(self, target_class: int) -> np.ndarray:
        """Grad-CAM of ``target_class`` (index into the logits, ``LESION_CLASSES`` order) at the
        input's resolution: float32 (D, H, W) in [0, 1] (all zeros without positive evidence)."""
        target = ClassifierOutputTarget(int(target_class))
        self._cam.activations_and_grads.gradients = []
        target(self.logits[0]).backward(retain_graph=True)
        raw = self._cam.aggregate_multi_layers(self._cam.compute_cam_per_layer(self._input, [target], False))[0]
        return upsample_cam(raw, self._shape)

    def close(self) -> None:
        self._cam.activations_and_grads.release()

    def __enter__(self) -> "ExplainedForward":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def grad_cam(model: nn.Module, volume: torch.Tensor | np.ndarray, target_class: int,
             target_layer: nn.Module | None = None) -> np.ndarray:
    """Grad-CAM of ``target_class`` for one input volume, at the input's resolution.

    Args:
        model: the classifier (put in eval mode here); default target layer ``model.layer4``.
        volume: (D, H, W), (1, D, H, W) or (1, 1, D, H, W) input as given to the model (windowed
            crop, (z, y, x) order).
        target_class: index into the logits (``LESION_CLASSES`` order).
        target_layer: the convolutional stage to explain.

    Returns:
        float32 array shaped like the volume's spatial dims (D, H, W), scaled to [0, 1] by its
        maximum (all zeros if the class has no positive evidence, e.g. random weights).
    """
    with ExplainedForward(model, volume, target_layer) as forward:
        return forward.cam(target_class)


@contextlib.contextmanager
def _backward_stops_at(model: nn.Module, layer: nn.Module) -> Iterator[None]:
    """Within the block, gradients flow back only as far as ``layer``'s output.

    Grad-CAM needs d score / d activations of the target layer, not the weights' gradients; with
    every parameter frozen and the layer's output made a leaf that requires grad, the backward pass
    covers only the head instead of the whole network (at 128^3, about twice the forward pass).
    Must be entered before pytorch-grad-cam registers its own hooks on ``layer``, so that they see
    an output that requires grad; the graph recorded inside stays usable after the block.
    """
    flags = [parameter.requires_grad for parameter in model.parameters()]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    hook = layer.register_forward_hook(lambda module, inputs, output: output.requires_grad_(True))
    try:
        yield
    finally:
        hook.remove()
        for parameter, flag in zip(model.parameters(), flags):
            parameter.requires_grad_(flag)


def upsample_cam(feature_map: np.ndarray, shape_zyx: tuple[int, int, int]) -> np.ndarray:
    """Trilinear, cell-centred (``align_corners=False``) upsampling of a (d, h, w) map to
    ``shape_zyx``, then scaling to [0, 1] by the maximum (an all-zero map stays zero)."""
    tensor = torch.as_tensor(np.asarray(feature_map, np.float32))[None, None]
    upsampled = F.interpolate(tensor, size=tuple(int(s) for s in shape_zyx), mode="trilinear",
                              align_corners=False)[0, 0].numpy()
    peak = float(upsampled.max())
    return (upsampled / peak if peak > 0 else np.zeros_like(upsampled)).astype(np.float32)
