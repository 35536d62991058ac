"""The lesion classifier on OpenVINO, Grad-CAM included.

The compiled network returns the Grad-CAM layer's feature maps (``layer4``) with the logits, from
one forward pass. The map of a class is then pytorch-grad-cam's own Grad-CAM taken on the head
alone (global average pooling -> MLP, a few hundred kilobytes of weights, in torch): the class
score's gradient with respect to those feature maps is all Grad-CAM needs, and the head is the
only part of the network it flows through. So the map equals the PyTorch Grad-CAM up to the
backends' difference in the features (tested to 1e-4), at the cost of the head's backward pass.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from renal_nnunet.classification.gradcam import FeatureResolutionGradCAM, cam_to_input_grid, feature_cells
from renal_nnunet.runtime.backends import NETWORK_CLOCK
from renal_nnunet.runtime.openvino import openvino_model, read_int8_model, run_once

__all__ = ["OpenVinoClassifierFold", "CompiledExplainedForward"]


class _FeaturesAndLogits(nn.Module):
    """The classifier returning ``(layer4 feature maps, logits)``: what is converted to OpenVINO."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.forward_features(volume)
        return features, self.model.forward_head(features)


class _HeadOnFeatures(nn.Module):
    """The classifier's head on given feature maps, behind an identity layer for Grad-CAM's hooks."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.features(features))


class OpenVinoClassifierFold:
    """A classifier checkpoint compiled by OpenVINO for the CPU (converted once, cached next to
    the checkpoint by :func:`renal_nnunet.runtime.openvino.openvino_model`): a
    :class:`~renal_nnunet.classification.ensemble.ClassifierFold`.

    Each pass compiles the network and lets it go (:func:`~renal_nnunet.runtime.openvino.run_once`):
    a compiled 128^3 ResNet-10 keeps about 0.22 GB of buffers in fp32, so the five folds kept
    compiled over a case's masses took the OpenVINO cascade from 2.7 to 3.8 GB, over its 3 GB bound,
    to save about 0.2 s per pass.

    Args:
        precision: ``fp32``, ``bf16`` (the fp32 model with OpenVINO's bf16 hint) or ``int8``.
        calibration_sha256: with ``int8``, the calibration set whose INT8 model is read.
    """

    device = "cpu"

    def __init__(self, model: nn.Module, checkpoint: str | os.PathLike, grid: int, precision: str = "fp32",
                 calibration_sha256: str | None = None) -> None:
        self.grid, self.precision = grid, precision
        model = model.cpu().eval()
        for parameter in model.parameters():  # the CAM needs gradients of the features only
            parameter.requires_grad_(False)
        self.head = _HeadOnFeatures(model)
        self.cells = feature_cells(model)  # where layer4's cells sit on the input, as the torch CAM places them
        example_input = torch.zeros((1, 1, grid, grid, grid))
        if precision == "int8":
            self.model = read_int8_model(checkpoint, calibration_sha256)
        else:
            self.model = openvino_model(checkpoint, lambda: (_FeaturesAndLogits(model).eval(), example_input))

    def features_and_logits(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(layer4 feature maps (1, 512, d, h, w), logits (1, n_classes))`` of one forward pass."""
        array = np.ascontiguousarray(volume.detach().cpu().numpy(), dtype=np.float32)
        with NETWORK_CLOCK.timing():
            features, logits = run_once(self.model, array, self.precision)
        return torch.from_numpy(features), torch.from_numpy(logits)

    def logits(self, volume: torch.Tensor) -> torch.Tensor:
        """(1, n_classes) logits of a (1, 1, D, H, W) crop, as the torch model returns them."""
        return self.features_and_logits(volume)[1]

    def explained_forward(self, volume: torch.Tensor) -> "CompiledExplainedForward":
        """The forward pass whose Grad-CAM can then be taken for any class."""
        return CompiledExplainedForward(self, volume)


class CompiledExplainedForward:
    """:class:`renal_nnunet.classification.gradcam.ExplainedForward` for an :class:`OpenVinoClassifierFold`:
    one forward pass whose Grad-CAM can then be taken for any class.

    Attributes:
        logits: (1, n_classes) tensor of the forward pass.
    """

    def __init__(self, classifier: OpenVinoClassifierFold, volume: torch.Tensor) -> None:
        self._head = classifier.head
        self._cells = classifier.cells
        self._shape = tuple(volume.shape[-3:])
        self._features, self.logits = classifier.features_and_logits(volume)

    def cam(self, target_class: int) -> np.ndarray:
        """Grad-CAM of ``target_class`` at the input's resolution, float32 (D, H, W) in [0, 1]."""
        grad_cam = FeatureResolutionGradCAM(model=self._head, target_layers=[self._head.features])
        try:
            features = self._features.detach().requires_grad_(True)  # Grad-CAM's hooks need a graph from here
            raw = grad_cam(features, [ClassifierOutputTarget(int(target_class))])[0]
        finally:
            grad_cam.activations_and_grads.release()
        return cam_to_input_grid(raw, self._shape, self._cells)

    def __enter__(self) -> "CompiledExplainedForward":
        return self

    def __exit__(self, *exc) -> None:
        self._features = None
