"""INT8 and bf16 for a models folder: NNCF quantisation per fold, measured against fp32 before use.

For each stage (kidney U-Net, mass U-Net, classifier) of a models folder:

1. the stage's own training data, as the network sees it, is split into calibration cases and
   held-out cases (:func:`split_cases`): for the U-Nets the grid images of the nnU-Net raw
   dataset the stage was trained on (``<NNUNET_RAW>/DatasetXXX_RenalKidneyG/imagesTr``),
   preprocessed by nnU-Net's own preprocessing and cut into the patches the sliding window feeds
   the network; for the classifier the converter's lesion crops (``<NNUNET_RAW>/RenalLesions``);
2. each fold's network is quantised by NNCF on the calibration inputs
   (:func:`renal_nnunet.runtime.openvino.int8_model`, cached next to its checkpoint); a U-Net fold
   then goes through NNCF's accuracy control on further cases of its data (neither calibration nor
   held-out; :attr:`QuantizationConfig.accuracy_control_cases`), which returns operations to fp32
   until the worst Dice against the fold's fp32 labels is within the stage's bound;
3. the fold ensemble at each reduced precision is compared with the fp32 ensemble on the held-out
   cases: the labels' Dice per class (the kidneys as ``predict`` keeps them) and the masses
   detected (U-Nets, on the grid), the lesion
   classes and the Grad-CAM peak (classifier), against
   :class:`~renal_nnunet.runtime.agreement.AgreementBounds`;
4. the figures are written into the stage's folder (:mod:`renal_nnunet.runtime.agreement`), where
   ``--precision auto`` reads them.

bf16 needs no quantisation (it is the fp32 model compiled with bf16 arithmetic) and is measured
only on CPUs with native bf16 (:func:`renal_nnunet.runtime.cpu.native_precisions`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

import numpy as np
import torch

from renal_nnunet.io import InputError, file_sha256, read_image
from renal_nnunet.runtime.agreement import (
    AgreementBounds,
    PrecisionCheck,
    StageAgreement,
    checkpoint_hashes,
    read_stage_agreement,
    write_stage_agreement,
)

__all__ = ["QuantizationConfig", "split_cases", "accuracy_control_cases", "calibration_sha256", "worst_label_dice",
           "unet_accuracy_control", "unet_patches", "measure_unet_stage",
           "measure_classifier", "compare_stage_labels", "stage_check", "REDUCED_PRECISIONS"]

log = logging.getLogger(__name__)

REDUCED_PRECISIONS: tuple[str, ...] = ("int8", "bf16")

T = TypeVar("T")


@dataclass(frozen=True)
class QuantizationConfig:
    """How a stage is quantised and measured.

    Attributes:
        precisions: the reduced precisions to measure (``int8`` is quantised first; ``bf16`` is
            skipped on a CPU without native bf16).
        calibration_cases: grid images (lesion crops for the classifier) NNCF calibrates on.
        validation_cases: held-out cases (not calibrated on) the agreement is measured on, at most.
            16 by default: on the default demo's models (48 training CTs) 8 held-out kidney boxes
            passed the INT8 mass stage (worst Dice 0.953), which then moved the masses of painted
            KiTS23 CTs (Dice 0.78 with fp32) and merged two of a real CT's; 12 or 16 boxes caught
            it (worst 0.921-0.925 whether 4, 16 or 32 cases calibrated).
        accuracy_control_cases: further cases (neither calibration nor held-out; as many as are
            left, at most this many) on which NNCF's accuracy control measures each U-Net fold's
            INT8 network against its fp32 network (:func:`worst_label_dice`) and returns the
            operations that cost most to fp32 until the worst Dice is within its ``max_drop`` (see
            ``accuracy_control_share``); 0 (or no case left) quantises without it. The classifier
            is quantised without it (its INT8 classes agreed; its Grad-CAM peak is the measure
            that moved).
        accuracy_control_share: the share of the stage's Dice slack (1 - the Dice bound) accuracy
            control may spend on its own cases (its ``max_drop``); the rest is kept for CTs unlike
            the training data, which its cases do not represent. On the default demo's mass stage
            all of it (1.0) returned 3 of 31 operations to fp32 and met the bound on the held-out
            cases (worst Dice 0.968), but gave painted KiTS23 CTs a mass Dice of 0.947 against fp32
            and moved Grad-CAM peaks by up to 18 mm; 0.75 kept 15 operations in INT8, with the
            same painted KiTS23 figures; half kept 4 and met every bound on them (0.989, 0 mm), a
            pass 0.91-0.94x fp32's (0.61-0.66x with all of the slack).
        bounds: what ``auto`` requires of a precision.
        ignored_patterns: regular expressions of OpenVINO operation names NNCF leaves in fp32 (its
            ignored scope): by default the U-Nets' segmentation heads (1x1 convolutions to the
            logits, a negligible share of the work), which kept the tiny demo's mass Dice closer
            to fp32's than quantising them.
    """

    precisions: tuple[str, ...] = REDUCED_PRECISIONS
    calibration_cases: int = 16
    validation_cases: int = 16
    accuracy_control_cases: int = 16
    accuracy_control_share: float = 0.5
    bounds: AgreementBounds = field(default_factory=AgreementBounds)
    ignored_patterns: tuple[str, ...] = (r".*seg_layers.*",)

    def __post_init__(self):
        unknown = sorted(set(self.precisions) - set(REDUCED_PRECISIONS))
        if unknown:
            raise ValueError(f"unknown precisions {unknown}; choose from {', '.join(REDUCED_PRECISIONS)}")
        if self.calibration_cases < 1 or self.validation_cases < 1:
            raise ValueError("need at least one calibration case and one held-out case")
        if self.accuracy_control_cases < 0:
            raise ValueError("accuracy_control_cases must be 0 (off) or more")
        if not 0.0 < self.accuracy_control_share <= 1.0:
            raise ValueError(f"accuracy_control_share must be in (0, 1], got {self.accuracy_control_share}")


def split_cases(cases: Sequence[T], config: QuantizationConfig) -> tuple[list[T], list[T]]:
    """(calibration, held-out) cases: calibration evenly spread over ``cases`` (in their order),
    held-out the first others, as many as the config asks and the data allow. The held-out cases
    are counted first, up to half of the cases, so a small dataset is never all calibration with
    one case left to measure on.

    Raises:
        InputError: fewer than two cases (nothing would be held out).

    >>> split_cases(list("abcdefgh"), QuantizationConfig(calibration_cases=2, validation_cases=3))
    (['a', 'e'], ['b', 'c', 'd'])
    >>> split_cases(list("abcde"), QuantizationConfig(calibration_cases=16, validation_cases=16))
    (['a', 'c', 'd'], ['b', 'e'])
    """
    if len(cases) < 2:
        raise InputError(None, f"{len(cases)} case(s): calibration and held-out cases need at least two")
    held_out_count = max(1, min(config.validation_cases, len(cases) // 2))
    n = min(config.calibration_cases, len(cases) - held_out_count)
    picked = sorted({round(i * len(cases) / n) for i in range(n)})
    calibration = [cases[i] for i in picked]
    held_out = [case for i, case in enumerate(cases) if i not in picked][:config.validation_cases]
    return calibration, held_out


def accuracy_control_cases(cases: Sequence[T], calibration: Sequence[T], held_out: Sequence[T],
                           config: QuantizationConfig) -> list[T]:
    """The cases NNCF's accuracy control measures on: those neither calibrated on nor held out, in
    their order, at most ``config.accuracy_control_cases``."""
    used = {*calibration, *held_out}
    return [case for case in cases if case not in used][:config.accuracy_control_cases]


def calibration_sha256(files: Sequence[str | os.PathLike], settings: dict) -> str:
    """What names a calibration set in the INT8 cache: its files' names and contents, and the
    quantisation settings."""
    content = {Path(f).name: file_sha256(f) for f in files}
    return hashlib.sha256(json.dumps({"files": content, "settings": settings}, sort_keys=True).encode()).hexdigest()


class _PatchRecorder(torch.nn.Module):
    """Stands in for the network in nnU-Net's sliding window: keeps each patch, returns zeros."""

    def __init__(self, heads: int) -> None:
        super().__init__()
        self.heads, self.patches = heads, []

    def forward(self, patch: torch.Tensor) -> torch.Tensor:
        self.patches.append(patch.detach().cpu().numpy().astype(np.float32, copy=True))
        return torch.zeros((patch.shape[0], self.heads, *patch.shape[2:]))


def unet_patches(ensemble, grid_images: Sequence[str | os.PathLike]) -> list[np.ndarray]:
    """The inputs a stage's network receives for these grid images: nnU-Net's preprocessing, then
    the patches of its sliding window (one per 128^3 grid image, the patch being the grid)."""
    predictor = ensemble.predictor
    recorder = _PatchRecorder(predictor.label_manager.num_segmentation_heads)
    networks, predictor.network = predictor.network, recorder
    try:
        for path in grid_images:
            data, _ = ensemble._preprocess(read_image(path))
            predictor.predict_sliding_window_return_logits(data)
    finally:
        predictor.network = networks
    return recorder.patches


MIN_STRUCTURE_VOXELS = 8
"""A label neither map holds in this many voxels (2x2x2) is left out of :func:`worst_label_dice`:
one voxel more or less swings the Dice of a speck between 0 and 1, and the held-out check, which
counts every mass, still judges the result. On the default demo's kidney stage, 1-voxel kidneys
made accuracy control return 29 of 31 operations to fp32."""


def worst_label_dice(compiled, items: Iterable[tuple[np.ndarray, np.ndarray]], labels: Sequence[int]
                     ) -> tuple[float, list[float]]:
    """NNCF accuracy-control metric of a U-Net (:class:`~renal_nnunet.runtime.openvino.AccuracyControl`):
    for each ``(patch, reference labels (z, y, x))`` the worst Dice over ``labels`` of the compiled
    network's argmax against the reference (1.0 when every label is a speck; see
    :data:`MIN_STRUCTURE_VOXELS`), and the worst over the items."""
    from renal_nnunet.evaluation.surface import dice
    from renal_nnunet.runtime.openvino import infer

    values = []
    for patch, reference in items:
        predicted = infer(compiled, patch)[0][0].argmax(axis=0)
        values.append(min((dice(predicted == value, reference == value) for value in labels
                           if max((predicted == value).sum(), (reference == value).sum()) >= MIN_STRUCTURE_VOXELS),
                          default=1.0))
    return float(min(values)), values


def unet_accuracy_control(fp32_model, patches: Sequence[np.ndarray], labels: Sequence[int], max_drop: float):
    """One U-Net fold's :class:`~renal_nnunet.runtime.openvino.AccuracyControl`: :func:`worst_label_dice`
    of ``labels`` on ``patches`` (as the network receives them), against its fp32 network's argmax."""
    from renal_nnunet.runtime.openvino import AccuracyControl, compile_on_cpu, infer

    compiled = compile_on_cpu(fp32_model, "fp32")  # once for every patch
    items = [(patch, infer(compiled, patch)[0][0].argmax(axis=0)) for patch in patches]
    del compiled
    return AccuracyControl(items, functools.partial(worst_label_dice, labels=list(labels)), max_drop)


def compare_stage_labels(reference: np.ndarray, candidate: np.ndarray, labels: dict[str, int],
                         spacing_zyx_mm: Sequence[float], count_masses: bool) -> dict:
    """Agreement of one case's labels at a reduced precision with fp32's (same grid).

    Returns:
        ``dice_<label>`` per foreground label (1.0 when both are empty), and with ``count_masses``
        ``masses_fp32`` (26-connected components of the foreground in ``reference``),
        ``masses_missed`` / ``masses_extra`` (components of one not touched by the other) and
        ``masses_joined`` / ``masses_split`` (fp32's masses found, but not one to one:
        :func:`~renal_nnunet.evaluation.detection.joined_and_split`).
    """
    from renal_nnunet.evaluation.detection import detect_lesions, detection_scores, joined_and_split
    from renal_nnunet.evaluation.surface import dice

    row = {f"dice_{name}": dice(candidate == value, reference == value) for name, value in labels.items() if value}
    if count_masses:
        rows = detect_lesions(candidate > 0, reference > 0, spacing_zyx_mm)
        scores, mismatched = detection_scores(rows), joined_and_split(rows)
        row.update(masses_fp32=scores["tp"] + scores["fn"], masses_missed=scores["fn"], masses_extra=scores["fp"],
                   masses_joined=mismatched["joined"], masses_split=mismatched["split"])
    return row


def stage_check(precision: str, rows: list[dict], dice_bound: float, bounds: AgreementBounds) -> PrecisionCheck:
    """A U-Net stage's check at one precision: the worst and mean of each figure of ``rows`` (one
    :func:`compare_stage_labels` row per held-out case), summed mass counts, and the bounds missed
    (each label's Dice against ``dice_bound``; with ``bounds.same_masses`` any mass missed, extra,
    joined or split)."""
    figures, failures = {}, []
    for key in (k for k in rows[0] if k.startswith("dice_")):
        values = [row[key] for row in rows]
        figures[f"{key}_min"], figures[f"{key}_mean"] = float(min(values)), float(np.mean(values))
        if min(values) < dice_bound:
            failures.append(f"{key.removeprefix('dice_')} Dice {min(values):.4f} < {dice_bound:g}")
    if "masses_fp32" in rows[0]:
        differences = ("masses_missed", "masses_extra", "masses_joined", "masses_split")
        for key in ("masses_fp32", *differences):
            figures[key] = int(sum(row[key] for row in rows))
        if bounds.same_masses and any(figures[key] for key in differences):
            failures.append(f"masses differ ({figures['masses_missed']} of {figures['masses_fp32']} missed, "
                            f"{figures['masses_extra']} extra, {figures['masses_joined']} joined, "
                            f"{figures['masses_split']} split)")
    return PrecisionCheck(precision, not failures, tuple(failures), len(rows), figures)


def with_quantised_operations(check: PrecisionCheck, operations: Sequence[int]) -> PrecisionCheck:
    """An INT8 check with the number of quantised operations of each fold's network
    (``quantised_operations``, by fold); a fold left with none is its fp32 network under another
    name (accuracy control returned every operation to fp32), so the check fails and ``auto`` does
    not call it INT8.

    >>> with_quantised_operations(PrecisionCheck("int8", True, (), 16), [4, 0]).failures
    ('accuracy control returned every operation of 1 fold(s) to fp32: no INT8 left',)
    """
    empty = sum(count == 0 for count in operations)
    failures = check.failures + ((f"accuracy control returned every operation of {empty} fold(s) to fp32: "
                                  "no INT8 left",) if empty else ())
    return replace(check, passed=not failures, failures=failures,
                   figures={**check.figures, "quantised_operations": [int(count) for count in operations]})


def _precisions_to_measure(config: QuantizationConfig) -> list[str]:
    from renal_nnunet.runtime.cpu import native_precisions

    native = native_precisions()
    skipped = [p for p in config.precisions if p == "bf16" and p not in native]
    if skipped:
        log.info("bf16 not measured: this CPU has no native bf16")
    return [p for p in config.precisions if p not in skipped]


def _stage_dataset(calibration_raw: Path, model_dir: Path) -> Path:
    """The raw dataset a stage was trained on: ``<NNUNET_RAW>/<its dataset name>`` (the name of
    the trained-model folder's parent, as nnU-Net and the models folder lay it out)."""
    dataset = Path(calibration_raw) / model_dir.parent.name
    if not (dataset / "imagesTr").is_dir():
        raise InputError(dataset, "no imagesTr here: --calibration must be the nnU-Net raw folder holding the "
                                  f"stage's training dataset {model_dir.parent.name} (as `convert` wrote it)")
    return dataset


def measure_unet_stage(model_dir: str | os.PathLike, folds: Sequence[int], calibration_raw: str | os.PathLike,
                       config: QuantizationConfig = QuantizationConfig()) -> StageAgreement:
    """Quantise a U-Net stage's folds (when INT8 is asked for) and measure each reduced precision
    against fp32 on held-out grid images; the record is written into ``model_dir``.

    Raises:
        InputError: the stage's raw dataset is not under ``calibration_raw``, or has too few cases.
    """
    from renal_nnunet.inference.ensemble import FoldEnsemble
    from renal_nnunet.runtime.backends import Runtime
    from renal_nnunet.runtime.openvino import OpenVinoNetwork, int8_model, quantised_operations

    model_dir = Path(model_dir).resolve()
    images = sorted((_stage_dataset(Path(calibration_raw), model_dir) / "imagesTr").glob("*.nii.gz"))
    calibration, held_out = split_cases(images, config)
    labels = json.loads((model_dir / "dataset.json").read_text())["labels"]
    count_masses = set(labels) == {"background", "mass"}
    dice_bound = config.bounds.mass_dice if count_masses else config.bounds.kidney_dice
    precisions = _precisions_to_measure(config)
    control_cases = accuracy_control_cases(images, calibration, held_out, config) if "int8" in precisions else []
    control = {"cases": {Path(p).name: file_sha256(p) for p in control_cases},
               "max_drop": round((1.0 - dice_bound) * config.accuracy_control_share, 6)} if control_cases else None
    if "int8" in precisions and not control_cases and config.accuracy_control_cases:
        log.info("%s: every case is calibration or held-out: INT8 without accuracy control", model_dir)
    reference = FoldEnsemble(model_dir, folds, Runtime("openvino", "cpu", "fp32"))
    sha = calibration_sha256(calibration, {"ignored_patterns": list(config.ignored_patterns),
                                           "accuracy_control": control})
    models = {"fp32": [reference.fold_model(c, "fp32") for c in reference.checkpoints]}
    models["bf16"] = models["fp32"]
    if "int8" in precisions:
        patches = _once(lambda: unet_patches(reference, calibration))
        control_patches = _once(lambda: unet_patches(reference, control_cases))
        foreground = [value for value in labels.values() if value]

        def controlled(fp32):
            if control is None:
                return None
            return lambda: unet_accuracy_control(fp32, control_patches(), foreground, control["max_drop"])

        models["int8"] = [int8_model(c, fp32, patches, sha, config.ignored_patterns, controlled(fp32))
                          for c, fp32 in zip(reference.checkpoints, models["fp32"])]
    rows = {p: [] for p in precisions}
    for path in held_out:
        grid_ct = read_image(path)
        true_grid = None if count_masses else true_grid_image(grid_ct, path)
        label_maps = {}
        for precision in ("fp32", *precisions):
            reference.predictor.use_fold_networks([OpenVinoNetwork(m, precision) for m in models[precision]])
            argmax = reference.grid_probabilities(grid_ct).ensemble.argmax(axis=0)
            label_maps[precision] = argmax if count_masses else kept_kidney_labels(argmax, true_grid)
        for precision in precisions:
            rows[precision].append(compare_stage_labels(label_maps["fp32"], label_maps[precision], labels,
                                                        grid_ct.GetSpacing()[::-1], count_masses))
    checks = {p: stage_check(p, rows[p], dice_bound, config.bounds) for p in precisions}
    if "int8" in checks:
        checks["int8"] = with_quantised_operations(checks["int8"], [quantised_operations(m) for m in models["int8"]])
    return _record(model_dir, reference.checkpoints, calibration_raw, calibration, held_out, sha, checks,
                   {"cases": list(control["cases"]), "max_drop": control["max_drop"]} if control else None)


def true_grid_image(grid_ct, path: Path):
    """A grid image with its true physical geometry (the nominal 1 mm grid nnU-Net trains on, given
    the spacing, origin and direction its converter sidecar records).

    Raises:
        InputError: the sidecar ``<dataset>/sidecars/<case>.json`` is missing or unreadable.
    """
    import SimpleITK as sitk

    from renal_nnunet.anatomy.geometry import GridSidecar
    from renal_nnunet.dataset_conversion.nnunet_dataset import FILE_ENDING, sidecar_file

    sidecar = sidecar_file(path.parent.parent, path.name.removesuffix(f"_0000{FILE_ENDING}"))
    image = sitk.Image(grid_ct)
    image.CopyInformation(GridSidecar.from_json(sidecar).grid_geometry().reference_image())
    return image


def kept_kidney_labels(labels_zyx: np.ndarray, grid_ct) -> np.ndarray:
    """The kidneys ``predict`` keeps of a kidney-stage argmax (z, y, x) on its grid CT (with its true
    geometry, :func:`true_grid_image`): :func:`~renal_nnunet.inference.cascade.kidneys_from_labels`,
    sides from the anatomy and a side under its volume bound dropped. So the kidney stage is
    measured on what the cascade uses: on the default demo's held-out cases, 1-voxel right kidneys
    that fp32 predicted and INT8 did not scored Dice 0 on the raw argmax; the cascade drops both."""
    import SimpleITK as sitk

    from renal_nnunet.anatomy.geometry import image_like
    from renal_nnunet.inference.cascade import kidneys_from_labels

    kept = kidneys_from_labels(image_like(labels_zyx.astype(np.uint8), grid_ct), grid_ct)
    return sitk.GetArrayFromImage(kept.labels)


def _once(make):
    """``make``'s result, computed at the first call only (calibration inputs for several folds)."""
    cache = []

    def get():
        if not cache:
            cache.append(make())
        return cache[0]
    return get


def measure_classifier(checkpoints: Sequence[str | os.PathLike], calibration_raw: str | os.PathLike,
                       config: QuantizationConfig = QuantizationConfig()) -> StageAgreement:
    """Quantise the classifier's folds (when INT8 is asked for) and measure each reduced precision
    against fp32 on held-out lesion crops of ``<calibration_raw>/RenalLesions``: the ensemble's class
    and the Grad-CAM peak of fp32's class. The record is written into the checkpoints' folder.

    Raises:
        InputError: no lesion table or crops there, or too few lesions.
    """
    from renal_nnunet.classification.data import read_lesion_table
    from renal_nnunet.classification.ensemble import ClassifierEnsemble
    from renal_nnunet.classification.openvino_classifier import OpenVinoClassifierFold
    from renal_nnunet.runtime.backends import Runtime
    from renal_nnunet.runtime.openvino import int8_model

    ensemble = ClassifierEnsemble(checkpoints, Runtime("openvino", "cpu", "fp32"))
    table = read_lesion_table(Path(calibration_raw) / "RenalLesions")
    calibration, held_out = split_cases(list(table["crop_path"]), config)
    sha = calibration_sha256(calibration, {"ignored_patterns": list(config.ignored_patterns)})
    precisions = _precisions_to_measure(config)
    fp32_folds = ensemble.load_folds("fp32")
    grid = fp32_folds[0].grid
    if "int8" in precisions:
        inputs = _once(lambda: [_crop_input(path, grid) for path in calibration])
        for checkpoint, fp32 in zip(ensemble.checkpoints, fp32_folds):
            int8_model(checkpoint, fp32.model, inputs, sha, config.ignored_patterns)
    volumes = [torch.from_numpy(_crop_input(path, grid)) for path in held_out]
    reference = [_crop_verdict(volume, fp32_folds) for volume in volumes]
    del fp32_folds  # one precision's compiled folds at a time
    rows = {}
    for precision in precisions:
        folds = [OpenVinoClassifierFold(*_loaded(checkpoint), precision, sha) for checkpoint in ensemble.checkpoints]
        rows[precision] = []
        for volume, (fp32_probabilities, fp32_peak) in zip(volumes, reference):
            target = int(fp32_probabilities.argmax())
            probabilities, peak = _crop_verdict(volume, folds, target)
            rows[precision].append((int(probabilities.argmax()) == target, float(np.linalg.norm(peak - fp32_peak))))
        del folds
    checks = {p: _classifier_check(p, rows[p], config.bounds) for p in precisions}
    return _record(ensemble.folder, ensemble.checkpoints, calibration_raw, calibration, held_out, sha, checks)


def _record(folder: Path, checkpoints: Sequence[Path], source, calibration: Sequence, held_out: Sequence, sha: str,
            checks: dict[str, PrecisionCheck], accuracy_control: dict | None = None) -> StageAgreement:
    """Write the stage's record: these checks, beside the checks of other precisions recorded
    earlier for the same checkpoints (measuring bf16 keeps an earlier INT8 measurement)."""
    from renal_nnunet.runtime.cpu import cpu_description

    calibration_info = {"source": str(source), "cases": [Path(p).name for p in calibration],
                        "held_out": [Path(p).name for p in held_out], "sha256": sha,
                        "accuracy_control": accuracy_control}
    previous = read_stage_agreement(folder, checkpoints)
    if previous is not None:
        if "int8" not in checks and "int8" in previous.checks:
            calibration_info = previous.calibration  # the INT8 model measured is still the earlier one
        checks = {**previous.checks, **checks}
    agreement = StageAgreement(checkpoint_hashes(folder, checkpoints), calibration_info, checks, cpu_description())
    write_stage_agreement(folder, agreement)
    for precision, check in checks.items():
        log.info("%s: %s vs fp32 on %d held-out case(s): %s", folder, precision, check.cases,
                 "meets the bounds" if check.passed else "; ".join(check.failures))
    return agreement


def _loaded(checkpoint: Path) -> tuple:
    """(torch classifier, checkpoint, grid): what an OpenVINO classifier fold is made from."""
    from renal_nnunet.classification.train import load_classifier

    model, info = load_classifier(checkpoint)
    return model, checkpoint, int(info["grid"])


def _crop_input(path: str, grid: int) -> np.ndarray:
    from renal_nnunet.classification.data import crop_to_input

    return crop_to_input(read_image(path), grid)[None].numpy()


def _crop_verdict(volume: torch.Tensor, folds: list, target: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mean softmax over the folds, grid index of the peak of the folds' summed Grad-CAM of
    ``target``, default the ensemble's class) of one lesion crop."""
    forwards = [fold.explained_forward(volume) for fold in folds]
    probabilities = np.mean([torch.softmax(f.logits, dim=1)[0].numpy() for f in forwards], axis=0)
    target = int(probabilities.argmax()) if target is None else target
    total = sum(forward.cam(target) for forward in forwards)
    return probabilities, np.array(np.unravel_index(np.argmax(total), total.shape), float)


def _classifier_check(precision: str, rows: list[tuple[bool, float]], bounds: AgreementBounds) -> PrecisionCheck:
    """Share of lesions with fp32's ensemble class, and the Grad-CAM peak distances, against the bounds."""
    same = sum(row[0] for row in rows)
    distances = [row[1] for row in rows]
    share = same / len(rows)
    figures = {"lesions": len(rows), "same_class": same, "class_agreement": share,
               "cam_peak_voxels_max": max(distances), "cam_peak_voxels_mean": float(np.mean(distances))}
    failures = []
    if share < bounds.class_agreement:
        failures.append(f"class agreement {same}/{len(rows)} = {share:.3f} < {bounds.class_agreement:g}")
    if max(distances) > bounds.cam_peak_voxels:
        failures.append(f"Grad-CAM peak {max(distances):.2f} voxels from fp32's > {bounds.cam_peak_voxels:g}")
    return PrecisionCheck(precision, not failures, tuple(failures), len(rows), figures)
