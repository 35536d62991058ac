"""Nephrometry of every shared KiTS23 case (CT painted from its labels), as stored and reoriented,
and the ``renal-nnunet nephrometry`` command."""

from __future__ import annotations

import math

import cc3d
import numpy as np
import pandas as pd
import SimpleITK as sitk

from renal_nnunet.cli import main
from renal_nnunet.nephrometry.cases import find_inputs, write_nephrometry

RANGES = {"renal_r": (1, 3), "renal_e": (1, 3), "renal_n": (1, 3), "renal_l": (1, 3), "renal_score": (4, 12),
          "padua_location": (1, 2), "padua_exophytic": (1, 3), "padua_rim": (1, 2), "padua_sinus": (1, 2),
          "padua_collecting_system": (1, 2), "padua_size": (1, 3), "padua_score": (6, 14)}
ACCEPTANCE_COLUMNS = ("case_id", "lesion_id", "renal_r", "renal_e", "renal_n", "renal_a", "renal_l", "renal_score",
                      "padua_score", "c_index")


def _mass_count(segmentation: sitk.Image) -> int:
    """Connected components of tumour or cyst (labels 2 and 3), counted independently of the package."""
    return cc3d.connected_components(sitk.GetArrayViewFromImage(segmentation) >= 2, connectivity=26, return_N=True)[1]


def _reoriented_copy(dataset, out):
    """The KiTS case folders with CT and labels stored RAI (a permutation and flips of KiTS's IPL)."""
    for case in sorted(p for p in dataset.iterdir() if p.is_dir()):
        (out / case.name).mkdir(parents=True)
        for name in ("imaging.nii.gz", "segmentation.nii.gz"):
            sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(case / name)), "RAI"), str(out / case.name / name))
    return out


def test_every_shared_kits23_case_is_scored_in_range_and_alike_when_reoriented(painted_kits23, tmp_path):
    inputs = find_inputs(painted_kits23, None)
    assert len(inputs) == 32
    table, failures = write_nephrometry(inputs, tmp_path / "stored", "kits", figures=False)
    assert failures == []
    assert len(table) == sum(_mass_count(sitk.ReadImage(str(seg))) for _, _, seg in inputs)
    for column, (low, high) in RANGES.items():
        assert table[column].notna().all() and table[column].between(low, high).all(), column
    assert set(table.renal_a) <= {"a", "p", "x"}
    assert (table.renal_score == table[["renal_r", "renal_e", "renal_n", "renal_l"]].sum(axis=1)).all()
    assert np.isfinite(table.c_index).all() and (table.c_index >= 0).all()
    assert table.renal_category.isin(["low", "intermediate", "high"]).all()
    written = pd.read_csv(tmp_path / "stored" / "nephrometry.csv")
    assert pd.api.types.is_integer_dtype(written.renal_r) and pd.api.types.is_integer_dtype(written.padua_score)

    moved, moved_failures = write_nephrometry(find_inputs(_reoriented_copy(painted_kits23, tmp_path / "rai"), None),
                                              tmp_path / "moved", "kits", figures=False)
    assert moved_failures == []
    pd.testing.assert_frame_equal(moved, table, check_exact=False, atol=1e-3)


def test_nephrometry_command_writes_one_row_per_mass_and_the_pictures(painted_kits23, tmp_path, capsys):
    case = painted_kits23 / "case_00137"  # a tumour and two cysts on both kidneys
    out = tmp_path / "out"
    assert main(["nephrometry", "-i", str(case / "imaging.nii.gz"), "-s", str(case / "segmentation.nii.gz"),
                 "--seg-format", "kits", "-o", str(out)]) == 0
    assert "3 mass(es) of 1 case(s) scored" in capsys.readouterr().out
    table = pd.read_csv(out / "nephrometry.csv")
    assert set(ACCEPTANCE_COLUMNS) <= set(table.columns) and len(table) == 3
    assert (table.case_id == "case_00137").all() and list(table.lesion_id) == [1, 2, 3]
    assert table.lesion_class.str.contains("cyst").sum() == 2
    assert table.loc[table.lesion_class == "cyst", "nephrometry_note"].str.contains("defined for solid").all()
    assert (out / "case_00137_nephrometry.png").stat().st_size > 10_000
    assert not math.isnan(table.c_index.iloc[0])


def test_a_ct_file_without_a_label_map_is_refused(painted_kits23, tmp_path, capsys):
    assert main(["nephrometry", "-i", str(painted_kits23 / "case_00137" / "imaging.nii.gz"), "-o", str(tmp_path)]) == 2
    assert "needs a label-map file" in capsys.readouterr().err


def test_pipeline_labels_give_the_scores_of_the_kits_labels_they_were_made_from(painted_kits23):
    from renal_nnunet.anatomy.label_maps import kits_anatomy
    from renal_nnunet.nephrometry.cases import case_nephrometry

    case = painted_kits23 / "case_00515"  # 16 masses on both kidneys
    ct, seg = sitk.ReadImage(str(case / "imaging.nii.gz")), sitk.ReadImage(str(case / "segmentation.nii.gz"))
    anatomy = kits_anatomy(seg)
    pipeline = np.where(anatomy.mass, 5, anatomy.side).astype(np.uint8)
    pipeline_seg = sitk.GetImageFromArray(pipeline)
    pipeline_seg.CopyInformation(seg)
    kits_rows = pd.DataFrame(case_nephrometry(ct, seg, "kits").rows)
    pipeline_rows = pd.DataFrame(case_nephrometry(ct, pipeline_seg, "pipeline").rows)
    assert (pipeline_rows.lesion_class == "solid").all()
    pd.testing.assert_frame_equal(pipeline_rows.drop(columns=["lesion_class", "nephrometry_note"]),
                                  kits_rows.drop(columns=["lesion_class", "nephrometry_note"]))
