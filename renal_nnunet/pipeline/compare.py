"""Cascade vs one-stage baselines on the same test cases (the paper's Suppl. Table 3, plus stock
nnU-Net).

Methods:

* ``cascade``: :func:`renal_nnunet.pipeline.predict.predict` with a models folder;
* ``one_stage_grid``: one U-Net for kidney + mass on the whole CT resized to the grid (the paper's
  ablation), run through :func:`renal_nnunet.inference.grid_to_ct.predict_stage_labels`;
* ``nnunet_3d_fullres``: stock nnU-Net ``3d_fullres`` (``nnUNetTrainer``) trained on the native-
  resolution one-stage dataset, run by nnU-Net's own predictor on the CT as stored.

One-stage outputs (0 background, 1 kidney, 2 mass) are put into the pipeline's label convention for
evaluation: kidney sides from patient coordinates (body midline), masses label 6 (they carry no
class). Every method is scored by :func:`renal_nnunet.evaluation.evaluate.evaluate_folders`
against the same references; the table also gives the mean inference time per case.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.labels import ONE_STAGE_LABELS, OUTPUT_LABELS
from renal_nnunet.io import InputError, atomic_path, read_series_or_image, write_image, write_json
from renal_nnunet.pipeline.inputs import CaseInput, discover_cases

__all__ = ["one_stage_to_output_labels", "compare_methods", "train_and_compare", "summary_value", "COMPARISON_COLUMNS"]

log = logging.getLogger(__name__)

COMPARISON_COLUMNS: dict[str, tuple[str, str, str]] = {
    "kidney_dice_right": ("segmentation", "kidney_right", "dice"),
    "kidney_dice_left": ("segmentation", "kidney_left", "dice"),
    "mass_dice_right": ("segmentation", "mass_right", "dice"),
    "mass_dice_left": ("segmentation", "mass_left", "dice"),
    "kidney_hd_mm_right": ("segmentation", "kidney_right", "hd_mm"),
    "kidney_hd_mm_left": ("segmentation", "kidney_left", "hd_mm"),
    "mass_hd_mm": ("segmentation", "mass", "hd_mm"),
    "lesion_recall": ("detection", "all", "recall"),
    "lesion_precision": ("detection", "all", "precision"),
    "kits_dice_kidney_and_masses": ("kits", "kidney_and_masses", "dice"),
    "kits_dice_masses": ("kits", "masses", "dice"),
    "kits_dice_tumor": ("kits", "tumor", "dice"),
}
"""Comparison table column -> (section, group, metric) of the evaluation summary."""


def summary_value(summary: pd.DataFrame, section: str, group: str, metric: str) -> float:
    """One value of an evaluation summary table (columns section, group, metric, value); NaN if
    the summary has no such row (e.g. no lesion of that side), the first row if several match."""
    rows = summary[(summary.section == section) & (summary.group == group) & (summary.metric == metric)]
    return float(rows.value.iloc[0]) if len(rows) else np.nan


def one_stage_to_output_labels(labels: np.ndarray, ct: sitk.Image) -> sitk.Image:
    """One-stage labels (0/1 kidney/2 mass, numpy (z, y, x) on ``ct``'s grid) in the pipeline's
    convention: kidney voxels 1 right / 2 left by patient coordinates, masses 6 (unclassified)."""
    from renal_nnunet.anatomy.sides import body_midline_mm, kidney_side_labels

    kidney = image_like((labels > 0).astype(np.uint8), ct)
    out = sitk.GetArrayFromImage(kidney_side_labels(kidney, body_midline_mm(ct))) if labels.any() else labels * 0
    out[labels == ONE_STAGE_LABELS["mass"]] = OUTPUT_LABELS["mass_too_small"]
    return image_like(out.astype(np.uint8), ct)


def _predict_grid_one_stage(cases: list[CaseInput], out: Path, ensemble) -> float:
    from renal_nnunet.inference.grid_to_ct import predict_stage_labels

    seconds = 0.0
    for case in cases:
        ct = read_series_or_image(case.path)
        started = time.perf_counter()
        # labels channel by channel: no full-size (C, z, y, x) float stack or int64 argmax of the whole CT;
        # a copy, not a view: a view of the temporary image read freed memory once the image was collected
        labels = sitk.GetArrayFromImage(predict_stage_labels(ct, ensemble))
        seg = one_stage_to_output_labels(labels, ct)
        seconds += time.perf_counter() - started
        write_image(seg, out / f"{case.case_id}_seg.nii.gz")
    return seconds / len(cases)


def _nnunet_input(ct: sitk.Image) -> tuple[np.ndarray, dict]:
    """The ``(data, properties)`` nnU-Net's ``SimpleITKIO.read_images`` makes of one 3D image file,
    made from an image in memory (its reader takes files only; a DICOM series is a folder)."""
    spacing = ct.GetSpacing()
    properties = {"sitk_stuff": {"spacing": spacing, "origin": ct.GetOrigin(), "direction": ct.GetDirection()},
                  "spacing": [abs(s) for s in spacing[::-1]]}
    return sitk.GetArrayFromImage(ct)[None].astype(np.float32), properties


def _predict_stock_fullres(cases: list[CaseInput], out: Path, predictor) -> float:
    """nnU-Net's predictor with its default settings (mirroring, Gaussian sliding window)."""
    seconds = 0.0
    for case in cases:
        ct = read_series_or_image(case.path)
        started = time.perf_counter()
        labels = np.asarray(predictor.predict_single_npy_array(*_nnunet_input(ct)))
        seg = one_stage_to_output_labels(labels, ct)
        seconds += time.perf_counter() - started
        write_image(seg, out / f"{case.case_id}_seg.nii.gz")
    return seconds / len(cases)


def compare_methods(
    images: str | os.PathLike,
    references: str | os.PathLike,
    output: str | os.PathLike,
    cascade_models: str | os.PathLike,
    one_stage_model: str | os.PathLike | None = None,
    fullres_model: str | os.PathLike | None = None,
    folds: Sequence[int] | None = None,
    device: str = "cpu",
    ref_format: str = "pipeline",
    ref_kidney: str = "paper",
    backend: str = "auto",
    precision: str = "auto",
) -> pd.DataFrame:
    """Predict the test CTs with each method, evaluate, and write ``comparison.csv``/``.json``.

    Args:
        images: test CTs (HU), as ``predict`` takes them: a NIfTI file, a folder of them, a DICOM
            series folder or a folder of series folders.
        references: their reference label maps, named by case id (``<case>.nii.gz``), or one file.
        output: folder for each method's predictions, evaluations and the table.
        cascade_models: models folder of the cascade.
        one_stage_model, fullres_model: nnU-Net trained-model folders of the baselines (skipped if None).
        folds: folds to ensemble (default: the cascade's folds; the baselines use the same).
        device: torch device.
        ref_format: the references' labels: ``pipeline`` (0-6, as ``predict`` writes) or ``kits``
            (0 background, 1 kidney, 2 tumour, 3 cyst).
        ref_kidney: a KiTS reference's kidney: ``paper`` (sinus filled) or ``kits`` (see
            :class:`~renal_nnunet.evaluation.evaluate.EvaluationConfig`).
        backend: forward passes of the cascade and the one-stage grid model (``auto``, ``torch``,
            ``openvino``); stock 3d_fullres always runs nnU-Net's own torch predictor.
        precision: OpenVINO's precision of the cascade and the one-stage grid model (``auto``,
            ``fp32``, ``bf16``, ``int8``; see :meth:`~renal_nnunet.runtime.backends.Runtime.for_stage`).

    Returns:
        One row per method: the metrics of :data:`COMPARISON_COLUMNS` and ``seconds_per_case``.
    """
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders
    from renal_nnunet.inference.ensemble import FoldEnsemble
    from renal_nnunet.nnunet.layout import new_predictor
    from renal_nnunet.runtime.backends import Runtime
    from renal_nnunet.pipeline.models import load_models
    from renal_nnunet.pipeline.predict import PAPER_PROTOCOL_MIN_DIAMETER_MM, PredictConfig, predict

    from renal_nnunet.evaluation.evaluate import label_files

    output = Path(output)
    cases = discover_cases(images)
    unreferenced = sorted({case.case_id for case in cases} - set(label_files(references)))
    if unreferenced:
        raise InputError(references, f"holds no reference for the CT(s) {', '.join(unreferenced)}: every method would "
                                     "be scored without them; add their references or leave the CTs out")
    folds = tuple(folds) if folds is not None else load_models(cascade_models).kidney.folds
    seconds = {}
    started = time.perf_counter()
    results = predict(images, output / "cascade", cascade_models,
                      PredictConfig(folds=folds, device=device, cam=False, report=False,
                                    min_classify_diameter_mm=PAPER_PROTOCOL_MIN_DIAMETER_MM, backend=backend,
                                    precision=precision))
    seconds["cascade"] = (time.perf_counter() - started) / max(len(results), 1)
    if one_stage_model is not None:
        ensemble = FoldEnsemble(one_stage_model, folds, Runtime.resolve(backend, device, precision))
        seconds["one_stage_grid"] = _predict_grid_one_stage(cases, output / "one_stage_grid", ensemble)
    if fullres_model is not None:
        seconds["nnunet_3d_fullres"] = _predict_stock_fullres(cases, output / "nnunet_3d_fullres",
                                                              new_predictor(fullres_model, folds, device))
    rows = []
    for method in seconds:
        evaluation = evaluate_folders(output / method, references, output / f"evaluation_{method}",
                                      EvaluationConfig(ref_format=ref_format, ref_kidney=ref_kidney, figures=False))
        summary = evaluation.summary
        row = {"method": method}
        for column, (section, group, metric) in COMPARISON_COLUMNS.items():
            row[column] = summary_value(summary, section, group, metric)
        row["seconds_per_case"] = seconds[method]
        rows.append(row)
    table = pd.DataFrame(rows).set_index("method")
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(output / "comparison.csv") as tmp:
        table.to_csv(tmp)
    write_json({"folds": list(folds), "rows": table.reset_index().to_dict(orient="records")},
               output / "comparison.json")
    return table


def train_and_compare(folders, config, images: Path, references: Path, out_dir: Path,
                      trainers: tuple[str, str]) -> pd.DataFrame:
    """Demo helper: train both baselines, then compare them with the demo's cascade.

    Args:
        folders: the demo's :class:`~renal_nnunet.nnunet.environment.NnunetFolders` (the converter
            wrote the one-stage datasets there).
        config: the :class:`renal_nnunet.pipeline.demo.DemoConfig`.
        trainers: named trainer variants of the one-stage grid U-Net and of the stock ``3d_fullres``
            baseline (the demo uses the cascade's length: its trainer and nnU-Net's stock twin).
    """
    from renal_nnunet.nnunet.commands import plan
    from renal_nnunet.nnunet.environment import nnunet_environment
    from renal_nnunet.pipeline.training import train_stage

    model_dirs = {}
    with nnunet_environment(folders):
        for dataset, trainer in zip((config.first_id + 2, config.first_id + 3), trainers):
            plan(dataset, verify=False)
            for fold in config.folds:
                model_dirs[dataset] = train_stage(dataset, fold, trainer, config.device)
    return compare_methods(images, references, out_dir / "comparison", out_dir / "models",
                           model_dirs[config.first_id + 2], model_dirs[config.first_id + 3], config.folds,
                           config.device)
