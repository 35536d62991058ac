"""The demo: synthetic cohort -> conversion -> stock nnU-Net planning -> brief training of the
kidney, mass and classifier models -> ``predict`` on held-out synthetic CTs -> evaluation.

Everything is real (the project's phantom generator, converter, nnU-Net planning/preprocessing and
training loop, the classifier training, the full prediction pipeline and the evaluation); only the
data are synthetic and the training is short. Defaults are sized for about 10-15 minutes on two
CPU cores. The numbers it prints say that the code works end to end, not how the method performs
on real CT: that needs GPU training on real data with the paper's settings.

Output layout under ``out_dir``: ``synthetic/`` (training and held-out cohorts, KiTS23 layout),
``nnunet/`` (nnU-Net raw/preprocessed/results), ``models/`` (the models folder ``predict`` uses),
``test_images/`` + ``test_references/`` (held-out CTs and their references in the pipeline's
label convention), ``predictions/`` (pipeline outputs and reports), ``evaluation/`` (tables,
``summary.md``, figures), ``demo_summary.md``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.io import atomic_path, read_image, write_image, write_json

__all__ = ["DemoConfig", "DemoSummary", "run_demo", "reference_seg", "training_length"]

log = logging.getLogger(__name__)

REFERENCE_MINUTES = 12.0
"""Budget the default training lengths are sized for (2 CPU cores)."""


@dataclass(frozen=True)
class DemoConfig:
    """Options of :func:`run_demo`.

    Attributes:
        cases: synthetic training cases (converted, planned, trained on).
        test_cases: held-out synthetic cases (predicted and evaluated only).
        grid: grid edge of both U-Nets and the classifier crops (voxels; the paper uses 128).
        minutes: rough time budget; training lengths scale linearly with it.
        shape_zyx, spacing_zyx_mm: phantom array shape and voxel spacing (numpy order, mm).
        folds: nnU-Net folds trained per stage.
        device: ``cpu``, ``cuda`` or ``mps``.
        compare: also train and evaluate the one-stage baselines (:mod:`.compare`).
        seed: cohort seed (the held-out cohort uses ``seed + 1``).
        first_id: nnU-Net dataset id of the kidney dataset (inside the demo's own folders).
    """

    cases: int = 16
    test_cases: int = 4
    grid: int = 32
    minutes: float = REFERENCE_MINUTES
    shape_zyx: tuple[int, int, int] = (52, 54, 72)
    spacing_zyx_mm: tuple[float, float, float] = (5.0, 5.0, 5.0)
    folds: tuple[int, ...] = (0,)
    device: str = "cpu"
    compare: bool = False
    seed: int = 0
    first_id: int = 501

    def __post_init__(self):
        if self.cases < 5:
            raise ValueError(f"cases must be at least 5 (five patient-grouped folds), got {self.cases}")
        if self.test_cases < 1 or self.grid < 16 or self.minutes <= 0:
            raise ValueError(f"need test_cases >= 1, grid >= 16 and minutes > 0; got {self.test_cases}, "
                             f"{self.grid}, {self.minutes}")


@dataclass
class DemoSummary:
    """What the demo did: the printed text, the evaluation summary table, paths and timings."""

    text: str
    summary: pd.DataFrame
    models_dir: Path
    reports: list[Path]
    seconds: dict[str, float] = field(default_factory=dict)


def training_length(config: DemoConfig) -> dict[str, int]:
    """Epochs and iterations for the budget: a 12-minute budget trains each U-Net fold for 560
    iterations (batch 4) and the classifier for 28 epochs; other budgets scale linearly.

    Calibrated on 2 CPU cores with the default cohort (grid 32): about 0.42 s per U-Net iteration
    and 3.8 s per classifier epoch, plus about 40 s of conversion, planning, prediction and
    evaluation, so the default demo takes about 10 minutes when nothing else runs.
    """
    scale = config.minutes / REFERENCE_MINUTES / len(config.folds)
    iterations_per_epoch = 20
    return {"epochs": max(1, round(28 * scale)), "iterations_per_epoch": iterations_per_epoch,
            "classifier_epochs": max(1, round(28 * scale))}


def reference_seg(case) -> sitk.Image:
    """A case's reference in the pipeline's label convention (what the cascade is trained to give).

    Kidneys as the converter draws them (parenchyma + sinus + masses, sides from patient
    coordinates), masses labelled by their reference class (AML 3, cystic 4, solid 5; 6 when the
    class is unknown).

    Args:
        case: a :class:`renal_nnunet.dataset_conversion.sources.SourceCase`.
    """
    from renal_nnunet.anatomy.labels import KITS_LABELS
    from renal_nnunet.anatomy.lesion_classes import lesion_class
    from renal_nnunet.anatomy.lesions import lesion_components
    from renal_nnunet.anatomy.sides import paper_kidney_sides
    from renal_nnunet.anatomy.sinus import SINUS_CLOSING_RADIUS_MM
    from renal_nnunet.dataset_conversion.case import read_case

    read = read_case(case)
    kits = read.kits()
    seg = sitk.GetArrayFromImage(paper_kidney_sides(read.ct, kits, SINUS_CLOSING_RADIUS_MM))
    mass_image = sitk.GetImageFromArray(np.isin(kits, (KITS_LABELS["tumor"], KITS_LABELS["cyst"])).astype(np.uint8))
    mass_image.CopyInformation(read.ct)
    components = sitk.GetArrayFromImage(lesion_components(mass_image))
    names = {KITS_LABELS["tumor"]: "tumor", KITS_LABELS["cyst"]: "cyst"}
    for lesion_id in np.unique(components[components > 0]):
        inside = components == lesion_id
        values, counts = np.unique(kits[inside], return_counts=True)
        name, _ = lesion_class(names[int(values[np.argmax(counts)])], case.subtype)
        seg[inside] = OUTPUT_LABELS.get(name, OUTPUT_LABELS["mass_too_small"])
    image = sitk.GetImageFromArray(seg.astype(np.uint8))
    image.CopyInformation(read.ct)
    return image


def _held_out_cohort(config: DemoConfig, out_dir: Path) -> tuple[Path, Path]:
    """Write the held-out cohort, its CTs as ``test_images/<case>.nii.gz`` and references."""
    from renal_nnunet.dataset_conversion.kits import find_kits_cases
    from renal_nnunet.synthetic import write_synthetic_kits

    src = write_synthetic_kits(out_dir / "synthetic" / "test", config.test_cases, seed=config.seed + 1,
                               shape_zyx=config.shape_zyx, spacing_zyx_mm=config.spacing_zyx_mm)
    images, references = out_dir / "test_images", out_dir / "test_references"
    for case in find_kits_cases(src):
        name = f"test_{case.case_id}"
        write_image(read_image(case.image_path), images / f"{name}.nii.gz")
        write_image(reference_seg(case), references / f"{name}.nii.gz")
    return images, references


def _timed(seconds: dict, name: str, started: float) -> None:
    seconds[name] = time.perf_counter() - started
    log.info("demo step %s: %.0f s", name, seconds[name])


def run_demo(out_dir: str | os.PathLike, config: DemoConfig = DemoConfig()) -> DemoSummary:
    """Run the whole demo into ``out_dir`` (see the module docstring); returns its summary.

    Raises:
        InputError: ``out_dir`` holds a previous demo's models folder (remove it or pick another).
    """
    from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders
    from renal_nnunet.pipeline.predict import PredictConfig, predict
    from renal_nnunet.pipeline.training import CascadeTrainingConfig, NnunetFolders, train_cascade
    from renal_nnunet.synthetic import write_synthetic_kits

    out_dir = Path(out_dir)
    models_dir = out_dir / "models"
    if models_dir.exists():
        from renal_nnunet.io import InputError

        raise InputError(models_dir, "already exists from an earlier demo; remove it or choose another -o/--output")
    started_all, seconds = time.perf_counter(), {}
    started = time.perf_counter()
    train_src = write_synthetic_kits(out_dir / "synthetic" / "train", config.cases, seed=config.seed,
                                     shape_zyx=config.shape_zyx, spacing_zyx_mm=config.spacing_zyx_mm)
    images, references = _held_out_cohort(config, out_dir)
    folders = NnunetFolders.under(out_dir / "nnunet")
    conversion = convert_kits(train_src, folders.raw, ConversionConfig(first_id=config.first_id, grid=config.grid))
    if not conversion.ok:
        log.warning("conversion failures: %s", conversion.failed)
    _timed(seconds, "data", started)

    started = time.perf_counter()
    length = training_length(config)
    train_cascade(folders, models_dir, CascadeTrainingConfig(
        kidney_dataset=config.first_id, mass_dataset=config.first_id + 1, folds=config.folds,
        trainer="nnUNetTrainerRenalPaper_CPUtiny", epochs=length["epochs"],
        iterations_per_epoch=length["iterations_per_epoch"], classifier_epochs=length["classifier_epochs"],
        classifier_folds=None, margin_mm=ConversionConfig().margin_mm, device=config.device), out_dir / "work")
    _timed(seconds, "training", started)

    started = time.perf_counter()
    predictions = out_dir / "predictions"
    results = predict(images, predictions, models_dir, PredictConfig(device=config.device))
    _timed(seconds, "prediction", started)

    started = time.perf_counter()
    evaluation = evaluate_folders(predictions, references, out_dir / "evaluation",
                                  EvaluationConfig(ref_format="pipeline"))
    _timed(seconds, "evaluation", started)
    comparison = None
    if config.compare:
        from renal_nnunet.pipeline.compare import train_and_compare

        started = time.perf_counter()
        comparison = train_and_compare(folders, config, length, images, references, out_dir)
        _timed(seconds, "comparison", started)
    seconds["total"] = time.perf_counter() - started_all
    text = _summary_text(config, length, evaluation, results, seconds, out_dir, comparison)
    with atomic_path(out_dir / "demo_summary.md") as tmp:
        tmp.write_text(text)
    write_json({"config": asdict(config), "training": length, "seconds": seconds}, out_dir / "demo_run.json")
    reports = [r.files["report"] for r in results if "report" in r.files]
    return DemoSummary(text, evaluation.summary, models_dir, reports, seconds)


def _value(summary: pd.DataFrame, section: str, group: str, metric: str) -> float:
    rows = summary[(summary.section == section) & (summary.group == group) & (summary.metric == metric)]
    return float(rows.value.iloc[0]) if len(rows) else math.nan


def _summary_text(config, length, evaluation, results, seconds, out_dir: Path, comparison) -> str:
    s = evaluation.summary
    failed = [r.case_id for r in results if r.status == "failed"]
    lines = [
        "# renal-nnunet demo (synthetic data, short CPU training)", "",
        f"{config.cases} training + {config.test_cases} held-out synthetic CTs, grid {config.grid}^3, "
        f"folds {list(config.folds)}, {length['epochs']} x {length['iterations_per_epoch']} iterations per U-Net, "
        f"{length['classifier_epochs']} classifier epochs; wall time {seconds['total'] / 60:.1f} min "
        f"(data {seconds['data']:.0f} s, training {seconds['training']:.0f} s, prediction "
        f"{seconds['prediction']:.0f} s, evaluation {seconds['evaluation']:.0f} s).", "",
        "| held-out result | right | left |", "|---|---|---|",
        f"| kidney Dice | {_value(s, 'segmentation', 'kidney_right', 'dice'):.3f} | "
        f"{_value(s, 'segmentation', 'kidney_left', 'dice'):.3f} |",
        f"| mass Dice | {_value(s, 'segmentation', 'mass_right', 'dice'):.3f} | "
        f"{_value(s, 'segmentation', 'mass_left', 'dice'):.3f} |",
        f"| lesion precision | {_value(s, 'detection', 'right', 'precision'):.3f} | "
        f"{_value(s, 'detection', 'left', 'precision'):.3f} |",
        f"| lesion recall | {_value(s, 'detection', 'right', 'recall'):.3f} | "
        f"{_value(s, 'detection', 'left', 'recall'):.3f} |",
        f"| lesion F1 | {_value(s, 'detection', 'right', 'f1'):.3f} | {_value(s, 'detection', 'left', 'f1'):.3f} |",
        "", f"Classification accuracy (detected lesions, all sizes): "
            f"{_value(s, 'classification', 'all', 'accuracy'):.3f}", "",
        "Full paper-style tables (Tables 1-5):", "", Path(evaluation.files["summary_md"]).read_text(), "",
    ]
    if comparison is not None:
        lines += ["## Cascade vs one-stage baselines", "", comparison.to_string(float_format=lambda v: f"{v:.3f}"), ""]
    lines += [f"Models folder: {out_dir / 'models'} (use: renal-nnunet predict -i CT.nii.gz -o OUT --models "
              f"{out_dir / 'models'})",
              f"Per-case reports: {out_dir / 'predictions'}/*_report.png; evaluation: {out_dir / 'evaluation'}"]
    if failed:
        lines.append(f"FAILED cases: {failed}")
    lines.append("These are synthetic phantoms and minutes of CPU training: real use needs GPU training on real "
                 "CT with the paper's settings (nnUNetTrainerRenalPaper, 5 folds, grid 128).")
    return "\n".join(lines) + "\n"
