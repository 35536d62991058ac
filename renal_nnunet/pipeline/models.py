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
from renal_nnunet.io import InputError, atomic_path, write_json
from renal_nnunet.nnunet.layout import fold_checkpoint, model_grid_size
from renal_nnunet.settings import PAPER

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "StageModel",
    "ModelsManifest",
    "assemble_models",
    "find_classifier_checkpoints",
    "load_models",
    "package_versions",
    "export_models",
    "import_models",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


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
        training: what the models were trained on (:func:`training_provenance`): ``data``
            (``synthetic``, ``real`` or ``unknown``), ``grid``, and per stage its nnU-Net
            ``dataset`` name, training ``cases``, ``trainer`` and ``epochs``.
        classifier_calibration: the classifier's temperature fit
            (``renal_nnunet.classification.calibration``; empty: not calibrated, temperature 1).
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
    training: dict = field(default_factory=dict)
    classifier_calibration: dict = field(default_factory=dict)
    format_version: int = MANIFEST_FORMAT

    @property
    def temperature(self) -> float:
        """The classifier's calibration temperature (1.0 when not calibrated)."""
        return float(self.classifier_calibration.get("temperature", 1.0))

    def __post_init__(self) -> None:
        for name in ("margin_mm", "min_classify_diameter_mm"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be at least 0 mm, got {getattr(self, name)}")

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
                training=dict(data.get("training", {})),
                classifier_calibration=dict(data.get("classifier_calibration", {})),
                **stages,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, InputError):
                raise
            raise InputError(source, f"not a valid models manifest ({type(err).__name__}: {err})") from None


def package_versions(packages: Sequence[str] = ("renal_nnunet", "nnunetv2", "torch")) -> dict[str, str]:
    """Installed versions of ``packages`` (those not installed are left out)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in packages:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def _place(source: Path, destination: Path, link: bool) -> None:
    """Copy ``source`` to ``destination``, or symlink it (absolute target) when ``link`` is set."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if link:
        destination.symlink_to(source.resolve())
    else:
        shutil.copy2(source, destination)


def _check_stage_role(stage_dir: Path, stage: str, hint: str) -> None:
    """Raise unless ``stage_dir``'s dataset.json has the label table of the ``stage`` role."""
    try:
        labels = {str(k): int(v) for k, v in json.loads((stage_dir / "dataset.json").read_text())["labels"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(stage_dir / "dataset.json", f"has no readable label table ({type(err).__name__}: {err})") from None
    roles = {"kidney": KIDNEY_STAGE_LABELS, "mass": MASS_STAGE_LABELS}
    if labels != roles[stage]:
        other = next((name for name, table in roles.items() if table == labels), None)
        found = f"is the {other} model's" if other else "is not the kidney or the mass model's"
        raise InputError(stage_dir / "dataset.json", f"label table {labels} {found}; the {stage} model needs "
                                                     f"{roles[stage]} ({hint})")


def _check_trained_model(source: Path, stage: str, folds: Sequence[int]) -> None:
    """Raise if ``source`` is not the ``stage`` model with ``folds`` trained (the role from dataset.json's labels)."""
    if not source.is_dir():
        raise InputError(source, f"{stage} model folder does not exist")
    for name in ("plans.json", "dataset.json"):
        if not (source / name).is_file():
            raise InputError(source / name, f"{stage} model file is missing; expected an nnU-Net trainer output folder "
                                            "(.../DatasetXXX_Name/Trainer__Plans__Configuration)")
    _check_stage_role(source, stage, "were --kidney and --mass swapped?")
    missing = [f for f in folds if not fold_checkpoint(source, f).is_file()]
    if missing:
        raise InputError(fold_checkpoint(source, missing[0]),
                         f"{stage} model fold(s) {missing} not trained; train them first or leave them out of --folds")


def _place_trained_model(source: Path, destination: Path, folds: Sequence[int], link: bool) -> None:
    """Copy (or link) an nnU-Net trained-model folder, keeping only what inference needs for ``folds``."""
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        if (source / name).is_file():
            _place(source / name, destination / name, link)
    for fold in folds:
        _place(fold_checkpoint(source, fold), fold_checkpoint(destination, fold), link)


def find_classifier_checkpoints(classifier_dir: str | os.PathLike) -> list[Path]:
    """The best checkpoint of every fold in a ``renal-nnunet classifier train -o DIR`` folder.

    Returns:
        ``DIR/fold_*/checkpoint_best.pth``, sorted by fold folder name.

    Raises:
        InputError: the folder does not exist or holds no ``fold_*/checkpoint_best.pth``.
    """
    from renal_nnunet.classification.train import BEST_CHECKPOINT

    classifier_dir = Path(classifier_dir)
    if not classifier_dir.is_dir():
        raise InputError(classifier_dir, "classifier folder does not exist")
    found = sorted(classifier_dir.glob(f"fold_*/{BEST_CHECKPOINT}"))
    if not found:
        raise InputError(classifier_dir, f"holds no fold_*/{BEST_CHECKPOINT}; train the classifier with "
                                         "`renal-nnunet classifier train -o DIR` first")
    return found


def assemble_models(
    models_dir: str | os.PathLike,
    kidney_model_dir: str | os.PathLike,
    mass_model_dir: str | os.PathLike,
    classifier_checkpoints: Sequence[str | os.PathLike],
    folds: Sequence[int] = PAPER.folds,
    margin_mm: float = PAPER.kidney_margin_mm,
    link: bool = False,
    training_data: str = "unknown",
    classifier_calibration: dict | None = None,
) -> ModelsManifest:
    """Build a models folder from nnU-Net trained-model folders and classifier checkpoints.

    Every input is checked before anything is written.

    Args:
        models_dir: folder to create (must not exist or be empty).
        kidney_model_dir, mass_model_dir: nnU-Net trained-model folders
            (``.../DatasetXXX_Name/Trainer__Plans__Config``); their grid is read from the plans.
        classifier_checkpoints: one checkpoint per classifier fold.
        folds: nnU-Net folds to ship (each must have ``fold_k/checkpoint_final.pth``).
        margin_mm: kidney-crop margin the mass model was trained with (mm).
        link: symlink the files (absolute targets) instead of copying them.
        training_data: ``synthetic``, ``real`` or ``unknown``: what the models were trained on
            (``predict`` warns when synthetic-trained models are applied).
        classifier_calibration: the classifier's temperature fit (``calibration.json`` of
            ``renal_nnunet.classification.calibration``), or None.

    Returns:
        The manifest written to ``models_dir/manifest.json``.

    Raises:
        InputError: ``models_dir`` not empty, a missing folder or file, a kidney model given as the
            mass model or the other way round, different grids, a fold not trained, or a classifier
            checkpoint with other classes (the message names the file).
    """
    from renal_nnunet.classification.train import load_classifier

    models_dir = Path(models_dir)
    if models_dir.exists() and any(models_dir.iterdir()):
        raise InputError(models_dir, "models folder already exists and is not empty")
    from renal_nnunet.pipeline.training_provenance import TRAINING_DATA_KINDS, training_provenance

    sources = {"kidney": Path(kidney_model_dir), "mass": Path(mass_model_dir)}
    if training_data not in TRAINING_DATA_KINDS:
        raise ValueError(f"training data must be one of {TRAINING_DATA_KINDS}, got {training_data!r}")
    grids = {}
    for stage, source in sources.items():
        _check_trained_model(source, stage, folds)
        grids[stage] = model_grid_size(source)
    if grids["kidney"] != grids["mass"]:
        raise InputError(sources["mass"], f"mass model is on a {grids['mass']}^3 grid but the kidney model "
                                          f"{sources['kidney']} on {grids['kidney']}^3; train both on one grid")
    checkpoints = [Path(c) for c in classifier_checkpoints]
    if not checkpoints:
        raise InputError(models_dir, "no classifier checkpoint given")
    for checkpoint in checkpoints:
        load_classifier(checkpoint)
    stages = {}
    for stage, source in sources.items():
        relative = PurePosixPath(stage, source.resolve().parent.name, source.resolve().name)
        _place_trained_model(source, models_dir / relative, folds, link)
        stages[stage] = StageModel(str(relative), tuple(int(f) for f in folds),
                                   dict(KIDNEY_STAGE_LABELS if stage == "kidney" else MASS_STAGE_LABELS))
    classifier = []
    for fold, checkpoint in enumerate(checkpoints):
        relative = PurePosixPath("classifier", f"fold_{fold}.pt")
        _place(checkpoint, models_dir / relative, link)
        classifier.append(str(relative))
    manifest = ModelsManifest(
        grid=grids["kidney"], margin_mm=float(margin_mm), classifier=tuple(classifier), versions=package_versions(),
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        training=training_provenance(sources["kidney"], sources["mass"], folds, grids["kidney"], training_data),
        classifier_calibration=dict(classifier_calibration or {}), **stages,
    )
    write_json(manifest.to_dict(), models_dir / MANIFEST_NAME)
    log.info("assembled models folder %s (grid %d, folds %s, %d classifier checkpoints, %s)",
             models_dir, manifest.grid, list(folds), len(classifier), "linked" if link else "copied")
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
                                     "(create one with `renal-nnunet assemble-models`, `renal-nnunet import-models` or `renal-nnunet demo`)")
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
            checkpoint = fold_checkpoint(stage_dir, fold)
            if not checkpoint.is_file():
                raise InputError(checkpoint, f"{name} model fold {fold} checkpoint is missing; "
                                             f"re-import the models or choose other folds with --folds")
        _check_stage_role(stage_dir, name, f"is {MANIFEST_NAME} pointing at the wrong folder?")
        if model_grid_size(stage_dir) != manifest.grid:
            raise InputError(stage_dir / "plans.json", f"the {name} model was trained on a {model_grid_size(stage_dir)}^3 "
                                                       f"grid, the manifest says {manifest.grid}^3")
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
