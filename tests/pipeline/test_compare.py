"""Comparison table and the one-stage label conversion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import ONE_STAGE_LABELS, OUTPUT_LABELS
from renal_nnunet.cli import main
from renal_nnunet.evaluation.report import summary_value
from renal_nnunet.io import read_image, read_series_or_image, write_image
from renal_nnunet.nnunet.environment import NnunetFolders
from renal_nnunet.inference.baselines import Baseline, to_output_labels
from renal_nnunet.io import InputError
from renal_nnunet.pipeline.compare import (
    COMPARISON_COLUMNS,
    ComparisonConfig,
    compare_methods,
    cross_validation_runs,
    train_and_compare,
)
from renal_nnunet.pipeline.inputs import CaseInput
from renal_nnunet.runtime.backends import Runtime
from tests.conftest import TINY_DEMO
from tests.pipeline.dicom_series import write_dicom_series


def test_summary_lookup_is_one_rule_for_demo_and_compare():
    """The one summary lookup (the demo's tables and the comparison's columns): the row's value,
    NaN when the summary has no such row, the first row when several match."""
    summary = pd.DataFrame({"section": ["segmentation", "detection", "detection"],
                            "group": ["kidney_right", "all", "all"],
                            "metric": ["dice", "recall", "recall"], "value": [0.9, 0.5, 0.7]})
    assert summary_value(summary, "segmentation", "kidney_right", "dice") == 0.9
    assert summary_value(summary, "detection", "all", "recall") == 0.5
    assert np.isnan(summary_value(summary, "segmentation", "kidney_left", "dice"))


def test_one_stage_labels_get_sides_from_patient_coordinates():
    shape = (12, 30, 40)
    z, y, x = np.indices(shape)
    ct = np.where((y - 15) ** 2 + (x - 20) ** 2 < 14 ** 2, 40, -1000).astype(np.int16)
    labels = np.zeros(shape, np.uint8)
    labels[4:8, 12:18, 6:12] = ONE_STAGE_LABELS["kidney"]   # array x 6-12
    labels[4:8, 12:18, 28:34] = ONE_STAGE_LABELS["kidney"]  # array x 28-34
    labels[5:7, 13:15, 7:9] = ONE_STAGE_LABELS["mass"]
    image = sitk.GetImageFromArray(ct)
    # Array x runs towards the patient's RIGHT here (direction -x), so array x 6-12 is the LEFT kidney.
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    out = sitk.GetArrayFromImage(to_output_labels(labels, image, ONE_STAGE_LABELS))
    assert (out[4:8, 12:18, 28:34] == OUTPUT_LABELS["kidney_right"]).all()
    assert set(np.unique(out[4:8, 12:18, 6:12])) == {OUTPUT_LABELS["kidney_left"], OUTPUT_LABELS["mass_too_small"]}
    assert (out[5:7, 13:15, 7:9] == OUTPUT_LABELS["mass_too_small"]).all()


def test_compare_command_writes_the_cascade_row(tiny_demo, tmp_path, capsys):
    out_dir, _ = tiny_demo
    code = main(["compare", "-m", str(out_dir / "models"), "-i", str(out_dir / "test_images"),
                 "-r", str(out_dir / "test_references"), "--ref-format", "pipeline", "-o", str(tmp_path)])
    assert code == 0 and "cascade" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "comparison.csv", index_col="method")
    assert list(table.index) == ["cascade"]
    assert set(COMPARISON_COLUMNS) | {"seconds_per_case", "cases", "failed_cases"} == set(table.columns)
    assert 0.0 <= table.loc["cascade", "kidney_dice_right"] <= 1.0 and table.loc["cascade", "seconds_per_case"] > 0
    for name in ("per_case.csv", "statistics.csv", "descriptive.csv", "detection.csv", "mass_type_tests.csv",
                 "comparison.md", "boxplots.png"):
        assert (tmp_path / name).is_file(), name


SMOKE_TRAINERS = ("nnUNetTrainerRenalPaper_CPUsmoke", "nnUNetTrainer_CPUsmoke")


@pytest.fixture(scope="module")
def baselines(tiny_demo) -> tuple[pd.DataFrame, Path, Path]:
    """`demo --compare`'s path run once: the comparison table and the two trained baseline folders."""
    out_dir, _ = tiny_demo
    folders = NnunetFolders.under(out_dir / "nnunet")
    table = train_and_compare(folders, TINY_DEMO, out_dir / "test_images", out_dir / "test_references", out_dir,
                              SMOKE_TRAINERS).table
    grid_model, = folders.results.glob(f"Dataset*_RenalOneStage{TINY_DEMO.grid}/{SMOKE_TRAINERS[0]}__*")
    fullres_model, = folders.results.glob(f"Dataset*_RenalOneStage/{SMOKE_TRAINERS[1]}__*")
    return table, grid_model, fullres_model


def test_cascade_against_both_trained_baselines(tiny_demo, baselines):
    """`demo --compare`'s path: the one-stage grid model and stock 3d_fullres are planned, trained
    (briefly) and predicted on the same held-out CTs; every method's predictions keep the CT's
    geometry and the pipeline's labels, and the table has one row per method."""
    out_dir, _ = tiny_demo
    table = baselines[0]
    assert list(table.index) == ["cascade", "one_stage_grid", "nnunet_3d_fullres"]
    assert (table["seconds_per_case"] > 0).all()
    dice = table[["kidney_dice_right", "kidney_dice_left"]].to_numpy()
    assert np.all((0.0 <= dice) & (dice <= 1.0))
    allowed = {0, OUTPUT_LABELS["kidney_right"], OUTPUT_LABELS["kidney_left"], OUTPUT_LABELS["mass_too_small"]}
    for ct_path in sorted((out_dir / "test_images").glob("*.nii.gz")):
        ct = sitk.ReadImage(str(ct_path))
        case = ct_path.name.removesuffix(".nii.gz")
        for method in ("one_stage_grid", "nnunet_3d_fullres"):
            seg = sitk.ReadImage(str(out_dir / "comparison" / method / f"{case}_seg.nii.gz"))
            assert seg.GetSize() == ct.GetSize() and np.allclose(seg.GetOrigin(), ct.GetOrigin())
            assert np.allclose(seg.GetDirection(), ct.GetDirection()) and np.allclose(seg.GetSpacing(), ct.GetSpacing())
            assert set(np.unique(sitk.GetArrayViewFromImage(seg))) <= allowed
    assert (out_dir / "comparison" / "comparison.csv").is_file()


def test_compare_takes_a_dicom_series_like_predict(tiny_demo, baselines, tmp_path):
    """Every method reads a DICOM series folder (as predict does), its outputs have the series'
    geometry, a single reference file is accepted, and the table is written without leftovers."""
    out_dir, _ = tiny_demo
    ct_path, = sorted((out_dir / "test_images").glob("*.nii.gz"))
    case = ct_path.name.removesuffix(".nii.gz")
    series = write_dicom_series(read_image(ct_path), tmp_path / "series" / case)
    series_ct = read_series_or_image(series)
    # The series may store its slices in another order: the reference goes onto the series' grid.
    reference = sitk.Resample(sitk.ReadImage(str(out_dir / "test_references" / ct_path.name)), series_ct,
                              sitk.Transform(), sitk.sitkNearestNeighbor)
    reference_path = write_image(reference, tmp_path / "refs" / f"{case}.nii.gz")
    table = compare_methods(series, reference_path, tmp_path / "out", out_dir / "models", Runtime.resolve(),
                            [Baseline.of("nnunet_3d_fullres", baselines[2])], baselines[1]).table
    assert list(table.index) == ["cascade", "one_stage_grid", "nnunet_3d_fullres"]
    assert table[["kidney_dice_right", "kidney_dice_left"]].notna().all().all()
    for method in table.index:
        seg = sitk.ReadImage(str(tmp_path / "out" / method / f"{case}_seg.nii.gz"))
        assert seg.GetSize() == series_ct.GetSize() and np.allclose(seg.GetOrigin(), series_ct.GetOrigin())
        assert np.allclose(seg.GetDirection(), series_ct.GetDirection())
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == [
        "boxplots.png", "comparison.csv", "comparison.json", "comparison.md", "descriptive.csv", "detection.csv",
        "mass_type_tests.csv", "per_case.csv", "statistics.csv"]


def _cases(*ids: str) -> list[CaseInput]:
    return [CaseInput(case_id, Path(f"{case_id}.nii.gz")) for case_id in ids]


def test_cross_validation_scores_each_case_once_by_the_fold_that_held_it_out(tmp_path):
    """Two folds: every case is in exactly one run, that of the fold whose validation set holds it;
    a CT in no validation set is not scored; a split that trains on its own validation case, or a
    case in two validation sets, is refused."""
    splits = [{"train": ["c", "d"], "val": ["a", "b"]}, {"train": ["a", "b"], "val": ["c", "d"]}]
    path = tmp_path / "splits_final.json"
    path.write_text(json.dumps(splits))
    runs = cross_validation_runs(_cases("a", "b", "c", "d", "extra"), path)
    assert [(run.fold, run.folds, [c.case_id for c in run.cases]) for run in runs] == [
        (0, (0,), ["a", "b"]), (1, (1,), ["c", "d"])]
    for run in runs:
        assert not {c.case_id for c in run.cases} & set(splits[run.fold]["train"])
    assert [run.fold for run in cross_validation_runs(_cases("a", "c"), path, folds=[1])] == [1]
    path.write_text(json.dumps([{"train": ["a", "c"], "val": ["a", "b"]}, splits[1]]))
    with pytest.raises(InputError, match="fold 0 trains on its validation case"):
        cross_validation_runs(_cases("a", "b"), path)
    path.write_text(json.dumps([{"train": [], "val": ["a"]}, {"train": [], "val": ["a"]}]))
    with pytest.raises(InputError, match="case a is a validation case of folds 0 and 1"):
        cross_validation_runs(_cases("a"), path)
    with pytest.raises(InputError, match="fold 3 does not exist"):
        cross_validation_runs(_cases("a"), path, folds=[3])


def test_compare_cross_validation_command(tiny_demo, baselines, tmp_path, capsys):
    """``compare --cross-validation --splits``: the demo's training CTs are each scored only by the
    methods' models of the fold that held them out (fold 0 here: the demo trains fold 0 only), the
    table says which fold scored each case, and the cases of untrained folds are left out."""
    out_dir, _ = tiny_demo
    dataset = out_dir / "synthetic" / "train" / "dataset"
    images = tmp_path / "images"
    images.mkdir()
    for case in sorted(p for p in dataset.iterdir() if p.is_dir()):
        (images / f"{case.name}.nii.gz").symlink_to(case / "imaging.nii.gz")
    splits_path = next((out_dir / "nnunet" / "nnUNet_raw").glob("Dataset*_RenalKidney*")) / "splits_final.json"
    splits = json.loads(splits_path.read_text())
    code = main(["compare", "--cross-validation", "--splits", str(splits_path), "-f", "0", "-m", str(out_dir / "models"),
                 "-i", str(images), "-r", str(dataset), "--ref-format", "kits", "-o", str(tmp_path / "cv"),
                 "--one-stage-model", str(baselines[1]), "--fullres-model", str(baselines[2])])
    assert code == 0, capsys.readouterr().err
    per_case = pd.read_csv(tmp_path / "cv" / "per_case.csv")
    assert sorted(per_case.method.unique()) == ["cascade", "nnunet_3d_fullres", "one_stage_grid"]
    for method, rows in per_case.groupby("method"):
        assert sorted(rows.case_id) == sorted(splits[0]["val"]), method
        assert (rows.fold == 0).all() and not set(rows.case_id) & set(splits[0]["train"])
    assert "Cross-validation" in (tmp_path / "cv" / "comparison.md").read_text()
    capsys.readouterr()
    assert main(["compare", "--cross-validation", "-m", "m", "-i", "i", "-r", "r", "-o", str(tmp_path / "o")]) == 2
    assert "--cross-validation and --splits SPLITS_JSON go together" in capsys.readouterr().err
