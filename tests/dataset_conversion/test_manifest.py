"""The generic CSV-manifest converter (an institution's own data)."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.cli import main
from renal_nnunet.dataset_conversion import manifest
from renal_nnunet.dataset_conversion.manifest import parse_label_values, read_manifest
from renal_nnunet.io import InputError

from .conftest import TEST_GRID


@pytest.fixture
def manifest_csv(painted_kits23, tmp_path):
    """Patient P1 with two series, patient P2 with per-lesion classes in its label values, one bad row."""
    seg = sitk.ReadImage(str(painted_kits23 / "case_00061" / "segmentation.nii.gz"))
    relabelled = sitk.GetArrayFromImage(seg)
    relabelled = np.select([relabelled == 1, relabelled == 2, relabelled == 3], [5, 40, 60], 0).astype(np.uint8)
    own = sitk.GetImageFromArray(relabelled)
    own.CopyInformation(seg)
    sitk.WriteImage(own, str(tmp_path / "p2_labels.nii.gz"))
    rows = [
        ("P1", "ct 1", painted_kits23 / "case_00017" / "imaging.nii.gz", painted_kits23 / "case_00017" / "segmentation.nii.gz", "", "angiomyolipoma"),
        ("P1", "ct 2", painted_kits23 / "case_00569" / "imaging.nii.gz", painted_kits23 / "case_00569" / "segmentation.nii.gz", "1=kidney;2=tumor;3=cyst", "angiomyolipoma"),
        ("P2", "a", painted_kits23 / "case_00061" / "imaging.nii.gz", "p2_labels.nii.gz", "5=kidney;40=solid;60=cystic", ""),
        ("P3", "a", painted_kits23 / "case_00043" / "imaging.nii.gz", painted_kits23 / "case_00043" / "segmentation.nii.gz", "1=kidney;2=liver", ""),
    ]
    table = pd.DataFrame(rows, columns=["patient_id", "series_id", "image", "label", "label_values", "subtype"])
    path = tmp_path / "manifest.csv"
    table.to_csv(path, index=False)
    return path


def test_manifest_converts_groups_series_by_patient_and_takes_classes_from_labels(manifest_csv, tmp_path, capsys):
    raw = tmp_path / "raw"
    assert main(["convert", "manifest", str(manifest_csv), "-o", str(raw), "--grid", str(TEST_GRID)]) == 1
    report = json.loads((raw / "conversion_report.json").read_text())
    assert sorted(report["converted"]) == ["P1_ct_1", "P1_ct_2", "P2_a"]
    assert list(report["failed"]) == ["P3_a"]
    assert "manifest.csv" in report["failed"]["P3_a"] and "row 5" in report["failed"]["P3_a"]
    assert "'2=liver'" in capsys.readouterr().err
    table = pd.read_csv(raw / "RenalLesions" / "lesions.csv")
    p2 = table[table["case_id"] == "P2_a"]
    assert len(p2) > 0 and set(p2["class_evidence"]) == {"label"}
    assert set(p2["lesion_class"]) <= {"solid", "cystic"} and set(p2["source_label"]) <= {"solid", "cystic"}
    assert set(table.loc[(table["patient_id"] == "P1") & (table["source_label"] == "tumor"), "lesion_class"]) == {"AML"}
    splits = json.loads((raw / "Dataset501_RenalKidney32" / "splits_final.json").read_text())
    assert len(splits) == 2  # two patients: two folds
    assert any({"P1_ct_1", "P1_ct_2"} <= set(s["val"]) for s in splits)


def test_manifest_errors_name_the_csv(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("patient_id,image\nP1,x.nii.gz\n")
    with pytest.raises(InputError, match="missing columns"):
        read_manifest(path)
    path.write_text("patient_id,series_id,image,label\nP1,1,a,b\nP1,1,c,d\n")
    with pytest.raises(InputError, match="duplicate case names"):
        read_manifest(path)
    with pytest.raises(ValueError, match="VALUE=NAME"):
        parse_label_values("kidney=1")


def test_docstring_examples():
    assert doctest.testmod(manifest).failed == 0
