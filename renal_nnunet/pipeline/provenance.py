"""What produced a result: a prediction's run record (what the models were trained on, the
manifest's ``training`` entry, is :mod:`renal_nnunet.pipeline.training_provenance`).

The run record (``predict_summary.json``'s ``run``, and the DICOM objects' description fields)
names the package versions, the device, the settings and the SHA-256 of every model file used, so
a study can say exactly which models and code gave each result.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from renal_nnunet.io import file_sha256
from renal_nnunet.nnunet.layout import fold_checkpoint
from renal_nnunet.pipeline.models import MANIFEST_NAME, ModelsManifest, package_versions

__all__ = ["model_files", "run_record"]


def model_files(models_dir: str | os.PathLike, manifest: ModelsManifest) -> list[Path]:
    """Every file a prediction with ``manifest`` (folds as narrowed by :func:`load_models`) reads:
    the manifest, each stage's plans, dataset.json and fold checkpoints, the classifier checkpoints."""
    models_dir = Path(models_dir)
    files = [models_dir / MANIFEST_NAME]
    for stage in (manifest.kidney, manifest.mass):
        files += [models_dir / stage.path / name for name in ("plans.json", "dataset.json")]
        files += [fold_checkpoint(models_dir / stage.path, fold) for fold in stage.folds]
    return files + [models_dir / relative for relative in manifest.classifier]


def run_record(models_dir: Path, manifest: ModelsManifest, config, precisions: dict | None = None) -> dict:
    """What produces a result: package versions, the device, the settings (``config``, a
    ``PredictConfig``), each stage's precision and why (``precisions``, from
    ``CascadeNetworks.precisions``), and the SHA-256 of every model file used (by path relative to
    the models folder; ``models_sha256`` hashes them all)."""
    hashes = {path.relative_to(models_dir).as_posix(): file_sha256(path) for path in model_files(models_dir, manifest)}
    versions = package_versions(("renal_nnunet", "nnunetv2", "torch", "SimpleITK", "highdicom", "pydicom", "openvino",
                                 "nncf"))
    settings = {k: v for k, v in asdict(config).items() if k not in ("device", "case_id", "num_parts", "part_id")}
    settings["folds"] = list(manifest.kidney.folds)
    return {"versions": versions, "device": _device_name(config.device), "settings": settings,
            "precision": precisions or {},
            "models_dir": str(models_dir), "model_files_sha256": hashes,
            "models_sha256": hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest(),
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device
