"""Grad-CAM heat maps for the 3D lesion classifier.

pytorch-grad-cam computes the 3D Grad-CAM (channel weights = spatial mean of the class-score
gradient at ``layer4``; map = ReLU of the weighted feature sum), but it resizes the map with
``scipy.ndimage.zoom``, which aligns the corner voxels and overshoots (cubic). We take the
library's raw feature-resolution map and put each feature cell's value at the centre of its
receptive field (:func:`feature_cells`, derived from the network's convolutions and pools), then
interpolate linearly between cells (:func:`cam_to_input_grid`). With padded stride-2 layers cell
``c`` is centred at input voxel ``8c`` (MedicalNet's dilated layout) or ``32c`` (plain ResNet-10),
not at the centre of the block of voxels it "covers" (``8c + 3.5``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

__all__ = ["FeatureResolutionGradCAM", "ExplainedForward", "grad_cam", "FeatureCells", "feature_cells", "cam_to_input_grid"]


class FeatureResolutionGradCAM(GradCAM):
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
        self._cells = feature_cells(model, layer)
        with torch.enable_grad(), _backward_stops_at(model, layer):
            self._cam = FeatureResolutionGradCAM(model=model, target_layers=[layer])  # puts the model in eval mode
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
        return cam_to_input_grid(raw, self._shape, self._cells)

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


@dataclass(frozen=True)
class FeatureCells:
    """Where a feature map's cells sit on the input grid: along numpy axis ``a`` (z, y, x), cell
    ``c`` is centred at input voxel ``stride_zyx[a] * c + offset_zyx[a]`` (input voxel units).

    The centre is that of the cell's receptive field (the composed kernels' centres), which is
    where the gradient of the cell with respect to the input is centred.
    """

    stride_zyx: tuple[int, int, int]
    offset_zyx: tuple[float, float, float]


def feature_cells(model: nn.Module, layer: nn.Module | None = None) -> FeatureCells:
    """The :class:`FeatureCells` of ``layer``'s output (default ``model.layer4``), composed from
    every ``Conv3d`` / ``MaxPool3d`` / ``AvgPool3d`` up to and including ``layer``, in
    registration order (the forward order of a ResNet). Residual shortcuts (``downsample``
    branches) are skipped: they must align with the main path for the sum to be defined.

    Raises:
        ValueError: ``layer`` is not a module of ``model``.
    """
    layer = layer if layer is not None else model.layer4
    layer_name = next((name for name, module in model.named_modules() if module is layer), None)
    if layer_name is None:
        raise ValueError("the target layer is not a module of the model")
    stride, offset = np.ones(3, int), np.zeros(3)
    reached = False
    for name, module in model.named_modules():
        reached |= name == layer_name
        if reached and not (name == layer_name or name.startswith(layer_name + ".")):
            break
        if "downsample" in name.split(".") or not isinstance(module, (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d)):
            continue
        kernel, step, padding, dilation = (np.broadcast_to(getattr(module, attribute, 1), 3)
                                           for attribute in ("kernel_size", "stride", "padding", "dilation"))
        # this layer's output voxel i is centred at its input position step * i + centre
        offset = offset + stride * ((kernel - 1) / 2 * dilation - padding)
        stride = stride * step
    return FeatureCells(tuple(int(s) for s in stride), tuple(float(o) for o in offset))


def cam_to_input_grid(cam: np.ndarray, shape_zyx: tuple[int, int, int], cells: FeatureCells) -> np.ndarray:
    """A feature-resolution Grad-CAM (d, h, w), values at the cells' receptive-field centres, as a
    map on the input grid: linear interpolation between cell centres along each axis (input
    voxels beyond the first or last centre take that cell's value), then scaled to [0, 1] by its
    maximum (an all-zero map stays zero). Shared by every backend that yields feature maps.

    Args:
        cam: (d, h, w) map at the target layer's resolution, numpy (z, y, x) order.
        shape_zyx: the input's spatial shape (voxels).
        cells: where the cells sit on the input grid (:func:`feature_cells` of the network).

    Returns:
        float32 (D, H, W) map in [0, 1].
    """
    cam = np.asarray(cam, np.float64)
    for axis, (n_out, step, offset) in enumerate(zip(shape_zyx, cells.stride_zyx, cells.offset_zyx)):
        weights = _linear_weights(int(n_out), cam.shape[axis], step, offset)
        cam = np.moveaxis(np.tensordot(weights, cam, axes=([1], [axis])), 0, axis)
    peak = float(cam.max())
    return (cam / peak if peak > 0 else np.zeros_like(cam)).astype(np.float32)


def _linear_weights(n_out: int, n_cells: int, stride: int, offset: float) -> np.ndarray:
    """(n_out, n_cells) linear-interpolation weights sampling cell coordinate (x - offset) / stride
    at each input voxel x, clamped to the first and last cell."""
    position = np.clip((np.arange(n_out) - offset) / stride, 0, n_cells - 1)
    low = np.minimum(np.floor(position).astype(int), max(n_cells - 2, 0))
    fraction = position - low
    weights = np.zeros((n_out, n_cells))
    weights[np.arange(n_out), low] = 1 - fraction
    if n_cells > 1:
        weights[np.arange(n_out), low + 1] += fraction
    return weights
