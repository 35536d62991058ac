"""``renal-nnunet compile-models``: every network of a models folder converted to OpenVINO ahead of time.

``predict`` on the CPU converts each network the first time it runs it and caches the result next
to its checkpoint (:mod:`renal_nnunet.runtime.openvino`); this does it for the whole models folder
at once, e.g. before ``export-models`` (which then packs the compiled files too) or before a
read-only deployment.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from renal_nnunet.pipeline.models import load_models

__all__ = ["compile_models"]

log = logging.getLogger(__name__)


def compile_models(models_dir: str | os.PathLike, folds: Sequence[int] | None = None) -> list[Path]:
    """Convert (or find in the cache) the OpenVINO model of every kidney, mass and classifier checkpoint.

    Args:
        models_dir: a models folder (``manifest.json``).
        folds: nnU-Net folds to compile (default: every fold the manifest lists).

    Returns:
        The cached ``.xml`` files (each with its ``.bin``), kidney folds, mass folds, then the classifiers.

    Raises:
        InputError: not a valid models folder (see :func:`renal_nnunet.pipeline.models.load_models`).
    """
    from renal_nnunet.pipeline.predict import CascadeNetworks
    from renal_nnunet.runtime.backends import Runtime
    from renal_nnunet.runtime.openvino import compiled_model_path

    models_dir = Path(models_dir)
    networks = CascadeNetworks.load(models_dir, load_models(models_dir, folds), Runtime("openvino", "cpu"))
    networks.classifier.load_folds()
    checkpoints = [*networks.kidney.checkpoints, *networks.mass.checkpoints, *networks.classifier.checkpoints]
    compiled = [compiled_model_path(checkpoint) for checkpoint in checkpoints]
    log.info("%d network(s) of %s compiled for OpenVINO", len(compiled), models_dir)
    return compiled
