"""Comparison table and the one-stage label conversion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import ONE_STAGE_LABELS, OUTPUT_LABELS
from renal_nnunet.cli import main
from renal_nnunet.io import read_image, read_series_or_image, write_image
from renal_nnunet.nnunet.environment import NnunetFolders
from renal_nnunet.pipeline.compare import (
    COMPARISON_COLUMNS,
    compare_methods,
    one_stage_to_output_labels,
    summary_value,
    train_and_compare,
)
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
    out = sitk.GetArrayFromImage(one_stage_to_output_labels(labels, image))
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
    assert set(COMPARISON_COLUMNS) | {"seconds_per_case"} == set(table.columns)
    assert 0.0 <= table.loc["cascade", "kidney_dice_right"] <= 1.0 and table.loc["cascade", "seconds_per_case"] > 0


SMOKE_TRAINERS = ("nnUNetTrainerRenalPaper_CPUsmoke", "nnUNetTrainer_CPUsmoke")


@pytest.fixture(scope="module")
def baselines(tiny_demo) -> tuple[pd.DataFrame, Path, Path]:
    """`demo --compare`'s path run once: the comparison table and the two trained baseline folders."""
    out_dir, _ = tiny_demo
    folders = NnunetFolders.under(out_dir / "nnunet")
    table = train_and_compare(folders, TINY_DEMO, out_dir / "test_images", out_dir / "test_references", out_dir,
                              SMOKE_TRAINERS)
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
    table = compare_methods(series, reference_path, tmp_path / "out", out_dir / "models", baselines[1], baselines[2])
    assert list(table.index) == ["cascade", "one_stage_grid", "nnunet_3d_fullres"]
    assert table[["kidney_dice_right", "kidney_dice_left"]].notna().all().all()
    for method in table.index:
        seg = sitk.ReadImage(str(tmp_path / "out" / method / f"{case}_seg.nii.gz"))
        assert seg.GetSize() == series_ct.GetSize() and np.allclose(seg.GetOrigin(), series_ct.GetOrigin())
        assert np.allclose(seg.GetDirection(), series_ct.GetDirection())
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file()) == ["comparison.csv", "comparison.json"]
