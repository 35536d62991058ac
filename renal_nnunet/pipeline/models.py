"""The models folder: trained kidney, mass and classifier checkpoints plus a small manifest.

Layout (all paths in the manifest are relative to the models folder)::

    models/
      manifest.json
      kidney/<DatasetXXX_RenalKidneyG>/<Trainer>__<Plans>__<config>/   nnU-Net trained-model folder
                                         (plans.json, dataset.json, fold_k/checkpoint_final.pth)
      mass/<DatasetXXX_RenalMassG>/<Trainer>__<Plans>__<config>/
      classifier/fold_k.pt

The nnU-Net folders are stock nnU-Net v2 results folders, so ``nnUNetv2_predict -d`` can use them
too. The manifest records the grid, the crop margin, the folds, the label tables and the versions
the models were trained with. ``export_models``/``import_models`` pack and unpack the folder as a
zip so trained models can be shared.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Sequence

from renal_nnunet.anatomy.labels import KIDNEY_STAGE_LABELS, LESION_CLASSES, MASS_STAGE_LABELS, OUTPUT_LABELS
from renal_nnunet.inference.stage import model_grid_size
from renal_nnunet.io import InputError, atomic_path, write_json
from renal_nnunet.settings import PAPER

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "NNUNET_CHECKPOINT",
    "StageModel",
    "ModelsManifest",
    "assemble_models",
    "load_models",
    "export_models",
    "import_models",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
NNUNET_CHECKPOINT = "checkpoint_final.pth"
"""Checkpoint file nnU-Net v2 writes at the end of training in each ``fold_k`` folder."""


@dataclass(frozen=True)
class StageModel:
    """One nnU-Net stage in the models folder.

    Attributes:
        path: trained-model folder, relative to the models folder (posix separators).
        folds: folds trained and shipped.
        labels: the stage's label table (name -> value).
    """

    path: str
    folds: tuple[int, ...]
    labels: dict[str, int]


@dataclass(frozen=True)
class ModelsManifest:
    """Contents of ``manifest.json``.

    Attributes:
        grid: edge length of the fixed grid both U-Nets run on (voxels; the paper uses 128).
        margin_mm: margin added around each kidney's bounding box before the mass stage (mm).
        min_classify_diameter_mm: masses with a smaller average diameter are not classified (mm).
        kidney, mass: the two nnU-Net stages.
        classifier: classifier checkpoints (one per fold), relative paths.
        lesion_classes: classifier output order.
        output_labels: label table of the pipeline's ``<case>_seg.nii.gz``.
        versions: package versions the models were trained with.
        created_utc: ISO time the folder was assembled.
    """

    grid: int
    margin_mm: float
    kidney: StageModel
    mass: StageModel
    classifier: tuple[str, ...]
    min_classify_diameter_mm: float = PAPER.size_threshold_mm
    lesion_classes: tuple[str, ...] = LESION_CLASSES
    output_labels: dict[str, int] = field(default_factory=lambda: dict(OUTPUT_LABELS))
    versions: dict[str, str] = field(default_factory=dict)
    created_utc: str = ""
    format_version: int = MANIFEST_FORMAT

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str | os.PathLike | None = None) -> "ModelsManifest":
        """Parse a manifest dictionary; ``source`` names the file in errors."""
        try:
            if int(data.get("format_version", -1)) != MANIFEST_FORMAT:
                raise InputError(source, f"manifest format_version {data.get('format_version')!r} is not {MANIFEST_FORMAT}")
            stages = {name: StageModel(str(data[name]["path"]), tuple(int(f) for f in data[name]["folds"]),
                                       {str(k): int(v) for k, v in data[name]["labels"].items()})
                      for name in ("kidney", "mass")}
            return cls(
                grid=int(data["grid"]),
                margin_mm=float(data["margin_mm"]),
                classifier=tuple(str(p) for p in data["classifier"]),
                min_classify_diameter_mm=float(data.get("min_classify_diameter_mm", PAPER.size_threshold_mm)),
                lesion_classes=tuple(data.get("lesion_classes", LESION_CLASSES)),
                output_labels={str(k): int(v) for k, v in data.get("output_labels", OUTPUT_LABELS).items()},
                versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
                created_utc=str(data.get("created_utc", "")),
                **stages,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, InputError):
                raise
            raise InputError(source, f"not a valid models manifest ({type(err).__name__}: {err})") from None


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("renal_nnunet", "nnunetv2", "torch"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def _copy_trained_model(source: Path, destination: Path, folds: Sequence[int]) -> None:
    """Copy an nnU-Net trained-model folder, keeping only what inference needs for ``folds``."""
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        if (source / name).is_file():
            destination.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, destination / name)
    for fold in folds:
        checkpoint = source / f"fold_{fold}" / NNUNET_CHECKPOINT
        if not checkpoint.is_file():
            raise InputError(checkpoint, f"fold {fold} checkpoint is missing; train fold {fold} first or leave it out")
        (destination / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkpoint, destination / f"fold_{fold}" / NNUNET_CHECKPOINT)


def assemble_models(
    models_dir: str | os.PathLike,
    kidney_model_dir: str | os.PathLike,
    mass_model_dir: str | os.PathLike,
    classifier_checkpoints: Sequence[str | os.PathLike],
    folds: Sequence[int],
    margin_mm: float,
) -> ModelsManifest:
    """Build a models folder from nnU-Net trained-model folders and classifier checkpoints.

    Args:
        models_dir: folder to create (must not exist or be empty).
        kidney_model_dir, mass_model_dir: nnU-Net trained-model folders
            (``.../DatasetXXX_Name/Trainer__Plans__Config``); their grid is read from the plans.
        classifier_checkpoints: one checkpoint per classifier fold.
        folds: nnU-Net folds to ship (each must have ``fold_k/checkpoint_final.pth``).
        margin_mm: kidney-crop margin the mass model was trained with (mm).

    Returns:
        The manifest written to ``models_dir/manifest.json``.
    """
    models_dir = Path(models_dir)
    if models_dir.exists() and any(models_dir.iterdir()):
        raise InputError(models_dir, "models folder already exists and is not empty")
    stages = {}
    grids = set()
    for stage, source, labels in (("kidney", Path(kidney_model_dir), KIDNEY_STAGE_LABELS),
                                  ("mass", Path(mass_model_dir), MASS_STAGE_LABELS)):
        relative = PurePosixPath(stage, source.parent.name, source.name)
        _copy_trained_model(source, models_dir / relative, folds)
        grids.add(model_grid_size(models_dir / relative))
        stages[stage] = StageModel(str(relative), tuple(int(f) for f in folds), dict(labels))
    if len(grids) != 1:
        raise InputError(models_dir, f"kidney and mass models use different grids {sorted(grids)}")
    classifier = []
    for fold, checkpoint in enumerate(classifier_checkpoints):
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise InputError(checkpoint, "classifier checkpoint is missing")
        relative = PurePosixPath("classifier", f"fold_{fold}.pt")
        (models_dir / "classifier").mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkpoint, models_dir / relative)
        classifier.append(str(relative))
    manifest = ModelsManifest(
        grid=grids.pop(), margin_mm=float(margin_mm), classifier=tuple(classifier), versions=_package_versions(),
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"), **stages,
    )
    write_json(manifest.to_dict(), models_dir / MANIFEST_NAME)
    log.info("assembled models folder %s (grid %d, folds %s, %d classifier checkpoints)",
             models_dir, manifest.grid, list(folds), len(classifier))
    return manifest


def load_models(models_dir: str | os.PathLike, folds: Sequence[int] | None = None) -> ModelsManifest:
    """Read and validate a models folder.

    Args:
        models_dir: the folder holding ``manifest.json``.
        folds: nnU-Net folds that will be used (default: all in the manifest).

    Returns:
        The manifest; its ``kidney.folds``/``mass.folds`` are narrowed to ``folds``.

    Raises:
        InputError: no or invalid manifest, a requested fold not shipped, or a missing checkpoint
            (the message names the file).
    """
    models_dir = Path(models_dir)
    manifest_path = models_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputError(models_dir, f"not a models folder: {MANIFEST_NAME} is missing "
                                     "(create one with `renal-nnunet demo` or `renal-nnunet import-models`)")
    try:
        data = json.loads(manifest_path.read_text())
    except ValueError as err:
        raise InputError(manifest_path, f"is not valid JSON: {err}") from None
    manifest = ModelsManifest.from_dict(data, manifest_path)
    narrowed = {}
    for name in ("kidney", "mass"):
        stage: StageModel = getattr(manifest, name)
        use = stage.folds if folds is None else tuple(int(f) for f in folds)
        unknown = sorted(set(use) - set(stage.folds))
        if unknown:
            raise InputError(manifest_path, f"{name} model has no fold(s) {unknown}; available folds {list(stage.folds)}")
        stage_dir = models_dir / stage.path
        for required in ("plans.json", "dataset.json"):
            if not (stage_dir / required).is_file():
                raise InputError(stage_dir / required, f"{name} model file is missing")
        for fold in use:
            checkpoint = stage_dir / f"fold_{fold}" / NNUNET_CHECKPOINT
            if not checkpoint.is_file():
                raise InputError(checkpoint, f"{name} model fold {fold} checkpoint is missing; "
                                             f"re-import the models or choose other folds with --folds")
        narrowed[name] = StageModel(stage.path, use, stage.labels)
    for relative in manifest.classifier:
        if not (models_dir / relative).is_file():
            raise InputError(models_dir / relative, "classifier checkpoint listed in the manifest is missing")
    if not manifest.classifier:
        raise InputError(manifest_path, "manifest lists no classifier checkpoints")
    return replace(manifest, **narrowed)


def export_models(models_dir: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """Pack a validated models folder into a zip (written atomically). Returns the zip path."""
    models_dir = Path(models_dir)
    load_models(models_dir)
    zip_path = Path(zip_path)
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(p for p in models_dir.rglob("*") if p.is_file()):
                archive.write(file, file.relative_to(models_dir).as_posix())
    log.info("exported %s to %s", models_dir, zip_path)
    return zip_path


def import_models(zip_path: str | os.PathLike, models_dir: str | os.PathLike, overwrite: bool = False) -> ModelsManifest:
    """Unpack a zip made by :func:`export_models` into ``models_dir`` and validate it.

    The zip is extracted to a temporary folder beside ``models_dir`` and only renamed into place
    once the manifest and every checkpoint it lists are present, so a bad zip leaves nothing behind.

    Raises:
        InputError: not a zip, unsafe member paths, missing manifest or checkpoints, or
            ``models_dir`` not empty and ``overwrite`` not set.
    """
    zip_path, models_dir = Path(zip_path), Path(models_dir)
    if not zip_path.is_file():
        raise InputError(zip_path, "file does not exist")
    if models_dir.exists() and any(models_dir.iterdir()) and not overwrite:
        raise InputError(models_dir, "models folder already exists and is not empty (use overwrite to replace it)")
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{models_dir.name}.", dir=models_dir.parent))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                for member in archive.namelist():
                    parts = PurePosixPath(member).parts
                    if PurePosixPath(member).is_absolute() or ".." in parts:
                        raise InputError(zip_path, f"unsafe path in zip: {member!r}")
                archive.extractall(staging)
        except zipfile.BadZipFile as err:
            raise InputError(zip_path, f"not a valid zip file: {err}") from None
        manifest = load_models(staging)
        if models_dir.exists():
            shutil.rmtree(models_dir)
        os.replace(staging, models_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    log.info("imported %s into %s", zip_path, models_dir)
    return manifest
