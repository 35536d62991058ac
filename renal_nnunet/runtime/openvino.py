"""OpenVINO on the CPU: a torch network converted once per checkpoint, cached, compiled in fp32.

A torch network is converted with ``openvino.convert_model`` (traced with an example input at the
model's grid) and cached next to its checkpoint as ``<checkpoint stem>.openvino-<hash>.xml`` (and
``.bin``), the hash being the checkpoint file's SHA-256: a retrained fold gets a new file and is
never served stale. The SHA-256 of the cached ``.bin`` is recorded beside it (``.sha256``) and
checked on every read: a damaged cache entry is converted again, never run. The compiled model runs in fp32 (OpenVINO's CPU plugin would pick bf16 on CPUs
that have it).
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import openvino as ov
import torch
from torch import nn

from renal_nnunet.io import file_sha256

log = logging.getLogger(__name__)

__all__ = ["compiled_model_path", "openvino_model", "compile_on_cpu", "run_once", "OpenVinoNetwork"]

COMPILED_SUFFIX = ".openvino-"
_HASH_CHARS = 16


def compiled_model_path(checkpoint: str | os.PathLike) -> Path:
    """Where the OpenVINO model converted from ``checkpoint`` is cached: next to it, named by its
    content (``fold_0/checkpoint_final.openvino-<16 hex of its SHA-256>.xml``)."""
    checkpoint = Path(checkpoint)
    digest = file_sha256(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}{COMPILED_SUFFIX}{digest[:_HASH_CHARS]}.xml")


def openvino_model(checkpoint: str | os.PathLike, build: Callable[[], tuple]):
    """The OpenVINO model of a checkpoint's network: read from the cache, or converted and cached.

    Args:
        checkpoint: the checkpoint file the network's weights come from (its content names the cache).
        build: returns ``(torch module in eval mode with the checkpoint's weights, example input)``;
            called only when the cache has no model for this checkpoint.

    Returns:
        An ``openvino.Model``. A folder that cannot be written (read-only models) only costs the
        conversion on every run; it is logged.
    """
    xml = compiled_model_path(checkpoint)
    cached = _read_cached(xml)
    if cached is not None:
        return cached
    module, example_input = build()
    log.info("converting %s to OpenVINO (once per checkpoint)", checkpoint)
    with torch.no_grad():
        model = ov.convert_model(module, example_input=example_input)
    try:
        _save_atomically(model, xml)
    except OSError as err:
        log.warning("cannot cache the OpenVINO model of %s next to it (%s); it is converted again next run",
                    checkpoint, err)
    return model


def _read_cached(xml: Path):
    """The cached model, or None when the cache has none or a damaged one (which is removed): its
    ``.bin`` must match the SHA-256 recorded when it was saved, and OpenVINO must read it."""
    paths = (xml, xml.with_suffix(".bin"), xml.with_suffix(".sha256"))
    if not all(path.is_file() for path in paths):
        return None
    try:
        if paths[2].read_text().strip() == file_sha256(paths[1]):
            return ov.Core().read_model(xml)
        problem = "its weights do not match the recorded SHA-256"
    except (OSError, RuntimeError) as err:
        problem = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    log.warning("the cached OpenVINO model %s is damaged (%s): converting it again", xml, problem)
    for path in paths:
        path.unlink(missing_ok=True)
    return None


def _save_atomically(model, xml: Path) -> None:
    """Save ``model`` as ``xml`` + ``.bin`` in fp32 with the ``.bin``'s SHA-256 beside them; the
    .xml appears last, so a cache entry is complete when its .xml exists. Other conversions of the
    same checkpoint name are removed."""
    temporary = xml.with_name(f".{xml.stem}.{uuid.uuid4().hex}.xml")
    try:
        ov.save_model(model, temporary, compress_to_fp16=False)
        xml.with_suffix(".sha256").write_text(file_sha256(temporary.with_suffix(".bin")) + "\n")
        os.replace(temporary.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(temporary, xml)
    finally:
        for leftover in (temporary, temporary.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
    stem = xml.name.split(COMPILED_SUFFIX)[0]
    for stale in xml.parent.glob(f"{stem}{COMPILED_SUFFIX}*"):
        if stale.stem != xml.stem:
            stale.unlink(missing_ok=True)


def run_once(model, array: np.ndarray) -> list[np.ndarray]:
    """Every output of one inference of an OpenVINO model, compiled for this call only.

    A compiled model keeps the intermediate buffers of its last inference (about 0.7 GB for a
    128^3 U-Net), so the 15 networks of a cascade kept compiled held 11 GB; so each inference
    compiles, runs and lets go, at about 0.4 s per 128^3 U-Net pass (the compilation, about 0.1 s,
    and the page faults of fresh buffers).
    """
    compiled = compile_on_cpu(model)
    request = compiled.create_infer_request()
    request.infer(array)
    return [request.get_output_tensor(index).data.copy() for index in range(len(compiled.outputs))]


def compile_on_cpu(model):
    """An OpenVINO model compiled for the CPU in fp32, tuned for one input at a time."""
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})


class OpenVinoNetwork(nn.Module):
    """An OpenVINO network behind the ``torch.nn.Module`` call nnU-Net's sliding window makes
    (``network(patch)``): float32 tensors in, the first output back as a tensor (see :func:`run_once`)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(patch.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(run_once(self.model, array)[0])
