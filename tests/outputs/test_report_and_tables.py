"""Lesion tables and the report figure on a tiny hand-built case (no models needed)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.outputs.lesion_table import LESION_TABLE_COLUMNS, write_lesion_tables
from renal_nnunet.outputs.records import TOO_SMALL_CLASS, LesionRecord
from renal_nnunet.outputs.report import NOTE_WIDTH_CHARACTERS, note_lines, save_case_report
from tests.nephrometry.phantoms import hand_made_nephrometry


def _case():
    """A 3 mm x 2 mm x 2 mm CT with a right kidney (patient right = smaller LPS x) holding a cyst."""
    shape = (20, 40, 48)
    z, y, x = np.indices(shape)
    ct = np.full(shape, -1000, np.int16)
    ct[(y - 20) ** 2 + (x - 24) ** 2 < 18 ** 2] = 40
    seg = np.zeros(shape, np.uint8)
    kidney = ((z - 10) / 6) ** 2 + ((y - 22) / 6) ** 2 + ((x - 12) / 5) ** 2 < 1
    cyst = ((z - 10) / 2) ** 2 + ((y - 22) / 3) ** 2 + ((x - 12) / 3) ** 2 < 1
    seg[kidney] = OUTPUT_LABELS["kidney_right"]
    seg[cyst] = OUTPUT_LABELS["cystic"]
    ct[kidney] = 150
    ct[cyst] = 10
    images = []
    for array in (ct, seg):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((2.0, 2.0, 3.0))
        image.SetOrigin((-48.0, -40.0, 0.0))
        images.append(image)
    cam = sitk.GetImageFromArray(np.exp(-(((z - 10) / 3.0) ** 2 + ((y - 22) / 4.0) ** 2 + ((x - 12) / 4.0) ** 2)).astype(np.float32))
    cam.CopyInformation(images[0])
    centroid = images[0].TransformContinuousIndexToPhysicalPoint(np.argwhere(cyst).mean(axis=0)[::-1].tolist())
    record = LesionRecord(lesion_id=1, side="right", output_label=OUTPUT_LABELS["cystic"], volume_ml=float(cyst.sum() * 12 / 1000),
                          average_diameter_mm=12.0, mean_hu=10.0, max_hu=10.0, centroid_mm=tuple(centroid),
                          lesion_class="cystic", probabilities={"AML": 0.1, "cystic": 0.8, "solid": 0.1},
                          fold_agreement=1.0, mass_prob_mean=0.9, mass_prob_spread=0.02)
    return images[0], images[1], cam, record


def test_tables_have_documented_columns_and_null_for_unclassified(tmp_path):
    _, _, _, record = _case()
    small = LesionRecord(lesion_id=2, side="left", output_label=6, volume_ml=0.01, average_diameter_mm=3.0, mean_hu=30.0,
                         max_hu=45.0, centroid_mm=(10.0, 0.0, 5.0), lesion_class=TOO_SMALL_CLASS, mass_prob_mean=0.6,
                         mass_prob_spread=0.1)
    csv_path, json_path = write_lesion_tables([record, small], tmp_path / "c_lesions.csv", tmp_path / "c_lesions.json",
                                              {"case_id": "c"})
    table = pd.read_csv(csv_path)
    assert tuple(table.columns) == LESION_TABLE_COLUMNS
    for column in ("lesion_id", "side", "volume_ml", "average_diameter_mm", "mean_hu", "max_hu", "centroid_x_mm",
                   "lesion_class", "prob_AML", "prob_cystic", "prob_solid", "fold_agreement", "mass_prob_spread"):
        assert column in table.columns
    assert table["lesion_class"].tolist() == ["cystic", "too_small"]
    assert math.isnan(table.loc[1, "prob_cystic"]) and table.loc[0, "prob_cystic"] == 0.8
    assert table["renal_score"].isna().all() and table["nephrometry_note"].isna().all()  # not scored: blank
    rows = json.loads(json_path.read_text())["lesions"]
    assert rows[1]["prob_solid"] is None and rows[0]["side"] == "right"
    empty_csv, _ = write_lesion_tables([], tmp_path / "e.csv", tmp_path / "e.json", {})
    assert tuple(pd.read_csv(empty_csv).columns) == LESION_TABLE_COLUMNS


def test_tables_keep_full_precision(tmp_path):
    """Evaluation links lesions by centroid and draws its ROC from these tables: every float reads
    back exactly (a 4-significant-digit table wrote 1234.567 mm as 1235 and p = 0.99996 as 1)."""
    record = LesionRecord(lesion_id=1, side="left", output_label=OUTPUT_LABELS["solid"], volume_ml=123.456789,
                          average_diameter_mm=61.23456, mean_hu=35.123456, max_hu=211.5,
                          centroid_mm=(1234.567, -987.654321, 0.001), lesion_class="solid",
                          probabilities={"AML": 2.5e-05, "cystic": 1.5e-05, "solid": 0.99996},
                          fold_agreement=0.8, mass_prob_mean=0.987654, mass_prob_spread=0.0123456,
                          probability_calibrated=0.9999612, nephrometry=hand_made_nephrometry(True))
    csv_path, json_path = write_lesion_tables([record], tmp_path / "c_lesions.csv", tmp_path / "c_lesions.json", {})
    from_csv = pd.read_csv(csv_path).iloc[0].to_dict()
    from_json = json.loads(json_path.read_text())["lesions"][0]
    for column, value in record.to_row().items():
        if value != "":  # an empty text reads back from CSV as NaN
            assert from_csv[column] == value, column
        assert from_json[column] == value, column


def test_report_is_drawn_in_radiological_view_whatever_the_storage_order(tmp_path):
    ct, seg, cam, record = _case()
    first = save_case_report(tmp_path / "a.png", "case", ct, seg, [record], {1: cam}, ["a note"])
    # Same patient stored with permuted and flipped axes: the figure must not change.
    ct2, seg2, cam2 = (sitk.DICOMOrient(i, "SAL") for i in (ct, seg, cam))
    assert ct2.GetDirection() != ct.GetDirection()
    second = save_case_report(tmp_path / "b.png", "case", ct2, seg2, [record], {1: cam2}, ["a note"])
    png_a, png_b = (sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in (first, second))
    assert png_a.shape[0] > 400 and np.array_equal(png_a, png_b)
    no_masses = save_case_report(tmp_path / "n.png", "case", ct, seg, [], None)
    assert no_masses.stat().st_size > 10_000


def test_long_notes_wrap_and_get_room_above_the_panels(tmp_path):
    ct, seg, cam, record = _case()
    note = ("models trained on synthetic data are applied: the demo's models are a toy, do not use their results "
            "for any decision about a patient; kidney volume 900 ml is outside the adult range")
    lines = note_lines([note])
    assert len(lines) > 1 and max(map(len, lines)) <= NOTE_WIDTH_CHARACTERS and " ".join(lines) == note
    short = save_case_report(tmp_path / "short.png", "case", ct, seg, [record], None, ["a note"])
    long = save_case_report(tmp_path / "long.png", "case", ct, seg, [record], None, [note] * 4)
    heights = [sitk.ReadImage(str(p)).GetSize()[1] for p in (short, long)]
    assert heights[1] > heights[0]


def test_report_samples_a_box_grad_cam_on_its_panel_without_a_full_size_copy():
    """The lesion panel's Grad-CAM window equals the full-size map (pasted, reoriented to LPS) on
    that window, for a CT stored in another orientation and a CAM held on the lesion's box."""
    from renal_nnunet.anatomy.geometry import paste_on_grid
    from renal_nnunet.outputs.report import _cam_window

    ct = sitk.GetImageFromArray(np.zeros((30, 40, 50), np.int16))
    ct.SetSpacing((0.7, 0.8, 2.5))
    ct.SetDirection((0, 0, -1, 0, 1, 0, 1, 0, 0))
    cam = sitk.RegionOfInterest(sitk.GetImageFromArray(np.random.default_rng(0).random((30, 40, 50)).astype(np.float32)),
                                [12, 9, 7], [20, 15, 10])
    cam.SetDirection(ct.GetDirection())
    cam.SetSpacing(ct.GetSpacing())
    cam.SetOrigin(ct.TransformIndexToPhysicalPoint([20, 15, 10]))
    ct_lps = sitk.DICOMOrient(ct, "LPS")
    full = sitk.GetArrayFromImage(sitk.DICOMOrient(paste_on_grid(cam, ct), "LPS"))
    z = int(np.argwhere(full > 0)[:, 0].mean())
    rows, cols = slice(2, full.shape[1] - 3), slice(0, full.shape[2])
    window = _cam_window(cam, ct_lps, z, rows, cols)
    np.testing.assert_array_equal(window, full[z, rows, cols])
    assert (window > 0).any() and (window == 0).any()


def test_report_adds_a_nephrometry_row_per_measured_mass(tmp_path):
    """The planes each mass's scores were read from, with its line, below the lesion panels."""
    from dataclasses import replace

    from renal_nnunet.pipeline.nephrometry import predicted_mass_nephrometry

    ct, seg, _, record = _case()
    kidneys = sitk.Cast(seg == OUTPUT_LABELS["kidney_right"], sitk.sitkUInt8)
    components = sitk.Cast(seg == OUTPUT_LABELS["cystic"], sitk.sitkUInt8)
    scores = predicted_mass_nephrometry(ct, kidneys, components, {1: "cystic"}, views=True)
    assert scores[1].points is None and scores[1].view is not None and "measurements only" in scores[1].notes[-1]
    plain = save_case_report(tmp_path / "plain.png", "case", ct, seg, [record], None)
    with_scores = save_case_report(tmp_path / "scores.png", "case", ct, seg, [replace(record, nephrometry=scores[1])], None)
    heights = [sitk.ReadImage(str(p)).GetSize()[1] for p in (plain, with_scores)]
    assert heights[1] > heights[0] + 250
