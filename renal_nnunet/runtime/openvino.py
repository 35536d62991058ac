"""OpenVINO on the CPU: a torch network converted once per checkpoint, cached, compiled at a precision.

A torch network is converted with ``openvino.convert_model`` (traced with an example input at the
model's grid) and cached next to its checkpoint as ``<checkpoint stem>.openvino-<hash>.xml`` (and
``.bin``), the hash being the checkpoint file's SHA-256: a retrained fold gets a new file and is
never served stale. Its INT8 version (NNCF post-training quantisation,
:func:`quantize_model`) is cached beside it as ``<stem>.openvino-<hash>.int8-<calibration hash>.xml``:
keyed on the checkpoint's content and the calibration set. bf16 is no separate file: the fp32 model
compiled with OpenVINO's bf16 inference-precision hint. fp32 and INT8 models compile with the f32
hint (OpenVINO's CPU plugin would otherwise pick bf16 for what is not quantised on CPUs that have
it), so what runs is what :mod:`renal_nnunet.pipeline.quantization` measured. The SHA-256 of each
cached ``.bin`` is recorded beside it (``.sha256``) and checked on every read: a damaged cache entry
is made again, never run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import openvino as ov
import torch
from torch import nn

from renal_nnunet.io import InputError, file_sha256

log = logging.getLogger(__name__)

__all__ = ["compiled_model_path", "int8_model_path", "read_int8_model", "openvino_model", "int8_model",
           "AccuracyControl", "quantize_model", "compile_on_cpu", "run_once", "infer", "OpenVinoNetwork",
           "INFERENCE_PRECISION_HINTS"]

COMPILED_SUFFIX = ".openvino-"
INT8_SUFFIX = ".int8-"
_HASH_CHARS = 16

INFERENCE_PRECISION_HINTS: dict[str, str] = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}
"""OpenVINO's ``INFERENCE_PRECISION_HINT`` for each precision (an INT8 model's unquantised layers run fp32)."""


def compiled_model_path(checkpoint: str | os.PathLike) -> Path:
    """Where the OpenVINO model converted from ``checkpoint`` is cached: next to it, named by its
    content (``fold_0/checkpoint_final.openvino-<16 hex of its SHA-256>.xml``)."""
    checkpoint = Path(checkpoint)
    digest = file_sha256(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}{COMPILED_SUFFIX}{digest[:_HASH_CHARS]}.xml")


def int8_model_path(checkpoint: str | os.PathLike, calibration_sha256: str) -> Path:
    """Where the INT8 model of ``checkpoint`` calibrated on a set of this hash is cached
    (``checkpoint_final.openvino-<checkpoint hash>.int8-<calibration hash>.xml``)."""
    fp32 = compiled_model_path(checkpoint)
    return fp32.with_name(f"{fp32.stem}{INT8_SUFFIX}{calibration_sha256[:_HASH_CHARS]}.xml")


def read_int8_model(checkpoint: str | os.PathLike, calibration_sha256: str):
    """The cached INT8 model of ``checkpoint`` calibrated on the set of this hash.

    Raises:
        InputError: it is not cached (quantise with ``compile-models --precision int8``).
    """
    xml = int8_model_path(checkpoint, calibration_sha256)
    model = _read_cached(xml)
    if model is None:
        raise InputError(xml, "INT8 model missing or damaged: run `renal-nnunet compile-models -m MODELS --precision "
                              "int8 --calibration NNUNET_RAW` again")
    return model


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
    _cache(model, xml, checkpoint)
    return model


@dataclass(frozen=True)
class AccuracyControl:
    """NNCF's accuracy control for one network's INT8 quantisation: after quantising, NNCF ranks the
    quantised operations by how much each costs ``metric`` and returns them to fp32, the most
    harmful first, until the quantised network's ``metric`` on ``items`` is within ``max_drop`` of
    the fp32 network's.

    Attributes:
        items: what ``metric`` is measured on, each ``(input as the network receives it, anything
            the metric compares the output with)``; none of them calibration or held-out cases.
        metric: ``metric(compiled_model, items) -> (value, value of each item)``, higher is better.
        max_drop: the largest absolute drop of ``metric`` accepted.
    """

    items: Sequence[tuple[np.ndarray, Any]]
    metric: Callable[[Any, Iterable[tuple[np.ndarray, Any]]], tuple[float, list[float]]]
    max_drop: float


def int8_model(checkpoint: str | os.PathLike, fp32_model, calibration: Callable[[], Sequence[np.ndarray]],
               calibration_sha256: str, ignored_patterns: Sequence[str] = (),
               accuracy_control: Callable[[], AccuracyControl] | None = None):
    """The INT8 model of a checkpoint: read from the cache, or quantised (:func:`quantize_model`) and cached.

    Args:
        checkpoint: the checkpoint the fp32 model was converted from.
        fp32_model: its OpenVINO model (:func:`openvino_model`).
        calibration: returns the calibration inputs, each as the network receives it (called only
            when the cache has no INT8 model for this checkpoint and calibration set).
        calibration_sha256: names the calibration set in the cache (with the accuracy control's
            cases and bound, when there is one).
        ignored_patterns: regular expressions of OpenVINO operation names left in fp32 (NNCF's ignored scope).
        accuracy_control: returns this network's :class:`AccuracyControl` (called, like
            ``calibration``, only when quantising); None quantises without it.
    """
    xml = int8_model_path(checkpoint, calibration_sha256)
    cached = _read_cached(xml)
    if cached is not None:
        return cached
    log.info("quantising %s to INT8 (NNCF post-training quantisation%s)", checkpoint,
             ", with accuracy control" if accuracy_control else "")
    control = accuracy_control() if accuracy_control else None
    model = quantize_model(fp32_model, calibration(), ignored_patterns, control)
    _cache(model, xml, checkpoint)
    return model


def quantize_model(model, calibration: Sequence[np.ndarray], ignored_patterns: Sequence[str] = (),
                   accuracy_control: AccuracyControl | None = None):
    """NNCF's post-training INT8 quantisation of an OpenVINO model on every calibration input.

    Mixed preset (symmetric weights, asymmetric activations: the U-Nets' leaky ReLUs and instance
    norms give signed activations) and NNCF's fast bias correction; operations whose names match
    ``ignored_patterns`` stay fp32. With ``accuracy_control``, NNCF's
    ``quantize_with_accuracy_control`` then returns operations to fp32 until its bound holds.
    """
    import nncf

    ignored = nncf.IgnoredScope(patterns=list(ignored_patterns), validate=False) if ignored_patterns else None
    settings = dict(preset=nncf.QuantizationPreset.MIXED, target_device=nncf.TargetDevice.CPU,
                    subset_size=len(calibration), fast_bias_correction=True, ignored_scope=ignored)
    if accuracy_control is None:
        return nncf.quantize(model, nncf.Dataset(list(calibration)), **settings)
    return nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(list(calibration)), nncf.Dataset(list(accuracy_control.items), lambda item: item[0]),
        accuracy_control.metric, max_drop=accuracy_control.max_drop, drop_type=nncf.DropType.ABSOLUTE, **settings)


def quantised_operations(model) -> int:
    """How many of an OpenVINO model's operations run in INT8 (NNCF marks each input it quantises
    with a ``FakeQuantize``; 0 for an fp32 model, or for one accuracy control returned whole)."""
    return sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


def _cache(model, xml: Path, checkpoint) -> None:
    try:
        _save_atomically(model, xml)
    except OSError as err:
        log.warning("cannot cache the OpenVINO model of %s next to it (%s); it is made again next run",
                    checkpoint, err)


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
    log.warning("the cached OpenVINO model %s is damaged (%s): making it again", xml, problem)
    for path in paths:
        path.unlink(missing_ok=True)
    return None


def _save_atomically(model, xml: Path) -> None:
    """Save ``model`` as ``xml`` + ``.bin`` (weights as they are); the .xml appears last, so a
    cache entry is complete when its .xml exists. Entries of the same checkpoint name made from
    other checkpoint contents, and other INT8 calibrations of this one, are removed."""
    temporary = xml.with_name(f".{xml.stem}.{uuid.uuid4().hex}.xml")
    try:
        ov.save_model(model, temporary, compress_to_fp16=False)
        xml.with_suffix(".sha256").write_text(file_sha256(temporary.with_suffix(".bin")) + "\n")
        os.replace(temporary.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(temporary, xml)
    finally:
        for leftover in (temporary, temporary.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
    stem, _, key = xml.stem.partition(COMPILED_SUFFIX)
    checkpoint_hash, is_int8 = key.split(".")[0], INT8_SUFFIX in xml.name
    for entry in xml.parent.glob(f"{stem}{COMPILED_SUFFIX}*"):
        entry_key = entry.name[len(stem) + len(COMPILED_SUFFIX):]
        other_checkpoint = not entry_key.startswith(checkpoint_hash + ".")
        other_calibration = is_int8 and INT8_SUFFIX in entry.name and not entry.name.startswith(xml.stem + ".")
        if other_checkpoint or other_calibration:
            entry.unlink(missing_ok=True)


def run_once(model, array: np.ndarray, precision: str = "fp32") -> list[np.ndarray]:
    """Every output of one inference of an OpenVINO model, compiled for this call only.

    A compiled model keeps the intermediate buffers of its last inference (about 0.7 GB for a
    128^3 U-Net), so the 15 networks of a cascade kept compiled held 11 GB; so each inference
    compiles, runs and lets go, at about 0.4 s per 128^3 U-Net pass (the compilation, about 0.1 s,
    and the page faults of fresh buffers).
    """
    return infer(compile_on_cpu(model, precision), array)


def infer(compiled, array: np.ndarray) -> list[np.ndarray]:
    """Every output of one inference of a compiled model (copies: the request's buffers are reused)."""
    request = compiled.create_infer_request()
    request.infer(array)
    return [request.get_output_tensor(index).data.copy() for index in range(len(compiled.outputs))]


def compile_on_cpu(model, precision: str = "fp32"):
    """An OpenVINO model compiled for the CPU at ``precision`` (:data:`INFERENCE_PRECISION_HINTS`),
    tuned for one input at a time."""
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION_HINTS[precision],
                                                  "PERFORMANCE_HINT": "LATENCY"})


class OpenVinoNetwork(nn.Module):
    """An OpenVINO network behind the ``torch.nn.Module`` call nnU-Net's sliding window makes
    (``network(patch)``): float32 tensors in, the first output back as a tensor (see :func:`run_once`).

    Attributes:
        model: the OpenVINO model (fp32, or INT8 from :func:`int8_model`).
        precision: what it is compiled at (``fp32``, ``bf16`` or ``int8``).
    """

    def __init__(self, model, precision: str = "fp32") -> None:
        super().__init__()
        self.model, self.precision = model, precision
        self._compiled = None

    @contextlib.contextmanager
    def kept_compiled(self) -> Iterator[None]:
        """Within the block the network is compiled once and kept (its buffers too), e.g. for the
        two kidney boxes of a case; after it, each pass compiles again (:func:`run_once`)."""
        self._compiled = compile_on_cpu(self.model, self.precision)
        try:
            yield
        finally:
            self._compiled = None

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(patch.detach().cpu().numpy(), dtype=np.float32)
        if self._compiled is not None:
            return torch.from_numpy(infer(self._compiled, array)[0])
        return torch.from_numpy(run_once(self.model, array, self.precision)[0])
