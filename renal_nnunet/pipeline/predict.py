"""End-to-end prediction: CT -> labelled kidneys, classified masses, lesion table, report.

Steps per case (the paper's cascade): kidney U-Net on the whole CT (its body box) resized to the grid -> each
kidney's bounding box + margin -> mass U-Net ensemble on each box resized to the grid -> paste
back -> connected components -> ResNet-10 ensemble on masses with average diameter >= 5 mm
(smaller ones are reported as too small to characterise) -> outputs in the input's exact geometry.

Outputs per case in ``output_dir``: ``<case>_seg.nii.gz`` (labels of
``renal_nnunet.anatomy.labels.OUTPUT_LABELS``: 0 background, 1 right kidney, 2 left kidney, 3 AML,
4 cystic, 5 solid, 6 mass too small to classify), ``<case>_lesions.csv`` and ``.json``,
``<case>_report.png``, label names and colours for ITK-SNAP and 3D Slicer
(``renal_nnunet.outputs.viewer_labels``) and, unless ``cam`` is off, ``<case>_lesion<k>_gradcam.nii.gz``. A batch
also writes ``predict_summary.json``.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import from_canonical_orientation, image_like, paste_on_grid, to_canonical_orientation
from renal_nnunet.anatomy.labels import KIDNEY_SIDE_LABELS, LESION_CLASSES, OUTPUT_LABELS
from renal_nnunet.classification.ensemble import ClassifierEnsemble
from renal_nnunet.inference.cascade import (
    MassResult,
    keep_masses_on_kidneys,
    kidney_boxes,
    lesion_sides,
    segment_kidneys,
    segment_masses,
)
from renal_nnunet.inference.ensemble import FoldEnsemble
from renal_nnunet.io import (
    DicomSeries,
    InputError,
    check_same_geometry,
    find_dicom_series,
    read_dicom_series,
    read_image,
    select_part,
    write_image,
    write_json,
)
from renal_nnunet.outputs.lesion_table import write_lesion_tables
from renal_nnunet.outputs.records import CUT_OFF_CLASS, TOO_SMALL_CLASS, LesionRecord
from renal_nnunet.outputs.viewer_labels import write_viewer_label_files
from renal_nnunet.pipeline.case_outputs import case_output_set, is_complete
from renal_nnunet.pipeline.inputs import CaseInput, check_ct_intensities, discover_cases
from renal_nnunet.pipeline.models import ModelsManifest, load_models
from renal_nnunet.pipeline.nephrometry import predicted_mass_nephrometry
from renal_nnunet.pipeline.plausibility import kidney_level_problem, kidney_problems, lesion_problem, no_tissue_problem
from renal_nnunet.pipeline.provenance import run_record
from renal_nnunet.runtime.backends import Runtime

__all__ = ["PAPER_PROTOCOL_MIN_DIAMETER_MM", "PredictConfig", "CascadeNetworks", "CaseResult", "CaseAnalysis", "predict",
           "analyse_ct", "write_case_outputs"]

log = logging.getLogger(__name__)

IN_MEMORY_CASE_ID = "image"
NO_MASSES = "no renal masses found"


PAPER_PROTOCOL_MIN_DIAMETER_MM = 0.0
"""``min_classify_diameter_mm`` of the paper's evaluation: every detected mass is classified,
whatever its size, so both of its diameter strata (< 5 mm and >= 5 mm) are measured. ``predict``'s
default instead leaves masses under 5 mm uncharacterised (label 6), as a clinical report would."""


@dataclass(frozen=True)
class PredictConfig:
    """Options of :func:`predict`.

    Attributes:
        folds: nnU-Net folds to ensemble (default: all folds in the models folder).
        device: ``cpu``, ``cuda`` or ``mps``.
        cam: write Grad-CAM maps (NIfTI per lesion, and in the report).
        report: draw ``<case>_report.png``.
        min_classify_diameter_mm: masses with a smaller average diameter are labelled 6 and not
            classified (default: the models folder's value, the paper's 5 mm).
        check_intensities: refuse inputs that do not look like CT in HU.
        num_parts, part_id: predict only ``cases[part_id::num_parts]`` (as ``nnUNetv2_predict``).
        case_id: id used for an in-memory image input.
        series_uid: SeriesInstanceUID to read from a DICOM folder that holds several series.
        review_below_probability: a classified mass is ``indeterminate`` (needs review) when its
            calibrated class probability is below this...
        review_below_agreement: ...or when the share of classifier folds voting for its class is
            below this (default 0.8: with 5 folds, 3 of 5 agreeing is flagged).
        dicom_seg: for a DICOM series input, also write ``<case>_seg.dcm`` (DICOM SEG) and
            ``<case>_sr.dcm`` (TID 1500 SR), see ``renal_nnunet.outputs.dicom``; where they
            cannot be written the case keeps its other outputs and its ``output_errors`` say why.
        backend: what runs the forward passes: ``auto`` (OpenVINO on the CPU, torch elsewhere),
            ``torch`` or ``openvino``; the results agree to the figures in the README.
        continue_prediction: skip cases whose complete outputs from these models exist
            (``nnUNetv2_predict --continue_prediction``).
        nephrometry: score every mass's R.E.N.A.L., PADUA and C-index
            (``renal_nnunet.pipeline.nephrometry``): lesion table, report and SR.
        precision: OpenVINO's arithmetic per stage: ``auto`` (INT8 where its measured agreement
            with fp32 meets the bounds, else bf16 where the CPU has it and it was measured within
            them, else fp32), ``fp32``, ``bf16`` or ``int8`` (see ``compile-models``); torch runs fp32.
    """

    folds: tuple[int, ...] | None = None
    device: str = "cpu"
    cam: bool = True
    report: bool = True
    min_classify_diameter_mm: float | None = None
    check_intensities: bool = True
    num_parts: int = 1
    part_id: int = 0
    case_id: str = IN_MEMORY_CASE_ID
    series_uid: str | None = None
    dicom_seg: bool = False
    review_below_probability: float = 0.6
    review_below_agreement: float = 0.8
    backend: str = "auto"
    continue_prediction: bool = False
    nephrometry: bool = True
    precision: str = "auto"

    def __post_init__(self) -> None:
        for name in ("review_below_probability", "review_below_agreement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.min_classify_diameter_mm is not None and not self.min_classify_diameter_mm >= 0:
            raise ValueError(f"min_classify_diameter_mm must be at least 0 mm, got {self.min_classify_diameter_mm}")
        if not 0 <= self.part_id < self.num_parts:
            raise ValueError(f"part_id must lie in [0, num_parts), got part {self.part_id} of {self.num_parts}")


@dataclass(frozen=True)
class CascadeNetworks:
    """The cascade's three fold ensembles on one runtime, built once per run.

    Attributes:
        kidney: the kidney stage's U-Net folds.
        mass: the mass stage's U-Net folds.
        classifier: the lesion classifier's folds.
    """

    kidney: FoldEnsemble
    mass: FoldEnsemble
    classifier: ClassifierEnsemble

    @classmethod
    def load(cls, models_dir: str | os.PathLike, manifest: ModelsManifest, runtime: Runtime) -> "CascadeNetworks":
        """The networks of a models folder (its manifest as :func:`load_models` read it) on ``runtime``."""
        models_dir = Path(models_dir)
        return cls(FoldEnsemble(models_dir / manifest.kidney.path, manifest.kidney.folds, runtime),
                   FoldEnsemble(models_dir / manifest.mass.path, manifest.mass.folds, runtime),
                   ClassifierEnsemble([models_dir / p for p in manifest.classifier], runtime))

    @property
    def precisions(self) -> dict[str, dict[str, str]]:
        """Each stage's precision and why (``{"kidney": {"precision": "int8", "reason": ...}, ...}``)."""
        return {name: {"precision": ensemble.runtime.precision, "reason": ensemble.runtime.reason}
                for name, ensemble in (("kidney", self.kidney), ("mass", self.mass), ("classifier", self.classifier))}


@dataclass(frozen=True)
class CaseAnalysis:
    """In-memory result for one CT: output labels (same geometry as the CT), lesion rows,
    Grad-CAM images by lesion id (each on its lesion's box of the CT's grid), messages for the
    user, wall seconds per stage (``kidney``, ``mass``, ``classification``, ``nephrometry``) and the lesion
    components (each lesion's voxels hold its ``lesion_id``; same geometry as the CT)."""

    seg: sitk.Image
    lesions: tuple[LesionRecord, ...]
    cams: dict[int, sitk.Image]
    messages: tuple[str, ...]
    kidney_found: bool
    stage_seconds: dict[str, float] = field(default_factory=dict)
    components: sitk.Image | None = None


@dataclass(frozen=True)
class CaseResult:
    """What :func:`predict` did for one case.

    Attributes:
        status: ``ok``, ``no_kidney`` (outputs written, all background) or ``failed``.
        files: written files by kind (``seg``, ``lesions_csv``, ``lesions_json``, ``report``, ``cam_<k>``,
            ``dicom_seg``, ``dicom_sr``).
        messages: notes for the user.
        error: why it failed (``failed`` only).
        seconds: wall time for the case.
        stage_seconds: wall time of each stage (see :class:`CaseAnalysis`).
        output_errors: why an output asked for was not written (also among ``messages``), e.g. the
            DICOM SEG and SR of a series that lacks an attribute they need; the case's other outputs
            are in place.
    """

    case_id: str
    source: str
    status: str
    files: dict[str, Path] = field(default_factory=dict)
    lesions: tuple[LesionRecord, ...] = ()
    messages: tuple[str, ...] = ()
    error: str = ""
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    output_errors: tuple[str, ...] = ()


def _classify(ct: sitk.Image, components: sitk.Image, skip_ids: Sequence[int], classifier: ClassifierEnsemble,
              config: PredictConfig) -> dict:
    """Classifier-ensemble verdicts by lesion id for the lesions of ``components`` not in ``skip_ids``."""
    from renal_nnunet.classification.predict import classify_lesions, lesion_ids_of

    to_classify = sitk.ChangeLabel(components, changeMap={int(i): 0 for i in skip_ids})
    if not lesion_ids_of(to_classify):
        return {}
    return {c.lesion_id: c for c in classify_lesions(ct, to_classify, classifier, cam=config.cam)}


def analyse_ct(ct: sitk.Image, networks: CascadeNetworks, manifest: ModelsManifest,
               config: PredictConfig) -> CaseAnalysis:
    """Run the whole cascade on one CT (HU) in memory; outputs share the CT's exact geometry.

    The cascade runs on the CT reoriented to the orientation the networks see
    (:func:`~renal_nnunet.anatomy.geometry.to_canonical_orientation`, a lossless permutation/flip
    of the array axes), so the result does not depend on how the volume is stored (NIfTI vs DICOM
    slice order, flipped or permuted axes). Outputs are permuted back.
    """
    analysis = _analyse_canonical(to_canonical_orientation(ct), networks, manifest, config)
    components = None if analysis.components is None else _to_input_geometry(analysis.components, ct)
    return replace(analysis, seg=_to_input_geometry(analysis.seg, ct), components=components,
                   cams={k: from_canonical_orientation(v, ct) for k, v in analysis.cams.items()})


def _to_input_geometry(image: sitk.Image, ct: sitk.Image) -> sitk.Image:
    back = from_canonical_orientation(image, ct)
    check_same_geometry(ct, back, "the input CT", "the output mapped back from LPS")
    back.CopyInformation(ct)  # drop float round-off of the permuted origin
    return back


def _analyse_canonical(ct: sitk.Image, networks: CascadeNetworks, manifest: ModelsManifest,
                       config: PredictConfig) -> CaseAnalysis:
    """The paper's steps on an LPS CT: kidneys -> boxes -> masses -> components -> classes -> outputs."""
    from renal_nnunet.anatomy.lesions import lesion_components, lesion_properties
    from renal_nnunet.classification.predict import lesions_touching_border

    clock = _StageClock()
    no_tissue = no_tissue_problem(ct)
    if no_tissue:  # nothing here can be a kidney: the networks would only guess (and the midline is undefined)
        nothing = image_like(np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8), ct)
        return _case_analysis(nothing, (), {}, (*_model_warnings(manifest), no_tissue), False, clock)
    kidneys = segment_kidneys(ct, networks.kidney)
    clock.lap("kidney")
    out_of_view = kidney_level_problem(ct, kidneys.labels) if kidneys.found else None
    if not kidneys.found or out_of_view:
        nothing = image_like(np.zeros(sitk.GetArrayViewFromImage(kidneys.labels).shape, np.uint8), kidneys.labels)
        return _case_analysis(nothing, (), {}, (*_model_warnings(manifest), *kidneys.messages,
                                                *([out_of_view] if out_of_view else [])), False, clock)
    boxes = kidney_boxes(kidneys.labels, manifest.margin_mm)
    masses, off_kidney = keep_masses_on_kidneys(segment_masses(ct, boxes, networks.mass), kidneys.labels)
    clock.lap("mass")
    components = lesion_components(masses.mask, connectivity=26)
    lesions = lesion_properties(components)
    threshold_mm = (manifest.min_classify_diameter_mm if config.min_classify_diameter_mm is None
                    else config.min_classify_diameter_mm)
    small_ids = [p.lesion_id for p in lesions if p.average_diameter_mm < threshold_mm]
    cut_off_ids = sorted(set(lesions_touching_border(components)) - set(small_ids))
    messages = [*_model_warnings(manifest), *kidneys.messages, *off_kidney]
    if cut_off_ids:
        messages.append(f"mass(es) {cut_off_ids} touch the image border (cut off by the field of view): "
                        "not classified")
    classified = _classify(ct, components, small_ids + cut_off_ids, networks.classifier, config)
    clock.lap("classification")
    sides = lesion_sides(components, kidneys.labels, boxes)
    records = tuple(_with_review(_lesion_record(lesion, components, ct, sides[lesion.lesion_id], masses,
                                                classified.get(lesion.lesion_id),
                                                CUT_OFF_CLASS if lesion.lesion_id in cut_off_ids else TOO_SMALL_CLASS),
                                 classified.get(lesion.lesion_id), manifest.temperature, config)
                    for lesion in lesions)
    cams = {lesion.lesion_id: classified[lesion.lesion_id].cam for lesion in lesions
            if getattr(classified.get(lesion.lesion_id), "cam", None) is not None}
    if not lesions:
        messages.append(NO_MASSES)
    elif config.nephrometry:
        scores = predicted_mass_nephrometry(ct, kidneys.labels, components, {r.lesion_id: r.lesion_class for r in records},
                                            views=config.report)
        records = tuple(replace(r, nephrometry=scores.get(r.lesion_id)) for r in records)
        clock.lap("nephrometry")
    seg = _output_labels(kidneys.labels, components, records)
    messages += kidney_problems(seg, records, KIDNEY_SIDE_LABELS)
    return replace(_case_analysis(seg, records, cams, tuple(messages), True, clock), components=components)


def _model_warnings(manifest: ModelsManifest) -> list[str]:
    """What the user must know about the models themselves (trained on synthetic data)."""
    training = manifest.training
    if training.get("data") != "synthetic":
        return []
    return [f"WARNING: these models were trained on synthetic data ({training.get('kidney', {}).get('cases', '?')} "
            "phantom cases): they demonstrate the pipeline and are not fit for real CTs; do not trust these results"]


class _StageClock:
    """Wall seconds per stage, each lap measured from the end of the previous one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started = time.perf_counter()

    def lap(self, name: str) -> None:
        self.seconds[name] = time.perf_counter() - self._started - sum(self.seconds.values())


def _case_analysis(seg: sitk.Image, records: tuple, cams: dict, messages: tuple, kidney_found: bool,
                   clock: _StageClock) -> CaseAnalysis:
    if clock.seconds:  # none when no stage ran (a CT without tissue)
        log.info("stage times: %s", ", ".join(f"{name} {s:.1f} s" for name, s in clock.seconds.items()))
    return CaseAnalysis(seg, records, cams, messages, kidney_found, clock.seconds)


def _output_labels(kidneys: sitk.Image, components: sitk.Image, records: Sequence[LesionRecord]) -> sitk.Image:
    """Output label map: the kidney labels with each lesion's voxels set to its output label."""
    seg = sitk.GetArrayFromImage(kidneys).astype(np.uint8)
    component_array = sitk.GetArrayViewFromImage(components)
    for record in records:
        seg[component_array == record.lesion_id] = record.output_label
    return image_like(seg, kidneys)


def _lesion_record(lesion, components: sitk.Image, ct: sitk.Image, side: str, masses: MassResult,
                   classification, unclassified_as: str) -> LesionRecord:
    mask = sitk.GetArrayViewFromImage(components) == lesion.lesion_id
    values = sitk.GetArrayViewFromImage(ct)[mask].astype(np.float64)
    mass_prob_mean, mass_prob_spread = masses.mean_over(mask)
    common = dict(
        lesion_id=lesion.lesion_id, side=side,
        volume_ml=lesion.volume_ml, average_diameter_mm=lesion.average_diameter_mm,
        mean_hu=float(values.mean()), max_hu=float(values.max()), centroid_mm=lesion.centroid_mm,
        plausibility=lesion_problem(float(values.mean())),
        mass_prob_mean=mass_prob_mean, mass_prob_spread=mass_prob_spread,
    )
    if classification is None:
        return LesionRecord(output_label=OUTPUT_LABELS["mass_too_small"], lesion_class=unclassified_as, **common)
    predicted = classification.predicted_class
    return LesionRecord(
        output_label=OUTPUT_LABELS[predicted], lesion_class=predicted,
        probabilities={name: float(classification.probabilities[name]) for name in LESION_CLASSES},
        fold_agreement=float(classification.fold_agreement), **common,
    )


def _with_review(record: LesionRecord, classification, temperature: float, config: PredictConfig) -> LesionRecord:
    """``record`` with its calibrated class probability (mean over folds of each fold's softmax at
    ``temperature``) and its ``indeterminate`` flag."""
    from renal_nnunet.classification.calibration import apply_temperature

    if classification is None:
        return record
    calibrated = apply_temperature(classification.fold_probabilities, temperature).mean(axis=0)
    probability = float(calibrated[LESION_CLASSES.index(record.lesion_class)])
    flagged = probability < config.review_below_probability or record.fold_agreement < config.review_below_agreement
    return replace(record, probability_calibrated=probability, indeterminate=bool(flagged))


def write_case_outputs(analysis: CaseAnalysis, ct: sitk.Image, case_id: str, output_dir: Path,
                       config: PredictConfig) -> dict[str, Path]:
    """Write seg, lesion tables, Grad-CAM NIfTIs and the report for one analysed case (atomic)."""
    from renal_nnunet.outputs.report import save_case_report

    files = {"seg": write_image(analysis.seg, output_dir / f"{case_id}_seg.nii.gz"),
             **write_viewer_label_files(output_dir, case_id)}
    lesions = []
    for record in analysis.lesions:
        if config.cam and record.lesion_id in analysis.cams:
            name = f"{case_id}_lesion{record.lesion_id}_gradcam.nii.gz"
            files[f"cam_{record.lesion_id}"] = write_image(paste_on_grid(analysis.cams[record.lesion_id], ct),
                                                           output_dir / name)
            record = replace(record, cam_file=name)
        lesions.append(record)
    case_info = {"case_id": case_id, "label_table": OUTPUT_LABELS, "messages": list(analysis.messages),
                 "kidney_found": analysis.kidney_found,
                 "kidney_volume_ml": {side: float(np.count_nonzero(sitk.GetArrayViewFromImage(analysis.seg) == value)
                                                 * np.prod(ct.GetSpacing()) / 1000.0)
                                      for side, value in KIDNEY_SIDE_LABELS.items()}}
    files["lesions_csv"], files["lesions_json"] = write_lesion_tables(
        lesions, output_dir / f"{case_id}_lesions.csv", output_dir / f"{case_id}_lesions.json", case_info)
    if config.report:
        files["report"] = save_case_report(output_dir / f"{case_id}_report.png", case_id, ct, analysis.seg, lesions,
                                           analysis.cams if config.cam else None, list(analysis.messages))
    return files


def _predict_one(image: sitk.Image | None, case: CaseInput, output_dir: Path, networks: CascadeNetworks,
                 manifest: ModelsManifest, config: PredictConfig, record: dict) -> CaseResult:
    """One case, its outputs written as one set (:mod:`renal_nnunet.pipeline.case_outputs`); the
    CT is read from ``case.path`` unless given in memory."""
    start = time.perf_counter()
    with case_output_set(output_dir, case.case_id, record["models_sha256"]) as staging:
        ct, series = (image, None) if image is not None else _read_case(case, config.series_uid)
        if config.check_intensities:
            check_ct_intensities(ct, case.path)
        analysis = analyse_ct(ct, networks, manifest, config)
        files = write_case_outputs(analysis, ct, case.case_id, staging, config)
        messages = [*(series.left_out if series else ()), *analysis.messages]
        _log_case_messages(case, messages, manifest)
        errors: list[str] = []
        if config.dicom_seg:
            dicom_files, notes, errors = _write_dicom_objects(analysis, series, staging, case.case_id, record)
            files.update(dicom_files)
            messages += notes
    status = "ok" if analysis.kidney_found else "no_kidney"
    return CaseResult(case.case_id, str(case.path), status, {kind: output_dir / path.name for kind, path in files.items()},
                      analysis.lesions, tuple(messages), seconds=time.perf_counter() - start,
                      stage_seconds=analysis.stage_seconds, output_errors=tuple(errors))


def _log_case_messages(case: CaseInput, messages: Sequence[str], manifest: ModelsManifest) -> None:
    """Log a case's messages naming its file (the cascade's stages do not know it): a user running
    a batch must see which CT each warning is about."""
    said_once = set(_model_warnings(manifest))  # logged once per run, naming the models folder
    for message in messages:
        if message not in said_once:
            log.log(logging.INFO if message == NO_MASSES else logging.WARNING, "%s: %s", case.path, message)


def _write_dicom_objects(analysis: CaseAnalysis, series: DicomSeries | None, output_dir: Path, case_id: str,
                         record: dict) -> tuple[dict[str, Path], list[str], list[str]]:
    """The DICOM SEG and SR of a series input: files written, notes, and why they were not written.

    A failure here never fails the case (its NIfTI results, tables and report are written already):
    it becomes a note and an output error.
    """
    from renal_nnunet.outputs.dicom import write_dicom_outputs

    if series is None:
        return {}, ["not a DICOM series input: no DICOM SEG or SR written"], []
    components = sitk.GetArrayFromImage(analysis.components) if analysis.components is not None else None
    try:
        files, notes = write_dicom_outputs(analysis.seg, components, analysis.lesions, series.files, output_dir,
                                           case_id, record)
        return files, notes, []
    except Exception as err:  # the export never aborts the run; the reason goes to the user
        unexpected = not isinstance(err, InputError)
        message = (f"no DICOM SEG or SR written for the series in {series.folder}: "
                   f"{f'{type(err).__name__}: ' if unexpected else ''}{err}")
        log.warning(message, exc_info=unexpected)
        return {}, [message], [message]


def _read_case(case: CaseInput, series_uid: str | None) -> tuple[sitk.Image, DicomSeries | None]:
    """The CT of a case, and its DICOM series (None for an image file)."""
    if not case.path.is_dir():
        return read_image(case.path), None
    series = find_dicom_series(case.path, series_uid)
    return read_dicom_series(series), series


def predict(
    input: str | os.PathLike | sitk.Image | Sequence[CaseInput],
    output_dir: str | os.PathLike,
    models_dir: str | os.PathLike,
    config: PredictConfig = PredictConfig(),
    runtime: Runtime | None = None,
) -> list[CaseResult]:
    """Predict kidneys and classified renal masses for one CT, a folder of CTs, or a DICOM series.

    Args:
        input: a NIfTI (or .mha/.nrrd) file, a folder of them, a DICOM series folder, a folder of
            DICOM series folders, an in-memory ``SimpleITK.Image`` (CT in HU), or the cases of a
            batch as :class:`~renal_nnunet.pipeline.inputs.CaseInput` (e.g. one cross-validation fold's).
        output_dir: where the per-case outputs go (created).
        models_dir: a models folder (see ``renal_nnunet.pipeline.models``).
        config: options.
        runtime: the runtime of ``config``'s backend, device and precision when the caller has
            resolved it already (``compare`` resolves it once for every method); default resolved here.

    Returns:
        One :class:`CaseResult` per case. A failing case is reported (status ``failed`` with the
        reason) and the batch goes on; a single-case input that fails raises instead. A case
        whose complete outputs from these models exist is ``skipped`` with ``continue_prediction``.
        DICOM SEG/SR that cannot be written never fail a case: the reason is in its
        ``output_errors`` and notes.

    Raises:
        InputError: bad models folder (missing fold checkpoints...), no inputs, an output folder
            that cannot be created, or a single input that cannot be read or is not a CT in HU.

    An existing output folder is reused: each case predicted replaces every earlier output of
    that case (see :mod:`renal_nnunet.pipeline.case_outputs`), other cases' files are left alone,
    and each run's summary is kept in ``predict_runs/`` beside the latest ``predict_summary.json``.
    """
    from tqdm import tqdm

    models_dir, output_dir = Path(models_dir), Path(output_dir)
    _make_output_folder(output_dir)
    runtime = runtime or Runtime.resolve(config.backend, config.device, config.precision)
    config = replace(config, backend=runtime.backend)
    manifest = load_models(models_dir, config.folds)
    for warning in _model_warnings(manifest):
        log.warning("%s: %s", models_dir, warning)
    networks = CascadeNetworks.load(models_dir, manifest, runtime)
    record = run_record(models_dir, manifest, config, networks.precisions)
    for stage, chosen in networks.precisions.items():
        log.info("%s stage runs %s: %s", stage, chosen["precision"], chosen["reason"])
    if isinstance(input, sitk.Image):
        case = CaseInput(config.case_id, Path(f"<in-memory image {config.case_id}>"))
        return [_predict_one(input, case, output_dir, networks, manifest, config, record)]
    if isinstance(input, (list, tuple)):
        cases, single = select_part(list(input), config.num_parts, config.part_id), False
    else:
        cases = select_part(discover_cases(input), config.num_parts, config.part_id)
        single = Path(input).is_file() or (len(cases) == 1 and cases[0].path == Path(input))
    results = []
    for case in tqdm(cases, desc="predict", unit="case", disable=len(cases) < 2):
        if config.continue_prediction and is_complete(output_dir, case.case_id, record["models_sha256"]):
            log.info("case %s: complete outputs of these models exist, skipped (--continue)", case.case_id)
            results.append(CaseResult(case.case_id, str(case.path), "skipped"))
            continue
        try:
            results.append(_predict_one(None, case, output_dir, networks, manifest, config, record))
        except Exception as err:  # a batch reports every failure and goes on
            if single:
                raise
            log.error("case %s failed: %s", case.case_id, err, exc_info=not isinstance(err, InputError))
            results.append(CaseResult(case.case_id, str(case.path), "failed", error=f"{type(err).__name__}: {err}"))
    summary = {"models_dir": str(models_dir), "folds": list(manifest.kidney.folds), "backend": config.backend,
               "precision": networks.precisions, "run": record, "cases": [_summary_row(r) for r in results]}
    write_json(summary, output_dir / SUMMARY_NAME)
    # two runs may start within one second in one process: a random suffix keeps each run's file
    write_json(summary, output_dir / RUNS_DIR /
               f"predict_{record['started_utc'].replace(':', '')}_{os.getpid()}_{uuid.uuid4().hex[:8]}.json")
    failed = [r.case_id for r in results if r.status == "failed"]
    incomplete = [r.case_id for r in results if r.output_errors]
    log.info("predicted %d case(s), %d failed%s%s", len(results), len(failed), f": {failed}" if failed else "",
             f"; outputs not written for {incomplete}" if incomplete else "")
    return results


SUMMARY_NAME = "predict_summary.json"
RUNS_DIR = "predict_runs"
"""Every run's summary is also kept here (the latest is ``predict_summary.json``)."""


def _make_output_folder(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(output_dir, "cannot be created as the output folder: a file of that name (or above it) is "
                                     "in the way; choose another -o") from None


def _summary_row(result: CaseResult) -> dict:
    return {"case_id": result.case_id, "source": result.source, "status": result.status,
            "lesions": len(result.lesions), "messages": list(result.messages), "error": result.error,
            "seconds": round(result.seconds, 2),
            "stage_seconds": {name: round(s, 2) for name, s in result.stage_seconds.items()},
            "files": {k: str(v) for k, v in result.files.items()}, "output_errors": list(result.output_errors)}

