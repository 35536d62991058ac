"""Evaluate a folder of predicted label maps against a folder of references.

Predictions use the pipeline's output labels (:data:`renal_nnunet.anatomy.labels.OUTPUT_LABELS`); references
use the same labels (``ref_format="pipeline"``) or KiTS labels (``ref_format="kits"``). A KiTS reference's
kidney is scored in the paper's convention by default (``ref_kidney="paper"``: the renal sinus filled
and the masses included, as the converter makes the training labels, sides from the midline between
the kidneys since no CT is read); ``ref_kidney="kits"`` scores KiTS's own kidney (sinus fat
excluded). The KiTS HEC metrics always use KiTS's raw labels, as the challenge defines them. Files are
matched by case id: the file name's case id (:func:`renal_nnunet.io.case_id_from_path`: extension
and nnU-Net's ``_0000`` channel tag removed) without a ``_seg`` suffix (``case_00017_seg.nii.gz``,
``case_00017.nii.gz``, ``case_00017_0000.nii.gz``), or a KiTS case folder
(``case_00017/segmentation.nii.gz`` or ``aggregated_MAJ_seg.nii.gz``); either side may also be one
label-map file. A reference without a prediction is scored as an empty prediction (every structure
missed, Dice 0, every lesion a false negative) and listed first in the summary, so a missing output
can never raise a mean; an extra prediction, an unreadable file, a geometry mismatch or a label
outside the convention is recorded as an error for that case and the other cases are still
evaluated. A reference that holds KiTS labels but is read as pipeline labels is refused with a hint.

Lesion classes come from the mass labels of the maps, or from lesion tables when given (the
pipeline's ``<case>_lesions.csv``, found beside the predictions automatically, or B's
``lesions.csv`` for references): table rows are linked to connected components by their centroid
(``centroid_x_mm``, ``centroid_y_mm``, ``centroid_z_mm``; nearest component centroid within
:data:`CENTROID_LINK_TOLERANCE_MM`), and the tables' ``prob_<class>`` columns feed the ROC curves.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk
from tqdm import tqdm

from renal_nnunet.anatomy.geometry import image_like, physical_points_mm
from renal_nnunet.anatomy.label_maps import (
    KIDNEY_CONVENTIONS,
    Anatomy,
    image_centre_x_mm,
    kits_anatomy,
    pipeline_anatomy,
)
from renal_nnunet.anatomy.labels import KIDNEY_SIDE_LABELS, KIDNEY_SIDE_NAMES, KITS_LABELS, LESION_CLASSES, OUTPUT_LABELS
from renal_nnunet.anatomy.lesion_classes import UNKNOWN_CLASS
from renal_nnunet.anatomy.lesions import lesion_properties
from renal_nnunet.anatomy.sinus import SINUS_CLOSING_RADIUS_MM, fill_margin_voxels
from renal_nnunet.evaluation.agreement import AGREEMENT_ITEMS
from renal_nnunet.evaluation.crop import union_box
from renal_nnunet.evaluation.detection import DetectionConfig, label_lesions, match_lesions
from renal_nnunet.evaluation.kits import kits_hec_metrics, pipeline_to_kits_labels
from renal_nnunet.evaluation.report import MISSING_PREDICTION
from renal_nnunet.evaluation.surface import segmentation_metrics
from renal_nnunet.io import InputError, case_id_from_path, check_same_geometry, has_image_suffix, read_label_map
from renal_nnunet.settings import PAPER

__all__ = ["EvaluationConfig", "EvaluationResult", "STRUCTURES", "CENTROID_LINK_TOLERANCE_MM", "find_cases",
           "label_files", "evaluate_case", "evaluate_folders", "crop_to_labels"]

log = logging.getLogger(__name__)

STRUCTURES: tuple[str, ...] = ("kidney_right", "kidney_left", "mass_right", "mass_left", "mass")
"""Structures of ``per_case.csv``. A kidney is everything inside it (its masses included)."""

CENTROID_LINK_TOLERANCE_MM = 3.0
"""Largest distance (mm) between a lesion-table centroid and a component centroid to link them."""

CLASS_OF_LABEL = {OUTPUT_LABELS[c]: c for c in LESION_CLASSES}
_KITS_CASE_FILES = ("segmentation.nii.gz", "aggregated_MAJ_seg.nii.gz")


@dataclass(frozen=True)
class EvaluationConfig:
    """Options of :func:`evaluate_folders`.

    Attributes:
        ref_format: ``pipeline`` or ``kits`` labels in the reference folder.
        ref_kidney: a KiTS reference's kidney: ``paper`` (sinus filled, masses included: what the
            networks are trained on) or ``kits`` (KiTS's kidney, sinus fat excluded).
        size_threshold_mm: average-diameter threshold of the classification strata, mm.
        detection: connectivity and size filter of lesion detection.
        lesions_pred, lesions_ref: a lesion table (CSV with ``case_id``) or a folder of
            ``<case>_lesions.csv``; ``lesions_pred`` defaults to the prediction folder's tables.
        nephrometry_ref: the references' nephrometry (``renal-nnunet nephrometry``'s
            ``nephrometry.csv``, or its output folder): with it, ``per_lesion.csv`` pairs the
            predicted masses' scores (from the predicted lesion tables) with the reference masses'
            and ``nephrometry_agreement.csv`` holds their agreement
            (:mod:`renal_nnunet.evaluation.agreement`).
        workers: processes evaluating cases in parallel.
        figures: write the PNG figures.
        cases: score only these case ids' references (default every reference; ``compare`` in
            cross-validation scores each fold's validation cases only).
    """

    ref_format: str = "pipeline"
    ref_kidney: str = "paper"
    size_threshold_mm: float = PAPER.size_threshold_mm
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    lesions_pred: Path | None = None
    lesions_ref: Path | None = None
    nephrometry_ref: Path | None = None
    workers: int = 1
    figures: bool = True
    cases: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.ref_format not in ("pipeline", "kits"):
            raise ValueError(f"ref_format must be 'pipeline' or 'kits', got {self.ref_format!r}")
        if self.ref_kidney not in KIDNEY_CONVENTIONS:
            raise ValueError(f"ref_kidney must be one of {list(KIDNEY_CONVENTIONS)}, got {self.ref_kidney!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if not self.size_threshold_mm > 0:
            raise ValueError(f"size_threshold_mm must be positive, got {self.size_threshold_mm}")


@dataclass
class EvaluationResult:
    """Tables of one evaluation; ``files`` maps a name to each file written."""

    per_case: pd.DataFrame
    per_lesion: pd.DataFrame
    kits: pd.DataFrame
    summary: pd.DataFrame
    errors: pd.DataFrame
    files: dict[str, Path]


def _case_id(path: Path) -> str | None:
    """Case id of a label file (:func:`renal_nnunet.io.case_id_from_path`, then ``_seg`` dropped); None for non-images."""
    if not has_image_suffix(path):
        return None
    stem = case_id_from_path(path)
    return stem[: -len("_seg")] if stem.endswith("_seg") else stem


def label_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The label maps of a folder (or one label-map file) by case id, as evaluation pairs them.

    Raises:
        InputError: neither a folder nor a label-map file.
    """
    folder = Path(folder)
    if folder.is_file() and (case_id := _case_id(folder)) is not None:
        return {case_id: folder}
    if not folder.is_dir():
        raise InputError(folder, "is neither a folder nor a label-map file")
    files, pipeline_outputs = {}, {}
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            found = [path / name for name in _KITS_CASE_FILES if (path / name).is_file()]
            if found:
                files[path.name] = found[0]
        elif (case_id := _case_id(path)) is not None and not path.name.startswith("."):
            files[case_id] = path
            if path.name.startswith(f"{case_id}_seg."):
                pipeline_outputs[case_id] = path
    # A predict output folder also holds Grad-CAM maps and other NIfTIs: there, only <case>_seg files are labels.
    return pipeline_outputs or files


def find_cases(pred_dir: Path, ref_dir: Path,
               cases: Sequence[str] | None = None) -> tuple[dict[str, tuple[Path | None, Path]], list[dict]]:
    """Pair prediction and reference files by case id (of ``cases`` only, if given).

    Returns:
        ``{case_id: (pred_path, ref_path)}`` for every reference (``pred_path`` None where the
        prediction is missing: it is scored as empty) and one error row per unpaired case, missing
        predictions first.
    """
    preds, refs = label_files(pred_dir), label_files(ref_dir)
    if cases is not None:
        refs = {c: refs[c] for c in cases if c in refs}
        preds = {c: preds[c] for c in cases if c in preds}
    missing = sorted(set(refs) - set(preds))
    if missing:
        log.warning("%d reference(s) have no prediction and are scored as empty predictions: %s",
                    len(missing), ", ".join(missing))
    errors = [{"case_id": c, "file": str(refs[c]), "problem": MISSING_PREDICTION} for c in missing]
    errors += [{"case_id": c, "file": str(preds[c]), "problem": "no reference for this prediction (extra case)"}
               for c in sorted(set(preds) - set(refs))]
    return {c: (preds.get(c), refs[c]) for c in sorted(refs)}, errors


def _lesion_tables(source: Path | None, case_ids: list[str]) -> dict[str, pd.DataFrame]:
    """Lesion tables per case from one CSV with ``case_id`` or a folder of ``<case>_lesions.csv``."""
    if source is None:
        return {}
    source = Path(source)
    if source.is_dir():
        tables = {c: pd.read_csv(source / f"{c}_lesions.csv") for c in case_ids if (source / f"{c}_lesions.csv").is_file()}
    elif source.is_file():
        table = pd.read_csv(source)
        if "case_id" not in table.columns:
            raise InputError(source, "lesion table has no case_id column")
        tables = {str(c): rows for c, rows in table.groupby("case_id")}
    else:
        raise InputError(source, "lesion table does not exist")
    for case_id, table in tables.items():
        missing = {"centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "lesion_class"} - set(table.columns)
        if missing:
            raise InputError(source, f"lesion table for {case_id} lacks columns {sorted(missing)}")
    return tables


def _link_table(components: pd.DataFrame, table: pd.DataFrame | None) -> dict[int, pd.Series]:
    """Lesion-table row per component id, linked by nearest centroid (see module docstring)."""
    if table is None or table.empty or components.empty:
        return {}
    centroids = components[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(float)
    linked = {}
    for _, row in table.iterrows():
        distances = np.linalg.norm(centroids - row[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy(float), axis=1)
        best = int(np.argmin(distances))
        if distances[best] <= CENTROID_LINK_TOLERANCE_MM:
            linked[int(components.index[best])] = row
    return linked


def _majority(values: np.ndarray) -> int:
    return int(np.bincount(values).argmax()) if values.size else 0


def _component_table(components: sitk.Image, anatomy: Anatomy) -> pd.DataFrame:
    """Side, class (majority over its voxels) and LPS centroid (mm) of each component, by id."""
    array = sitk.GetArrayViewFromImage(components)
    rows = []
    for lesion in lesion_properties(components):
        box = lesion.bbox.slices
        inside = array[box] == lesion.lesion_id
        rows.append({
            "id": lesion.lesion_id,
            "side": KIDNEY_SIDE_NAMES.get(_majority(anatomy.side[box][inside]), "unknown"),
            "class": CLASS_OF_LABEL.get(_majority(anatomy.mass_class[box][inside]), UNKNOWN_CLASS),
            **dict(zip(("centroid_x_mm", "centroid_y_mm", "centroid_z_mm"), lesion.centroid_mm)),
        })
    return pd.DataFrame(rows, columns=["id", "side", "class", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]).set_index("id")


def _lesion_rows(
    case_id: str, pred_anatomy: Anatomy, ref_anatomy: Anatomy, like: sitk.Image, config: EvaluationConfig,
    pred_table: pd.DataFrame | None, ref_table: pd.DataFrame | None, ref_nephrometry: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Detection rows with side, reference and predicted class, class probabilities and the
    nephrometry items of both (``pred_<item>``, ``ref_<item>``; NaN where not scored).

    A TP or FN takes the side of its reference lesion, an FP that of its predicted lesion. A TP's
    predicted class is that of the largest predicted lesion overlapping it.
    """
    images = []
    for anatomy in (pred_anatomy, ref_anatomy):
        images.append(label_lesions(image_like(anatomy.mass.astype(np.uint8), like), config.detection))
    rows = match_lesions(*images)
    pred_info, ref_info = _component_table(images[0], pred_anatomy), _component_table(images[1], ref_anatomy)
    pred_linked, ref_linked = _link_table(pred_info, pred_table), _link_table(ref_info, ref_table)
    ref_scored = _link_table(ref_info, ref_nephrometry)
    sides, ref_classes, pred_classes, probabilities, scores = [], [], [], [], []
    for _, row in rows.iterrows():
        # Lesion ids run by decreasing volume, so the first matched id is the largest lesion.
        main_pred = int(row.pred_ids.split(";")[0]) if row.pred_ids else 0
        sides.append(ref_info.side[row.ref_id] if row.ref_id else pred_info.side[main_pred])
        ref_row = ref_linked.get(int(row.ref_id))
        ref_classes.append(str(ref_row.lesion_class) if ref_row is not None else
                           (ref_info["class"][row.ref_id] if row.ref_id else ""))
        pred_row = pred_linked.get(main_pred)
        pred_class = str(pred_row.lesion_class) if pred_row is not None else (pred_info["class"][main_pred] if main_pred else "")
        pred_classes.append(pred_class if pred_class in LESION_CLASSES or not main_pred else UNKNOWN_CLASS)
        probabilities.append([float(pred_row.get(f"prob_{c}", math.nan)) if pred_row is not None else math.nan
                              for c in LESION_CLASSES])
        scores.append(_items(pred_row, "pred") | _items(ref_scored.get(int(row.ref_id)), "ref"))
    rows.insert(0, "case_id", case_id)
    rows.insert(1, "side", sides)
    rows.insert(3, "ref_class", ref_classes)
    rows.insert(4, "pred_class", pred_classes)
    for i, c in enumerate(LESION_CLASSES):
        rows[f"prob_{c}"] = [p[i] for p in probabilities]
    columns = [f"{who}_{item}" for who in ("pred", "ref") for item in AGREEMENT_ITEMS]
    return pd.concat([rows, pd.DataFrame(scores, columns=columns, index=rows.index)], axis=1)


def _items(table_row: pd.Series | None, who: str) -> dict:
    """A lesion-table row's nephrometry items as ``<who>_<item>`` (NaN where absent)."""
    return {f"{who}_{item}": (table_row.get(item, math.nan) if table_row is not None else math.nan)
            for item in AGREEMENT_ITEMS}


def crop_to_labels(pred: sitk.Image, ref: sitk.Image, margin_voxels: int = 1) -> tuple[sitk.Image, sitk.Image]:
    """Crop both label maps to the bounding box of their labelled voxels plus ``margin_voxels``
    (:func:`renal_nnunet.evaluation.crop.union_box`).

    Every metric is unchanged (surfaces, nearest-surface distances, components, volumes and
    physical positions all survive), and whole-abdomen volumes shrink to the kidneys' region.
    """
    box = union_box((sitk.GetArrayViewFromImage(pred), sitk.GetArrayViewFromImage(ref)), margin_voxels=margin_voxels)
    if box is None:
        return pred, ref
    index, size = [s.start for s in reversed(box)], [s.stop - s.start for s in reversed(box)]
    return sitk.RegionOfInterest(pred, size, index), sitk.RegionOfInterest(ref, size, index)


def evaluate_case(
    case_id: str, pred_path: Path, ref_path: Path, config: EvaluationConfig = EvaluationConfig(),
    pred_table: pd.DataFrame | None = None, ref_table: pd.DataFrame | None = None,
    ref_nephrometry: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Segmentation, detection and KiTS metrics of one case (``pred_path`` None: an empty prediction).

    Returns:
        ``{"per_case": rows per structure, "per_lesion": detection rows, "kits": rows per HEC}``.

    Raises:
        InputError: unreadable file, label outside the convention, KiTS labels read as pipeline
            labels, or a geometry mismatch.
    """
    ref_labels = KITS_LABELS if config.ref_format == "kits" else OUTPUT_LABELS
    ref = read_label_map(ref_path, allowed_labels=set(ref_labels.values()))
    if config.ref_format == "pipeline":
        _refuse_kits_labels(ref, ref_path)
    if pred_path is None:
        pred = image_like(np.zeros(sitk.GetArrayViewFromImage(ref).shape, np.uint8), ref)
    else:
        pred = read_label_map(pred_path, allowed_labels=set(OUTPUT_LABELS.values()))
        check_same_geometry(ref, pred, ref_path, pred_path)
    spacing_zyx = tuple(reversed(ref.GetSpacing()))
    centre_x_mm = image_centre_x_mm(ref)
    paper_kits = config.ref_format == "kits" and config.ref_kidney == "paper"
    # The sinus fill looks this far past each kidney; with this margin the crop fills as the whole image does.
    margin = int(fill_margin_voxels(spacing_zyx, SINUS_CLOSING_RADIUS_MM).max()) if paper_kits else 1
    pred, ref = crop_to_labels(pred, ref, margin)
    pred_anatomy = pipeline_anatomy(pred, config.detection.connectivity, centre_x_mm)
    ref_anatomy = (kits_anatomy(ref, centre_x_mm=centre_x_mm, kidney=config.ref_kidney) if config.ref_format == "kits"
                   else pipeline_anatomy(ref, config.detection.connectivity, centre_x_mm))

    structures = []
    for name in STRUCTURES:
        masks = []
        side_label = KIDNEY_SIDE_LABELS.get(name.partition("_")[2])  # kidney_right -> 1; mass -> None
        for anatomy in (pred_anatomy, ref_anatomy):
            if name.startswith("kidney_"):
                masks.append(anatomy.side == side_label)
            elif name == "mass":
                masks.append(anatomy.mass)
            else:
                masks.append(anatomy.mass & (anatomy.side == side_label))
        structures.append({"case_id": case_id, "structure": name, **segmentation_metrics(*masks, spacing_zyx)})

    pred_kits = pipeline_to_kits_labels(sitk.GetArrayViewFromImage(pred))
    ref_array = sitk.GetArrayViewFromImage(ref)
    ref_kits = ref_array if config.ref_format == "kits" else pipeline_to_kits_labels(ref_array)
    kits_rows = [{"case_id": case_id, "hec": hec, **values}
                 for hec, values in kits_hec_metrics(pred_kits, ref_kits, spacing_zyx).items()]
    lesions = _lesion_rows(case_id, pred_anatomy, ref_anatomy, ref, config, pred_table, ref_table, ref_nephrometry)
    return {"per_case": pd.DataFrame(structures), "per_lesion": lesions, "kits": pd.DataFrame(kits_rows)}


KITS_LIKE_KIDNEY_ML = 15.0
KITS_LIKE_APART_MM = 60.0
"""A reference read as pipeline labels (1 = the right kidney only) whose label 1 holds two
components of at least :data:`KITS_LIKE_KIDNEY_ML` with centroids this far apart along the
patient's left-right axis is taken for KiTS labels (1 = both kidneys)."""


def _refuse_kits_labels(ref: sitk.Image, ref_path: Path) -> None:
    """Raise ``InputError`` if a reference read as pipeline labels holds KiTS labels: its label 1
    (the right kidney in the pipeline's convention, any kidney in KiTS's) is two kidneys."""
    import cc3d

    ones = sitk.GetArrayViewFromImage(ref) == OUTPUT_LABELS["kidney_right"]
    if not ones.any():
        return
    components = cc3d.connected_components(ones, connectivity=26)
    statistics = cc3d.statistics(components)
    voxel_ml = float(np.prod(ref.GetSpacing())) / 1000.0
    large = [k for k in range(1, len(statistics["voxel_counts"]))
             if statistics["voxel_counts"][k] * voxel_ml >= KITS_LIKE_KIDNEY_ML]
    x_mm = physical_points_mm(ref, statistics["centroids"][large])[:, 0] if large else np.zeros(0)
    if len(x_mm) >= 2 and np.ptp(x_mm) > KITS_LIKE_APART_MM:
        raise InputError(ref_path, "label 1 lies on both sides of the body, so this looks like a KiTS reference "
                                   "(0 background, 1 kidney, 2 tumour, 3 cyst) read as pipeline labels (1 right "
                                   "kidney, 2 left kidney, 3 AML ...): pass --ref-format kits")


def _evaluate_or_error(args: tuple) -> tuple[str, dict | None, str | None]:
    case_id, pred_path, ref_path = args[:3]
    try:
        return case_id, evaluate_case(*args), None
    except (InputError, ValueError, RuntimeError, OSError) as err:
        return case_id, None, str(err)


def evaluate_folders(
    pred_dir: str | os.PathLike, ref_dir: str | os.PathLike, out_dir: str | os.PathLike,
    config: EvaluationConfig = EvaluationConfig(),
) -> EvaluationResult:
    """Evaluate every prediction against its reference and write the report into ``out_dir``.

    Writes ``per_case.csv``, ``per_lesion.csv``, ``kits.csv``, ``errors.csv``, ``summary.csv``,
    ``summary.md`` and PNG figures (see :mod:`renal_nnunet.evaluation.report`). Failing cases are
    listed in ``errors.csv`` and the summary; the others are evaluated. With ``workers > 1`` cases
    run in spawned processes, so a script calling this needs the ``if __name__ == "__main__":`` guard.

    Raises:
        InputError: a folder or lesion table is missing or malformed.
    """
    from renal_nnunet.evaluation.report import write_report

    pred_dir, ref_dir, out_dir = Path(pred_dir), Path(ref_dir), Path(out_dir)
    pairs, errors = find_cases(pred_dir, ref_dir, config.cases)
    case_ids = list(pairs)
    pred_tables = _lesion_tables(config.lesions_pred if config.lesions_pred is not None else pred_dir, case_ids)
    ref_tables = _lesion_tables(config.lesions_ref, case_ids)
    nephrometry = config.nephrometry_ref
    if nephrometry is not None and Path(nephrometry).is_dir():
        nephrometry = Path(nephrometry) / "nephrometry.csv"
    ref_scores = _lesion_tables(nephrometry, case_ids)
    jobs = [(c, *pairs[c], config, pred_tables.get(c), ref_tables.get(c), ref_scores.get(c)) for c in case_ids]
    results: dict[str, dict] = {}
    progress = tqdm(total=len(jobs), desc="evaluate", unit="case", disable=None)
    if config.workers > 1 and len(jobs) > 1:
        # spawn, not fork: forking a process whose torch thread pools are running can hang the children.
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            outcomes = pool.map(_evaluate_or_error, jobs)
            for outcome in outcomes:
                _collect(outcome, pairs, results, errors)
                progress.update()
    else:
        for job in jobs:
            _collect(_evaluate_or_error(job), pairs, results, errors)
            progress.update()
    progress.close()
    tables = {name: pd.concat([r[name] for r in results.values()], ignore_index=True) if results else pd.DataFrame()
              for name in ("per_case", "per_lesion", "kits")}
    errors_table = pd.DataFrame(errors, columns=["case_id", "file", "problem"])
    summary, files = write_report(tables["per_case"], tables["per_lesion"], tables["kits"], errors_table, out_dir, config)
    return EvaluationResult(tables["per_case"], tables["per_lesion"], tables["kits"], summary, errors_table, files)


def _collect(outcome: tuple, pairs: dict, results: dict, errors: list) -> None:
    case_id, result, problem = outcome
    if result is None:
        log.warning("case %s not evaluated: %s", case_id, problem)
        pred_path, ref_path = pairs[case_id]
        errors.append({"case_id": case_id, "file": str(pred_path or ref_path), "problem": problem})
    else:
        results[case_id] = result
