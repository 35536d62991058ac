"""The cascade against baselines on the same cases, per case, with paired statistics.

Methods:

* ``cascade``: :func:`renal_nnunet.pipeline.predict.predict` with a models folder;
* ``one_stage_grid``: one U-Net for kidney + mass on the whole CT (its body box) resized to the grid (the paper's
  ablation), run through :func:`renal_nnunet.inference.grid_to_ct.predict_stage_labels`;
* any number of nnU-Net baselines (:mod:`renal_nnunet.inference.baselines`): a trained-model folder
  of any trainer, plans (ResEnc presets included) and configuration, ``3d_cascade_fullres`` with
  its ``3d_lowres`` stage, run by nnU-Net's own predictor with its defaults on the CT as stored.

Two modes. **Test set**: every method predicts every CT with the same folds (default the
cascade's). **Cross-validation** (``splits`` given, the converter's ``splits_final.json``): for fold
k, each method predicts fold k's validation cases with its fold-k models only (the cascade: fold-k
kidney, mass and classifier), so every case is scored once, out of fold, by the same patient-grouped
splits for every method.

Every method's predictions are scored by :func:`renal_nnunet.evaluation.evaluate.evaluate_folders`
against the same references. A case a method fails is scored there as an empty prediction (the
pooled ``comparison.csv`` counts it), marked ``failed`` in ``per_case.csv`` and left out of that
method's descriptive statistics and of its paired tests (:mod:`renal_nnunet.evaluation.statistics`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import ONE_STAGE_LABELS
from renal_nnunet.evaluation.report import summary_value
from renal_nnunet.inference.baselines import Baseline, to_output_labels
from renal_nnunet.io import InputError, atomic_path, read_series_or_image, write_image, write_json
from renal_nnunet.pipeline.inputs import CaseInput, discover_cases
from renal_nnunet.runtime.backends import Runtime

__all__ = ["ComparisonConfig", "ComparisonResult", "PredictionRun", "compare_methods", "cross_validation_runs",
           "per_case_metrics", "train_and_compare", "COMPARISON_COLUMNS", "PER_CASE_METRICS",
           "CASCADE"]

log = logging.getLogger(__name__)

CASCADE = "cascade"
ONE_STAGE_GRID = "one_stage_grid"

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

PER_CASE_METRICS: dict[str, tuple[str, str, str]] = {
    column: ("per_case" if section == "segmentation" else "kits", group, metric)
    for column, (section, group, metric) in COMPARISON_COLUMNS.items() if section != "detection"
}
"""``per_case.csv`` metric -> (evaluation table, structure or KiTS HEC, column). A structure empty
in both prediction and reference has no Dice (NaN), as the evaluation summary leaves it out."""

BOX_PLOT_METRICS: dict[str, str] = {
    "kidney_dice_right": "Kidney Dice, right", "kidney_dice_left": "Kidney Dice, left",
    "mass_dice_right": "Mass Dice, right", "mass_dice_left": "Mass Dice, left",
    "kits_dice_masses": "KiTS masses Dice", "kits_dice_tumor": "KiTS tumour Dice",
}
"""The regions of the box plots (the paper's Fig. 8: Dice per method and region)."""


@dataclass(frozen=True)
class ComparisonConfig:
    """Options of :func:`compare_methods`.

    Attributes:
        folds: test-set mode: folds every method ensembles (default the cascade's); cross-validation
            mode: the folds scored (default every fold of the splits).
        splits: the converter's ``splits_final.json``; given, the comparison is cross-validated.
        ref_format, ref_kidney: the references' labels (see
            :class:`~renal_nnunet.evaluation.evaluate.EvaluationConfig`).
        seed: seed of the bootstrap intervals.
    """

    folds: tuple | None = None
    splits: Path | None = None
    ref_format: str = "pipeline"
    ref_kidney: str = "paper"
    seed: int = 0


@dataclass(frozen=True)
class PredictionRun:
    """Which folds predict which cases: the whole test set, or one cross-validation fold's
    validation cases (``fold`` is then that fold)."""

    folds: tuple
    cases: tuple[CaseInput, ...]
    fold: int | None = None


@dataclass
class ComparisonResult:
    """What :func:`compare_methods` measured and where it wrote it.

    Attributes:
        table: one row per method (index ``method``): the pooled metrics of
            :data:`COMPARISON_COLUMNS`, ``seconds_per_case``, ``cases`` and ``failed_cases``.
        per_case: long table, one row per (method, case): ``method``, ``case_id``, ``fold``,
            ``status``, ``seconds`` and :data:`PER_CASE_METRICS`.
        statistics: paired tests of each baseline against the cascade
            (:func:`~renal_nnunet.evaluation.statistics.paired_tests`).
        files: written files by kind.
    """

    table: pd.DataFrame
    per_case: pd.DataFrame
    statistics: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)


def cross_validation_runs(cases: Sequence[CaseInput], splits_path: str | os.PathLike,
                          folds: Sequence[int] | None = None) -> list[PredictionRun]:
    """One run per fold of ``splits_final.json``: fold k's validation cases among ``cases``,
    predicted by fold k's models only.

    Raises:
        InputError: unreadable splits, a case in the validation set of two folds or in both the
            training and validation cases of one, a fold not in the splits, or no case left.
    """
    splits_path = Path(splits_path)
    try:
        splits = json.loads(splits_path.read_text())
        validation = [set(split["val"]) for split in splits]
        training = [set(split["train"]) for split in splits]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(splits_path, f"cannot be read as nnU-Net splits ([{{'train': [...], 'val': [...]}}, ...]): "
                                      f"{err}") from None
    chosen = list(range(len(splits))) if folds is None else [int(f) for f in folds]
    for fold in chosen:
        if not 0 <= fold < len(splits):
            raise InputError(splits_path, f"has {len(splits)} folds; fold {fold} does not exist")
    runs, scored = [], {}
    for fold in chosen:
        leaked = validation[fold] & training[fold]
        if leaked:
            raise InputError(splits_path, f"fold {fold} trains on its validation case(s) {', '.join(sorted(leaked))}")
        run_cases = tuple(c for c in cases if c.case_id in validation[fold])
        for case in run_cases:
            if case.case_id in scored:
                raise InputError(splits_path, f"case {case.case_id} is a validation case of folds {scored[case.case_id]} "
                                              f"and {fold}")
            scored[case.case_id] = fold
        missing = sorted(validation[fold] - {c.case_id for c in cases})
        if missing:
            log.warning("fold %d: %d validation case(s) have no CT among the inputs and are not scored: %s",
                        fold, len(missing), ", ".join(missing))
        runs.append(PredictionRun((fold,), run_cases, fold))
    unscored = sorted(c.case_id for c in cases if c.case_id not in scored)
    if unscored:
        log.warning("%d CT(s) are in no validation set of folds %s and are not scored: %s", len(unscored), chosen,
                    ", ".join(unscored))
    if not scored:
        raise InputError(splits_path, "no input CT is a validation case of the chosen folds (case ids must match the "
                                      "splits' names: use the kidney or one-stage dataset's splits_final.json)")
    return runs


@dataclass
class _MethodRecord:
    """Per case of one method: status, fold and seconds."""

    rows: dict[str, dict] = field(default_factory=dict)

    def add(self, case_id: str, fold: int | None, status: str, seconds: float) -> None:
        self.rows[case_id] = {"case_id": case_id, "fold": fold, "status": status, "seconds": seconds}


def _predict_cases(run: PredictionRun, out: Path, segment: Callable[[sitk.Image], sitk.Image], method: str,
                   record: _MethodRecord) -> None:
    """Each case of a run by one baseline; a failing case is logged and recorded, the rest go on."""
    for case in run.cases:
        started = time.perf_counter()
        try:
            ct = read_series_or_image(case.path)
            started = time.perf_counter()
            seg = segment(ct)
            seconds = time.perf_counter() - started
            write_image(seg, out / f"{case.case_id}_seg.nii.gz")
            record.add(case.case_id, run.fold, "ok", seconds)
        except Exception as err:  # one failed case is reported, the comparison goes on
            log.error("%s failed on case %s (%s): %s", method, case.case_id, case.path, err,
                      exc_info=not isinstance(err, InputError))
            record.add(case.case_id, run.fold, "failed", time.perf_counter() - started)


def _predict_cascade(run: PredictionRun, out: Path, cascade_models: Path, runtime: Runtime,
                     record: _MethodRecord) -> None:
    from renal_nnunet.pipeline.predict import PAPER_PROTOCOL_MIN_DIAMETER_MM, PredictConfig, predict

    config = PredictConfig(folds=run.folds, device=runtime.device, cam=False, report=False,
                           min_classify_diameter_mm=PAPER_PROTOCOL_MIN_DIAMETER_MM, backend=runtime.backend,
                           precision=runtime.precision)
    for result in predict(list(run.cases), out, cascade_models, config, runtime=runtime):
        record.add(result.case_id, run.fold, "failed" if result.status == "failed" else "ok", result.seconds)


def per_case_metrics(per_case: pd.DataFrame, kits: pd.DataFrame, per_lesion: pd.DataFrame) -> pd.DataFrame:
    """One row per case (index ``case_id``) of an evaluation's tables: :data:`PER_CASE_METRICS`
    and the case's lesion counts ``lesions_tp``, ``lesions_fn``, ``lesions_fp``."""
    tables = {"per_case": per_case.assign(key=per_case.get("structure")), "kits": kits.assign(key=kits.get("hec"))}
    columns = {}
    for metric, (table_name, key, column) in PER_CASE_METRICS.items():
        table = tables[table_name]
        if table.empty:
            continue
        rows = table[table.key == key].set_index("case_id")
        values = rows[column].astype(float)
        if "empty" in rows:
            values = values.where(rows["empty"] != "both")
        columns[metric] = values
    wide = pd.DataFrame(columns)
    if not per_lesion.empty:
        counts = pd.crosstab(per_lesion.case_id, per_lesion.status)
        for status in ("TP", "FN", "FP"):
            wide[f"lesions_{status.lower()}"] = counts.get(status, pd.Series(dtype=int)).reindex(wide.index).fillna(0)
    return wide


def compare_methods(
    images: str | os.PathLike,
    references: str | os.PathLike,
    output: str | os.PathLike,
    cascade_models: str | os.PathLike,
    runtime: Runtime = Runtime(),
    baselines: Sequence[Baseline] = (),
    one_stage_model: str | os.PathLike | None = None,
    config: ComparisonConfig = ComparisonConfig(),
) -> ComparisonResult:
    """Predict the CTs with each method, evaluate, and write the comparison with its statistics.

    Args:
        images: CTs (HU), as ``predict`` takes them: a NIfTI file, a folder of them, a DICOM
            series folder or a folder of series folders; named by case id.
        references: their reference label maps, named by case id (``<case>.nii.gz``), or one file.
        output: folder for each method's predictions (``<method>/``), evaluations
            (``evaluation_<method>/``) and the tables: ``comparison.csv``/``.json``, ``per_case.csv``,
            ``statistics.csv``, ``descriptive.csv``, ``detection.csv``, ``mass_type_tests.csv``,
            ``comparison.md`` and ``boxplots.png``.
        cascade_models: models folder of the cascade.
        runtime: what runs the cascade and the one-stage grid model (resolved once by the caller);
            stock baselines run nnU-Net's torch predictor on ``runtime.device``.
        baselines: nnU-Net baselines (:class:`~renal_nnunet.inference.baselines.Baseline`).
        one_stage_model: trained-model folder of the paper's one-stage grid ablation (or None).
        config: folds, cross-validation splits, reference format.

    Raises:
        InputError: a CT without a reference, a method named twice, unusable splits, a fold a
            method has not trained.
    """
    from renal_nnunet.evaluation.comparison_plots import plot_metric_boxes
    from renal_nnunet.evaluation.comparison_report import write_comparison_markdown
    from renal_nnunet.evaluation.evaluate import EvaluationConfig, evaluate_folders, label_files
    from renal_nnunet.evaluation.statistics import (
        describe_metrics,
        detection_table,
        mass_type_tests,
        paired_tests,
    )
    from renal_nnunet.inference.baselines import BaselinePredictor
    from renal_nnunet.inference.ensemble import FoldEnsemble
    from renal_nnunet.inference.grid_to_ct import predict_stage_labels
    from renal_nnunet.pipeline.models import load_models

    output = Path(output)
    names = [CASCADE, *([ONE_STAGE_GRID] if one_stage_model is not None else []), *(b.name for b in baselines)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"method name(s) used twice: {', '.join(duplicates)}; give each --baseline its own NAME")
    cases = discover_cases(images)
    unreferenced = sorted({case.case_id for case in cases} - set(label_files(references)))
    if unreferenced:
        raise InputError(references, f"holds no reference for the CT(s) {', '.join(unreferenced)}: every method would "
                                     "be scored without them; add their references or leave the CTs out")
    if config.splits is not None:
        runs = cross_validation_runs(cases, config.splits, config.folds)
    else:
        runs = [PredictionRun(tuple(config.folds or load_models(cascade_models).kidney.folds), tuple(cases))]
    records = {name: _MethodRecord() for name in names}
    for run in runs:
        if not run.cases:
            continue
        label = f"fold {run.fold}" if run.fold is not None else f"folds {list(run.folds)}"
        log.info("%s: %d case(s), methods %s", label, len(run.cases), ", ".join(names))
        _predict_cascade(run, output / CASCADE, Path(cascade_models), runtime, records[CASCADE])
        if one_stage_model is not None:
            ensemble = FoldEnsemble(one_stage_model, run.folds, runtime)
            _predict_cases(run, output / ONE_STAGE_GRID,
                           lambda ct: to_output_labels(sitk.GetArrayFromImage(predict_stage_labels(ct, ensemble)), ct,
                                                       ONE_STAGE_LABELS),
                           ONE_STAGE_GRID, records[ONE_STAGE_GRID])
        for baseline in baselines:
            predictor = BaselinePredictor(baseline, run.folds, runtime.device)
            _predict_cases(run, output / baseline.name, predictor.output_labels, baseline.name, records[baseline.name])

    scored = tuple(case_id for run in runs for case_id in (c.case_id for c in run.cases))
    evaluation_config = EvaluationConfig(ref_format=config.ref_format, ref_kidney=config.ref_kidney, figures=False,
                                         cases=scored)
    rows, per_case_tables, lesion_tables = [], [], []
    for method in names:
        (output / method).mkdir(parents=True, exist_ok=True)
        evaluation = evaluate_folders(output / method, references, output / f"evaluation_{method}", evaluation_config)
        record = pd.DataFrame(list(records[method].rows.values())).set_index("case_id")
        metrics = per_case_metrics(evaluation.per_case, evaluation.kits, evaluation.per_lesion)
        # A failed case was scored as an empty prediction (pooled table); per case it has no values.
        metrics = metrics.reindex(record.index)
        metrics.loc[record.status != "ok"] = np.nan
        per_case_tables.append(record.join(metrics).reset_index().assign(method=method))
        lesion_tables.append(evaluation.per_lesion.assign(method=method))
        row = {"method": method}
        for column, (section, group, metric) in COMPARISON_COLUMNS.items():
            row[column] = summary_value(evaluation.summary, section, group, metric)
        ok = record[record.status == "ok"]
        row.update(seconds_per_case=float(ok.seconds.mean()) if len(ok) else np.nan, cases=len(record),
                   failed_cases=int((record.status == "failed").sum()))
        rows.append(row)
    per_case = pd.concat(per_case_tables, ignore_index=True)
    per_case = per_case[["method", "case_id", "fold", "status", "seconds",
                         *[c for c in per_case.columns if c not in ("method", "case_id", "fold", "status", "seconds")]]]
    per_lesion = pd.concat(lesion_tables, ignore_index=True)
    metrics = [*PER_CASE_METRICS, "seconds"]
    table = pd.DataFrame(rows).set_index("method")
    statistics = paired_tests(per_case, reference=CASCADE, metrics=list(PER_CASE_METRICS), seed=config.seed)
    tables = {"comparison.csv": table, "per_case.csv": per_case, "statistics.csv": statistics,
              "descriptive.csv": describe_metrics(per_case, metrics, seed=config.seed),
              "detection.csv": detection_table(per_lesion), "mass_type_tests.csv": mass_type_tests(per_lesion)}
    output.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, frame in tables.items():
        with atomic_path(output / name) as tmp:
            frame.to_csv(tmp, index=name == "comparison.csv")
        files[name] = output / name
    files["boxplots.png"] = plot_metric_boxes(per_case, BOX_PLOT_METRICS, output / "boxplots.png")
    folds_info = [{"fold": run.fold, "folds": list(run.folds), "cases": [c.case_id for c in run.cases]} for run in runs]
    files["comparison.json"] = write_json({"mode": "cross_validation" if config.splits else "test_set",
                                           "splits": str(config.splits) if config.splits else None, "runs": folds_info,
                                           "runtime": {"backend": runtime.backend, "device": runtime.device,
                                                       "precision": runtime.precision},
                                           "baselines": {b.name: {"model": str(b.model.folder),
                                                                  "previous_stage": str(b.previous.folder) if b.previous else None}
                                                         for b in baselines},
                                           "rows": table.reset_index().to_dict(orient="records")},
                                          output / "comparison.json")
    files["comparison.md"] = write_comparison_markdown(tables, folds_info, output / "comparison.md",
                                                       boxplots=files["boxplots.png"].name)
    return ComparisonResult(table, per_case, statistics, files)


def train_and_compare(folders, config, images: Path, references: Path, out_dir: Path,
                      trainers: tuple[str, str]) -> ComparisonResult:
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
                           Runtime.resolve("auto", config.device),
                           [Baseline.of("nnunet_3d_fullres", model_dirs[config.first_id + 3])],
                           model_dirs[config.first_id + 2], ComparisonConfig(folds=tuple(config.folds)))
