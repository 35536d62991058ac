"""``renal-nnunet compile-models``: every network of a models folder converted to OpenVINO ahead
of time and, with ``--precision int8|bf16|auto``, quantised and measured against fp32.

``predict`` on the CPU converts each network the first time it runs it and caches the result next
to its checkpoint (:mod:`renal_nnunet.runtime.openvino`); this does it for the whole models folder
at once, e.g. before ``export-models`` (which then packs the compiled files too) or before a
read-only deployment. A reduced precision needs the nnU-Net raw folder the models were trained
from (``--calibration``): :mod:`renal_nnunet.pipeline.quantization` calibrates INT8 on part of it
and measures every reduced precision on the rest, and records the figures in the models folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from renal_nnunet.pipeline.models import load_models

__all__ = ["compile_models", "measured_precisions"]

log = logging.getLogger(__name__)


def measured_precisions(precision: str) -> tuple[str, ...]:
    """The reduced precisions ``compile-models --precision`` measures: none for fp32, bf16 for
    bf16, and both for ``int8`` and ``auto`` (bf16 only where the CPU has it natively: what
    ``auto`` falls back to when INT8 misses the bounds).

    Raises:
        ValueError: an unknown precision.
    """
    from renal_nnunet.runtime.backends import PRECISIONS

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return {"fp32": (), "bf16": ("bf16",)}.get(precision, ("int8", "bf16"))


def compile_models(models_dir: str | os.PathLike, folds: Sequence[int] | None = None, precision: str = "fp32",
                   calibration: str | os.PathLike | None = None, config=None) -> dict:
    """Convert (or find in the cache) the OpenVINO model of every kidney, mass and classifier
    checkpoint, and with a reduced ``precision`` quantise and measure each stage.

    Args:
        models_dir: a models folder (``manifest.json``).
        folds: nnU-Net folds to compile (default: every fold the manifest lists).
        precision: ``fp32`` (convert only), ``int8``, ``bf16`` or ``auto`` (both; see
            :func:`measured_precisions`).
        calibration: the nnU-Net raw folder holding the stages' training datasets and the
            converter's ``RenalLesions`` (needed for a reduced precision).
        config: a :class:`~renal_nnunet.pipeline.quantization.QuantizationConfig` (its
            ``precisions`` are replaced by the ones ``precision`` asks for).

    Returns:
        ``{"files": the cached fp32 .xml files, "agreement": {stage: StageAgreement}}`` (the
        agreement empty for fp32).

    Raises:
        InputError: not a valid models folder (see :func:`renal_nnunet.pipeline.models.load_models`),
            or calibration data missing for a reduced precision.
    """
    from dataclasses import replace

    from renal_nnunet.io import InputError
    from renal_nnunet.pipeline.predict import CascadeNetworks
    from renal_nnunet.pipeline.quantization import QuantizationConfig, measure_classifier, measure_unet_stage
    from renal_nnunet.runtime.backends import Runtime
    from renal_nnunet.runtime.openvino import compiled_model_path

    models_dir = Path(models_dir)
    reduced = measured_precisions(precision)
    manifest = load_models(models_dir, folds)
    networks = CascadeNetworks.load(models_dir, manifest, Runtime("openvino", "cpu", "fp32"))
    networks.classifier.load_folds()
    checkpoints = [*networks.kidney.checkpoints, *networks.mass.checkpoints, *networks.classifier.checkpoints]
    compiled = [compiled_model_path(checkpoint) for checkpoint in checkpoints]
    log.info("%d network(s) of %s compiled for OpenVINO", len(compiled), models_dir)
    agreement = {}
    if reduced:
        if calibration is None:
            raise InputError(None, f"--precision {precision} needs --calibration NNUNET_RAW: the nnU-Net raw folder "
                                   "the models were trained from (calibration and held-out cases)")
        config = replace(config or QuantizationConfig(), precisions=reduced)
        for stage, ensemble in (("kidney", networks.kidney), ("mass", networks.mass)):
            agreement[stage] = measure_unet_stage(ensemble.model_dir, ensemble.folds, calibration, config)
        agreement["classifier"] = measure_classifier(networks.classifier.checkpoints, calibration, config)
    return {"files": compiled, "agreement": agreement}
