"""The classifier's fold ensemble on one runtime: each fold's network behind one interface.

A :class:`ClassifierEnsemble` is built once per run from the fold checkpoints and a
:class:`~renal_nnunet.runtime.backends.Runtime`; :meth:`ClassifierEnsemble.load_folds` gives one
:class:`ClassifierFold` per checkpoint, the torch network (:class:`TorchClassifierFold`) or its
OpenVINO compilation
(:class:`~renal_nnunet.classification.openvino_classifier.OpenVinoClassifierFold`), each with the
same two calls: the logits of a crop, and a forward pass whose Grad-CAM can be taken afterwards.
The folds are loaded per call, not kept: five ResNet-10s are a few hundred MB that the U-Net
stages of the next case do not need beside them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import torch
from torch import nn

from renal_nnunet.classification.gradcam import ExplainedForward
from renal_nnunet.classification.train import load_classifier
from renal_nnunet.io import InputError
from renal_nnunet.runtime.backends import NETWORK_CLOCK, Runtime

__all__ = ["ClassifierFold", "TorchClassifierFold", "ClassifierEnsemble"]


class ClassifierFold(Protocol):
    """One fold of the classifier on a runtime.

    Attributes:
        grid: the crop grid edge (voxels) the fold was trained on.
        device: the torch device its inputs go to.
    """

    grid: int
    device: str

    def logits(self, volume: torch.Tensor) -> torch.Tensor:
        """(1, n_classes) logits of a (1, 1, D, H, W) crop."""

    def explained_forward(self, volume: torch.Tensor):
        """A forward pass (a context manager with ``logits`` and ``cam(target_class)``) whose
        Grad-CAM can be taken for any class afterwards."""


class TorchClassifierFold:
    """A classifier checkpoint's torch network on a torch device."""

    def __init__(self, model: nn.Module, grid: int, device: str) -> None:
        self.model, self.grid, self.device = model, grid, device

    def logits(self, volume: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), NETWORK_CLOCK.timing():
            return self.model(volume)

    def explained_forward(self, volume: torch.Tensor) -> ExplainedForward:
        with NETWORK_CLOCK.timing():
            return ExplainedForward(self.model, volume)


class ClassifierEnsemble:
    """The classifier's fold checkpoints on one runtime.

    Args:
        checkpoints: classifier checkpoints (one per fold) from ``train_classifier``.
        runtime: what runs the forward passes (default ``Runtime.resolve()``: OpenVINO on the CPU);
            its precision is made the classifier's by :meth:`Runtime.for_stage` from the agreement
            recorded in the checkpoints' folder (:mod:`renal_nnunet.runtime.agreement`).

    Attributes:
        folder: the checkpoints' common folder (where their agreement record lives).
        runtime: the classifier's resolved runtime (its ``precision`` and ``reason``).
        agreement: the recorded agreement with fp32 for these checkpoints, or None.

    Raises:
        InputError: no checkpoints.
        ValueError: a precision the classifier cannot run (see :meth:`Runtime.for_stage`).
    """

    def __init__(self, checkpoints: Sequence[str | os.PathLike], runtime: Runtime | None = None) -> None:
        from renal_nnunet.runtime.agreement import read_stage_agreement

        if not checkpoints:
            raise InputError(None, "no classifier checkpoints given")
        self.checkpoints = tuple(Path(c) for c in checkpoints)
        self.folder = Path(os.path.commonpath([c.resolve().parent for c in self.checkpoints]))
        runtime = runtime or Runtime.resolve()
        self.agreement = read_stage_agreement(self.folder, self.checkpoints) if runtime.backend == "openvino" else None
        self.runtime = runtime.for_stage(self.agreement)

    def __repr__(self) -> str:
        return f"ClassifierEnsemble({len(self.checkpoints)} folds, runtime={self.runtime})"

    def load_fold(self, checkpoint: str | os.PathLike, precision: str | None = None) -> ClassifierFold:
        """One checkpoint on this ensemble's runtime (an OpenVINO one converted once and cached
        next to the checkpoint), at ``precision`` (default the runtime's).

        Raises:
            InputError: a missing or bad checkpoint, or its INT8 model missing.
        """
        model, info = load_classifier(checkpoint, self.runtime.device)
        if self.runtime.backend == "openvino":
            from renal_nnunet.classification.openvino_classifier import OpenVinoClassifierFold

            precision = precision or self.runtime.precision
            calibration = self.agreement.calibration["sha256"] if precision == "int8" else None
            return OpenVinoClassifierFold(model, checkpoint, int(info["grid"]), precision, calibration)
        return TorchClassifierFold(model, int(info["grid"]), self.runtime.device)

    def load_folds(self, precision: str | None = None) -> list[ClassifierFold]:
        """Every fold on this ensemble's runtime (at ``precision``, default the runtime's), in checkpoint order."""
        return [self.load_fold(checkpoint, precision) for checkpoint in self.checkpoints]
