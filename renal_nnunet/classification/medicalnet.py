"""Loading MedicalNet (Tencent, Chen et al. 2019) pretrained ResNet weights into the classifier.

MedicalNet checkpoints (``resnet_10.pth``, ``resnet_10_23dataset.pth``) are
``{'state_dict': {'module.<key>': tensor}}``: saved from ``nn.DataParallel`` (hence ``module.``)
and carrying a segmentation decoder ``conv_seg.*`` instead of a classification head. The paper
kept the pretrained backbone ("pretrained=1") and trained a new head, so: strip ``module.``, drop
``conv_seg.*``, require every backbone tensor to be present with the right shape, and leave only
the new head (``fc.*``) at its initialisation.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from renal_nnunet.io import InputError

__all__ = ["load_medicalnet"]

log = logging.getLogger(__name__)

_HEAD_PREFIX = "fc."
_DECODER_PREFIX = "conv_seg."
# Old PyTorch (MedicalNet was trained with 0.4) did not store BatchNorm's batch counter.
_OPTIONAL_SUFFIX = "num_batches_tracked"


def load_medicalnet(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load a MedicalNet checkpoint's backbone weights into ``model`` (from :func:`build_classifier`).

    Args:
        model: the classifier; its backbone keys (``conv1.weight``, ``layer1.0.bn1.weight``...)
            must match MedicalNet's ``resnet_10`` after stripping ``module.``.
        path: the ``.pth`` file.

    Returns:
        The model keys left at their initialisation (the classification head).

    Raises:
        InputError: unreadable file, not a MedicalNet checkpoint, or a checkpoint of another
            architecture (missing, extra or differently shaped backbone tensors; e.g. ResNet-18/50
            or shortcut type A).
    """
    path = Path(path)
    checkpoint_state = _read_state_dict(path)
    backbone = {
        key.removeprefix("module."): value
        for key, value in checkpoint_state.items()
        if not key.removeprefix("module.").startswith(_DECODER_PREFIX)
    }
    model_state = model.state_dict()
    expected = {k for k in model_state if not k.startswith(_HEAD_PREFIX)}
    missing = sorted(k for k in expected - backbone.keys() if not k.endswith(_OPTIONAL_SUFFIX))
    unexpected = sorted(backbone.keys() - expected)
    mismatched = sorted(
        f"{k} {tuple(backbone[k].shape)} (model {tuple(model_state[k].shape)})"
        for k in expected & backbone.keys()
        if tuple(backbone[k].shape) != tuple(model_state[k].shape)
    )
    problems = [
        f"{label}: {_abbreviate(keys)}"
        for label, keys in (("missing tensors", missing), ("unexpected tensors", unexpected),
                            ("shape mismatches", mismatched))
        if keys
    ]
    if problems:
        raise InputError(
            path,
            "is not a MedicalNet ResNet-10 checkpoint for this model (" + "; ".join(problems)
            + "). Use resnet_10.pth or resnet_10_23dataset.pth (shortcut type B).",
        )
    model.load_state_dict(backbone, strict=False)
    left_initialised = sorted(k for k in model_state if k not in backbone)
    log.info("loaded %d MedicalNet tensors from %s; newly initialised: %s", len(backbone), path,
             _abbreviate(left_initialised))
    return left_initialised


def read_torch_checkpoint(path: str | os.PathLike, what: str) -> object:
    """``torch.load`` (CPU, weights only) with clear errors naming the file.

    Args:
        path: the checkpoint file.
        what: what the file should be, for the message (e.g. ``"MedicalNet checkpoint"``).

    Raises:
        InputError: missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{what} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types (pickle, zip, safety checks)
        raise InputError(path, f"cannot be read as a PyTorch checkpoint: {type(err).__name__}: {err}") from None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    checkpoint = read_torch_checkpoint(path, "MedicalNet checkpoint")
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "is not a MedicalNet checkpoint: expected {'state_dict': {'module.<name>': tensor}}")
    return state


def _abbreviate(keys: list[str], shown: int = 5) -> str:
    more = f" ... (+{len(keys) - shown} more)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more
