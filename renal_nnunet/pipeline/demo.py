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
``summary.md``, figures), ``grid_ceiling/`` (the held-out kidneys through the grid and back: the
Dice a perfect kidney U-Net reaches there, :mod:`renal_nnunet.inference.grid_ceiling`),
``demo_summary.md``, ``demo_run.json``, and ``nnunet_output.log``: nnU-Net's console output
(planner, trainer, predictor), warnings and the detailed log, while the console gets one line per
step and the tables.

Training length: ``minutes`` picks one of the named lengths in :data:`DEMO_LENGTHS` (the longest
whose budget fits ``minutes`` per fold trained), each a named trainer variant of
:mod:`renal_nnunet.trainers.paper`; the classifier trains for as many epochs as the U-Nets.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import KITS_LABELS, OUTPUT_LABELS
from renal_nnunet.io import InputError, atomic_path, read_image, write_image, write_json

if TYPE_CHECKING:
    from renal_nnunet.evaluation.transfer import RealCtFindings
    from renal_nnunet.synthetic.kits_shapes import KitsShapes

__all__ = ["DemoConfig", "DemoLength", "DemoSummary", "DEMO_LENGTHS", "NNUNET_LOG", "run_demo", "reference_seg",
           "demo_length", "training_length", "demo_kits_shapes", "write_held_out_cohort"]

log = logging.getLogger(__name__)

NNUNET_LOG = "nnunet_output.log"
"""File under the demo's output folder that takes nnU-Net's console output and the detailed log."""


@dataclass(frozen=True)
class DemoLength:
    """One of the demo's named training lengths.

    Attributes:
        minutes: budget it is sized for (2 CPU cores, the default cohort, one fold).
        trainer: trainer variant of the U-Nets (cascade stages and the one-stage grid baseline).
        baseline_trainer: stock nnU-Net variant of the same length (the ``3d_fullres`` baseline).
    """

    minutes: float
    trainer: str
    baseline_trainer: str


DEMO_LENGTHS: dict[str, DemoLength] = {
    "12min": DemoLength(12.0, "nnUNetTrainerRenalPaper_CPUdemo12min", "nnUNetTrainer_CPUdemo12min"),
    "2min": DemoLength(2.0, "nnUNetTrainerRenalPaper_CPUdemo2min", "nnUNetTrainer_CPUdemo2min"),
}
"""The demo's training lengths, longest first; the default ``minutes`` picks ``12min``."""

REFERENCE_MINUTES = DEMO_LENGTHS["12min"].minutes
"""Budget of the default training length (2 CPU cores)."""


@dataclass(frozen=True)
class DemoConfig:
    """Options of :func:`run_demo`.

    Attributes:
        cases: synthetic training cases (converted, planned, trained on).
        test_cases: held-out synthetic cases (predicted and evaluated only).
        grid: grid edge of both U-Nets and the classifier crops (voxels; the paper uses 128).
        minutes: time budget; picks the longest of :data:`DEMO_LENGTHS` that fits ``minutes / len(folds)``.
        generator: ``randomised`` (domain-randomised torsos whose models transfer to real CT, see
            :mod:`renal_nnunet.synthetic.randomised`) or ``ellipsoid`` (one contrast, one field of view).
        shape_zyx, spacing_zyx_mm: array shape and voxel spacing (numpy order, mm) of ``ellipsoid``
            phantoms; ``randomised`` ones draw their own field of view and grid.
        folds: nnU-Net folds trained per stage.
        device: ``cpu``, ``cuda`` or ``mps``.
        compare: also train and evaluate the one-stage baselines (:mod:`.compare`).
        seed: cohort seed (the held-out cohort uses ``seed + 1``).
        first_id: nnU-Net dataset id of the kidney dataset (inside the demo's own folders).
        real_ct: a real CT (DICOM folder or image file) the trained models are also run on, to show
            what they find on a scan unlike their training data; ``"shared"`` (default) takes the
            project's shared real CT when this machine has it
            (:func:`renal_nnunet.evaluation.transfer.shared_real_ct`), None skips it.
        kits_shapes: a KiTS23 ``dataset/`` folder whose mass-free kidneys, tumours and cysts the
            ``randomised`` generator places into its torsos (:mod:`renal_nnunet.synthetic.kits_shapes`),
            leaving out the :data:`~renal_nnunet.synthetic.kits_shapes.CONTROL_CASES` that the
            painted-KiTS control scores; ``"shared"`` takes the shared KiTS23 label maps when this
            machine has them, None (or no such folder) keeps ellipsoid kidneys and masses.
        phase, field_of_view: one contrast phase
            (:data:`~renal_nnunet.synthetic.randomised.PHASES`) or scan range
            (:data:`~renal_nnunet.synthetic.randomised.FIELDS_OF_VIEW`) for every case of the
            ``randomised`` generator, training and held-out alike: that randomisation left out, for an
            ablation; None (default) draws it per case.
    """

    cases: int = 48
    test_cases: int = 4
    grid: int = 32
    minutes: float = REFERENCE_MINUTES
    generator: str = "randomised"
    shape_zyx: tuple[int, int, int] = (52, 54, 72)
    spacing_zyx_mm: tuple[float, float, float] = (5.0, 5.0, 5.0)
    folds: tuple[int, ...] = (0,)
    device: str = "cpu"
    compare: bool = False
    seed: int = 0
    first_id: int = 501
    real_ct: str | Path | None = "shared"
    kits_shapes: str | Path | None = "shared"
    phase: str | None = None
    field_of_view: str | None = None

    def __post_init__(self):
        from renal_nnunet.synthetic.randomised import FIELDS_OF_VIEW, PHASES

        if self.phase not in (None, *PHASES) or self.field_of_view not in (None, *FIELDS_OF_VIEW):
            raise ValueError(f"phase must be one of {PHASES} and field_of_view one of {tuple(FIELDS_OF_VIEW)} "
                             f"(or None); got {self.phase!r}, {self.field_of_view!r}")
        if self.generator != "randomised" and (self.phase or self.field_of_view):
            raise ValueError("phase and field_of_view fix draws of the randomised generator only")
        if self.cases < 5:
            raise ValueError(f"cases must be at least 5 (five patient-grouped folds), got {self.cases}")
        if self.test_cases < 1 or self.grid < 16:
            raise ValueError(f"need test_cases >= 1 and grid >= 16; got {self.test_cases}, {self.grid}")
        demo_length(self)  # raises on a budget below the shortest length


@dataclass
class DemoSummary:
    """What the demo did: the printed text, the evaluation summary table, paths and timings."""

    text: str
    summary: pd.DataFrame
    models_dir: Path
    reports: list[Path]
    seconds: dict[str, float] = field(default_factory=dict)


def demo_length(config: DemoConfig) -> DemoLength:
    """The longest of :data:`DEMO_LENGTHS` whose budget fits ``config.minutes`` per fold trained.

    The 12-minute length trains each U-Net fold for 28 epochs x 20 iterations (560 steps, batch 4)
    and the classifier for 28 epochs. Calibrated on 2 CPU cores with the default cohort (grid 32):
    about 0.42 s per U-Net iteration and 3.8 s per classifier epoch, plus about 40 s of conversion,
    planning, prediction and evaluation, so the default demo takes about 10 minutes when nothing else runs.

    Raises:
        ValueError: the budget per fold is below the shortest length (the message lists them).
    """
    per_fold = config.minutes / len(config.folds)
    fitting = [length for length in DEMO_LENGTHS.values() if length.minutes <= per_fold]
    if not fitting:
        choices = ", ".join(f"{name} ({length.minutes:g} min per fold)" for name, length in DEMO_LENGTHS.items())
        raise ValueError(f"minutes={config.minutes:g} for {len(config.folds)} fold(s) is below the shortest demo "
                         f"training length; choose a budget that fits one of: {choices}")
    return max(fitting, key=lambda length: length.minutes)


def training_length(config: DemoConfig) -> dict[str, int]:
    """Epochs and iterations per epoch of each U-Net fold, and the classifier's epochs (as many as
    the U-Nets'), read off the trainer variant :func:`demo_length` picks."""
    from renal_nnunet.trainers import paper

    length = getattr(paper, demo_length(config).trainer).LENGTH
    return {"epochs": length.epochs, "iterations_per_epoch": length.iterations_per_epoch,
            "classifier_epochs": length.epochs}


def reference_seg(case) -> sitk.Image:
    """A case's reference in the pipeline's label convention (what the cascade is trained to give).

    Kidneys as the converter draws them (parenchyma + sinus + masses, sides from patient
    coordinates), masses labelled by their reference class (AML 3, cystic 4, solid 5; 6 when the
    class is unknown).

    Args:
        case: a :class:`renal_nnunet.dataset_conversion.sources.SourceCase`.
    """
    from renal_nnunet.anatomy.geometry import image_like
    from renal_nnunet.anatomy.lesion_classes import lesion_class
    from renal_nnunet.anatomy.lesions import lesion_components
    from renal_nnunet.anatomy.sides import paper_kidney_sides
    from renal_nnunet.anatomy.sinus import SINUS_CLOSING_RADIUS_MM
    from renal_nnunet.dataset_conversion.case import read_case

    read = read_case(case)
    kits = read.kits()
    seg = sitk.GetArrayFromImage(paper_kidney_sides(read.ct, kits, SINUS_CLOSING_RADIUS_MM))
    mass_image = image_like(np.isin(kits, (KITS_LABELS["tumor"], KITS_LABELS["cyst"])).astype(np.uint8), read.ct)
    components = sitk.GetArrayFromImage(lesion_components(mass_image))
    names = {KITS_LABELS["tumor"]: "tumor", KITS_LABELS["cyst"]: "cyst"}
    for lesion_id in np.unique(components[components > 0]):
        inside = components == lesion_id
        values, counts = np.unique(kits[inside], return_counts=True)
        name, _ = lesion_class(names[int(values[np.argmax(counts)])], case.subtype)
        seg[inside] = OUTPUT_LABELS.get(name, OUTPUT_LABELS["mass_too_small"])
    return image_like(seg.astype(np.uint8), read.ct)


def _write_cohort(config: DemoConfig, folder: Path, n_cases: int, seed: int, shapes: KitsShapes | None) -> Path:
    """A synthetic cohort of the demo's generator in the KiTS23 layout (with real KiTS ``shapes`` when
    given); returns its source folder."""
    from renal_nnunet.synthetic import write_synthetic_kits

    options = ({"kits_shapes": shapes, "phase": config.phase, "field_of_view": config.field_of_view}
               if config.generator == "randomised"
               else {"shape_zyx": config.shape_zyx, "spacing_zyx_mm": config.spacing_zyx_mm})
    return write_synthetic_kits(folder, n_cases, seed=seed, generator=config.generator, **options)


def demo_kits_shapes(config: DemoConfig) -> KitsShapes | None:
    """The real KiTS shapes the demo's generator uses, or None (see :attr:`DemoConfig.kits_shapes`)."""
    from renal_nnunet.evaluation.transfer import shared_kits23_dataset
    from renal_nnunet.synthetic.kits_shapes import control_case_ids, load_kits_shapes

    if config.generator != "randomised" or config.kits_shapes is None:
        return None
    dataset = shared_kits23_dataset() if config.kits_shapes == "shared" else Path(config.kits_shapes)
    if dataset is None:
        log.warning("no shared KiTS23 label maps on this machine: the generator keeps ellipsoid kidneys and masses")
        return None
    return load_kits_shapes(dataset, exclude=control_case_ids(dataset))


def _shapes_phrase(config: DemoConfig, shapes: KitsShapes | None) -> str:
    """How the randomised generator shaped kidneys and masses, for the summary's first line."""
    if config.generator != "randomised":
        return ""
    fixed = ((f"; every case in the {config.phase} phase" if config.phase else "")
             + (f"; every scan range {config.field_of_view}" if config.field_of_view else ""))
    if shapes is None:
        return f" (ellipsoid kidneys and masses{fixed})"
    tumours, cysts = (len(shapes.masses_labelled(KITS_LABELS[name])) for name in ("tumor", "cyst"))
    return (f" (kidneys, tumours and cysts shaped like {len(shapes.kidneys)}, {tumours} and {cysts} real ones "
            f"of KiTS23{fixed})")


def write_held_out_cohort(config: DemoConfig, out_dir: Path, shapes: KitsShapes | None) -> tuple[Path, Path]:
    """Write the demo's held-out cohort (``config.test_cases`` cases of its generator, seed
    ``config.seed + 1``, real KiTS ``shapes`` or None): its CTs as ``out_dir/test_images/<case>.nii.gz``
    and its references, in the pipeline's labels, as ``out_dir/test_references/<case>.nii.gz``."""
    from renal_nnunet.dataset_conversion.kits import find_kits_cases

    src = _write_cohort(config, out_dir / "synthetic" / "test", config.test_cases, config.seed + 1, shapes)
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

    While it runs, the console's log handlers get only this module's step lines and warnings;
    nnU-Net's prints and every other log line go to ``out_dir/nnunet_output.log``.

    Raises:
        InputError: ``out_dir`` holds a previous demo's models folder (remove it or pick another).
    """
    from renal_nnunet.nnunet.environment import nnunet_output_to

    out_dir = Path(out_dir)
    models_dir = out_dir / "models"
    if models_dir.exists():
        raise InputError(models_dir, "already exists from an earlier demo; remove it or choose another -o/--output")
    log_path = out_dir / NNUNET_LOG
    log.info("demo in %s; nnU-Net's output and the detailed log: %s", out_dir, log_path)
    with nnunet_output_to(log_path, console_loggers=(__name__,)):
        return _run_steps(out_dir, config, log_path)


def _run_steps(out_dir: Path, config: DemoConfig, log_path: Path) -> DemoSummary:
    from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders
    from renal_nnunet.inference.grid_ceiling import kidney_dice_ceiling
    from renal_nnunet.nnunet.environment import NnunetFolders
    from renal_nnunet.pipeline.predict import PAPER_PROTOCOL_MIN_DIAMETER_MM, PredictConfig, predict
    from renal_nnunet.pipeline.training import CascadeTrainingConfig, train_cascade

    models_dir = out_dir / "models"
    started_all, seconds = time.perf_counter(), {}
    started = time.perf_counter()
    shapes = demo_kits_shapes(config)
    train_src = _write_cohort(config, out_dir / "synthetic" / "train", config.cases, config.seed, shapes)
    images, references = write_held_out_cohort(config, out_dir, shapes)
    folders = NnunetFolders.under(out_dir / "nnunet")
    conversion = convert_kits(train_src, folders.raw, ConversionConfig(first_id=config.first_id, grid=config.grid))
    if not conversion.ok:
        log.warning("conversion failures: %s", conversion.failed)
    _timed(seconds, "data", started)

    started = time.perf_counter()
    length = training_length(config)
    train_cascade(folders, models_dir, CascadeTrainingConfig(
        kidney_dataset=config.first_id, mass_dataset=config.first_id + 1, folds=config.folds,
        trainer=demo_length(config).trainer, classifier_epochs=length["classifier_epochs"], classifier_folds=None,
        device=config.device, training_data="synthetic"), out_dir / "work")
    _timed(seconds, "training", started)

    started = time.perf_counter()
    predictions = out_dir / "predictions"
    results = predict(images, predictions, models_dir,
                      PredictConfig(device=config.device, min_classify_diameter_mm=PAPER_PROTOCOL_MIN_DIAMETER_MM))
    _timed(seconds, "prediction", started)

    started = time.perf_counter()
    evaluation = evaluate_folders(predictions, references, out_dir / "evaluation",
                                  EvaluationConfig(ref_format="pipeline"))
    ceiling = kidney_dice_ceiling(references, images, config.grid, out_dir / "grid_ceiling")
    _timed(seconds, "evaluation", started)
    real = _real_ct_step(config, out_dir, models_dir, seconds)
    comparison = None
    if config.compare:
        from renal_nnunet.pipeline.compare import train_and_compare

        started = time.perf_counter()
        demo_trainers = demo_length(config)
        comparison = train_and_compare(folders, config, images, references, out_dir,
                                       (demo_trainers.trainer, demo_trainers.baseline_trainer))
        _timed(seconds, "comparison", started)
    seconds["total"] = time.perf_counter() - started_all
    text = _summary_text(config, shapes, length, evaluation, ceiling, results, seconds, out_dir, comparison, log_path,
                         real)
    with atomic_path(out_dir / "demo_summary.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    write_json({"config": asdict(config), "training": length, "seconds": seconds, "kidney_dice_ceiling": ceiling},
               out_dir / "demo_run.json")
    reports = [r.files["report"] for r in results if "report" in r.files]
    return DemoSummary(text, evaluation.summary, models_dir, reports, seconds)


@dataclass(frozen=True)
class RealCtRun:
    """The demo's models on a real CT: where it came from, what they found, the report picture."""

    source: Path
    findings: "RealCtFindings | None"
    status: str
    report: Path | None


def _real_ct_step(config: DemoConfig, out_dir: Path, models_dir: Path, seconds: dict) -> RealCtRun | None:
    """Predict the real CT with the demo's models; measure kidney boxes only on the shared one."""
    from renal_nnunet.evaluation.transfer import shared_real_ct, shared_real_ct_findings
    from renal_nnunet.pipeline.predict import PredictConfig, predict

    source = shared_real_ct() if config.real_ct == "shared" else config.real_ct
    if source is None:
        return None
    started = time.perf_counter()
    source = Path(source)
    try:
        (result,) = predict(source, out_dir / "real_ct", models_dir, PredictConfig(device=config.device))
    except InputError as err:  # the demo's synthetic results stand without it
        log.warning("the real CT was not predicted: %s", err)
        return RealCtRun(source, None, f"failed ({err})", None)
    findings = None
    if result.status != "failed" and config.real_ct == "shared":
        findings = shared_real_ct_findings(source, read_image(result.files["seg"]))
    _timed(seconds, "real_ct", started)
    return RealCtRun(source, findings, result.status, result.files.get("report"))


def _real_ct_lines(real: RealCtRun) -> list[str]:
    """The summary's section on the real CT: stated plainly as one unlabelled scan never trained on."""
    lines = ["## The same models on a real CT", "",
             f"{real.source}: a real contrast-enhanced CT. The models never saw a real CT (they trained on "
             "synthetic torsos only), and this scan has no labels: the figures below say where the models put "
             "the kidneys, not how accurately.", ""]
    if real.status == "failed" or real.findings is None:
        return lines + [f"Prediction status: {real.status}; report: {real.report}", ""]
    found = real.findings
    lines += ["| side | kidney volume (ml) | share inside the kidney's box |", "|---|---|---|"]
    lines += [f"| {row['side']} | {row['kidney_ml']:.0f} | "
              f"{'no kidney found' if np.isnan(row['inside_box']) else format(row['inside_box'], '.1%')} |"
              for row in found.rows()]
    lines += ["", f"Masses reported: {found.masses_text()}. The scan's one renal mass, a simple cyst at the right "
                  f"kidney's upper pole (not in its README; outlined from its water density): {found.cyst_text()}.",
              "Expected: each kidney 100-250 ml, >= 90 % of kidney voxels inside the boxes, no mass but that cyst; "
              f"met: {'yes' if found.meets_bounds() else 'no'}.",
              f"Report picture: {real.report}", ""]
    return lines


def _summary_text(config, shapes: KitsShapes | None, length, evaluation, ceiling: dict[str, float], results, seconds,
                  out_dir: Path, comparison, log_path: Path, real: RealCtRun | None) -> str:
    from renal_nnunet.evaluation.report import summary_value

    s = evaluation.summary
    failed = [r.case_id for r in results if r.status == "failed"]
    lines = [
        "# renal-nnunet demo (synthetic data, short CPU training)", "",
        f"{config.cases} training + {config.test_cases} held-out synthetic CTs{_shapes_phrase(config, shapes)}, "
        f"grid {config.grid}^3, "
        f"folds {list(config.folds)}, {length['epochs']} x {length['iterations_per_epoch']} iterations per U-Net, "
        f"{length['classifier_epochs']} classifier epochs; wall time {seconds['total'] / 60:.1f} min "
        f"(data {seconds['data']:.0f} s, training {seconds['training']:.0f} s, prediction "
        f"{seconds['prediction']:.0f} s, evaluation {seconds['evaluation']:.0f} s).", "",
        "| held-out result | right | left |", "|---|---|---|",
        f"| kidney Dice | {summary_value(s, 'segmentation', 'kidney_right', 'dice'):.3f} | "
        f"{summary_value(s, 'segmentation', 'kidney_left', 'dice'):.3f} |",
        f"| kidney Dice of a perfect kidney U-Net on the {config.grid}^3 grid (references there and back) | "
        f"{ceiling['right']:.3f} | {ceiling['left']:.3f} |",
        f"| mass Dice | {summary_value(s, 'segmentation', 'mass_right', 'dice'):.3f} | "
        f"{summary_value(s, 'segmentation', 'mass_left', 'dice'):.3f} |",
        f"| lesion precision | {summary_value(s, 'detection', 'right', 'precision'):.3f} | "
        f"{summary_value(s, 'detection', 'left', 'precision'):.3f} |",
        f"| lesion recall | {summary_value(s, 'detection', 'right', 'recall'):.3f} | "
        f"{summary_value(s, 'detection', 'left', 'recall'):.3f} |",
        f"| lesion F1 | {summary_value(s, 'detection', 'right', 'f1'):.3f} | "
        f"{summary_value(s, 'detection', 'left', 'f1'):.3f} |",
        "", f"Classification accuracy (detected lesions, all sizes): "
            f"{summary_value(s, 'classification', 'all', 'accuracy'):.3f}", "",
        "Full paper-style tables (Tables 1-5):", "", Path(evaluation.files["summary_md"]).read_text(encoding="utf-8"), "",
    ]
    if real is not None:
        lines += _real_ct_lines(real)
    if comparison is not None:
        lines += ["## Cascade vs one-stage baselines", "", comparison.table.to_string(float_format=lambda v: f"{v:.3f}"),
                  "", f"Per-case statistics and box plots: {comparison.files['comparison.md']}", ""]
    lines += [f"Models folder: {out_dir / 'models'} (use: renal-nnunet predict -i CT.nii.gz -o OUT --models "
              f"{out_dir / 'models'})",
              f"Per-case reports: {out_dir / 'predictions'}/*_report.png; evaluation: {out_dir / 'evaluation'}",
              f"nnU-Net's output and the detailed log: {log_path}"]
    if failed:
        lines.append(f"FAILED cases: {failed}")
    lines.append("These are synthetic phantoms and minutes of CPU training: real use needs GPU training on real "
                 "CT with the paper's settings (nnUNetTrainerRenalPaper, 5 folds, grid 128).")
    return "\n".join(lines) + "\n"
