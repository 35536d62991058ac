"""``renal-nnunet compile-models``: every network of a models folder converted to OpenVINO ahead of time.

``predict`` on the CPU converts each network the first time it runs it and caches the result next
to its checkpoint (:mod:`renal_nnunet.inference.openvino_backend`); this does it for the whole
models folder at once, e.g. before ``export-models`` (which then packs the compiled files too) or
before a read-only deployment.
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
    from renal_nnunet.classification.predict import load_for_backend
    from renal_nnunet.inference.openvino_backend import compiled_model_path
    from renal_nnunet.inference.stage import compiled_fold_networks, fold_checkpoint

    models_dir = Path(models_dir)
    manifest = load_models(models_dir, folds)
    compiled = []
    for stage in (manifest.kidney, manifest.mass):
        stage_dir = (models_dir / stage.path).resolve()
        compiled_fold_networks(stage_dir, stage.folds)
        compiled += [compiled_model_path(fold_checkpoint(stage_dir, fold)) for fold in stage.folds]
    for relative in manifest.classifier:
        load_for_backend(models_dir / relative, "cpu", "openvino")
        compiled.append(compiled_model_path(models_dir / relative))
    log.info("%d network(s) of %s compiled for OpenVINO", len(compiled), models_dir)
    return compiled
