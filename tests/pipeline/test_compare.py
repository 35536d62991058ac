"""Comparison table and the one-stage label conversion."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from renal_nnunet.labels import ONE_STAGE_LABELS, OUTPUT_LABELS
from renal_nnunet.pipeline.compare import COMPARISON_COLUMNS, compare_methods, one_stage_to_output_labels


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


def test_comparison_table_for_the_cascade(tiny_demo, tmp_path):
    out_dir, _ = tiny_demo
    table = compare_methods(out_dir / "test_images", out_dir / "test_references", tmp_path, out_dir / "models")
    assert list(table.index) == ["cascade"]
    assert set(COMPARISON_COLUMNS) | {"seconds_per_case"} == set(table.columns)
    assert 0.0 <= table.loc["cascade", "kidney_dice_right"] <= 1.0 and table.loc["cascade", "seconds_per_case"] > 0
    assert (tmp_path / "comparison.csv").is_file()
