"""Comparison table and the one-stage label conversion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import ONE_STAGE_LABELS, OUTPUT_LABELS
from renal_nnunet.cli import main
from renal_nnunet.nnunet.environment import NnunetFolders
from renal_nnunet.pipeline.compare import (
    COMPARISON_COLUMNS,
    one_stage_to_output_labels,
    summary_value,
    train_and_compare,
)
from tests.pipeline.conftest import TINY_DEMO


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


def test_cascade_against_both_trained_baselines(tiny_demo):
    """`demo --compare`'s path: the one-stage grid model and stock 3d_fullres are planned, trained
    (briefly) and predicted on the same held-out CTs; every method's predictions keep the CT's
    geometry and the pipeline's labels, and the table has one row per method."""
    out_dir, _ = tiny_demo
    table = train_and_compare(NnunetFolders.under(out_dir / "nnunet"), TINY_DEMO, out_dir / "test_images",
                              out_dir / "test_references", out_dir,
                              ("nnUNetTrainerRenalPaper_CPUsmoke", "nnUNetTrainer_CPUsmoke"))
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
