"""End-to-end conversion of painted real KiTS23 cases (and KiTS21 layout, CLI, re-runs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.geometry import GridSidecar
from renal_nnunet.anatomy.grid import body_box
from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.anatomy.sides import paper_kidney_sides
from renal_nnunet.cli import main
from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
from renal_nnunet.dataset_conversion.kits import find_kits_cases
from renal_nnunet.io import read_image
from renal_nnunet.synthetic import write_painted_kits, write_synthetic_kits

from .conftest import SUBSET, TEST_GRID

SUFFIXES = {"kidney": f"_RenalKidney{TEST_GRID}", "mass": f"_RenalMass{TEST_GRID}",
            "one_stage_grid": f"_RenalOneStage{TEST_GRID}", "one_stage_native": "_RenalOneStage"}


def _dataset(raw: Path, key: str) -> Path:
    (folder,) = [p for p in raw.glob("Dataset*") if p.name.endswith(SUFFIXES[key])]
    return folder


def test_four_datasets_with_paper_names_and_consistent_case_lists(converted_subset):
    raw, report, _ = converted_subset
    assert report.ok and sorted(report.converted) == sorted(SUBSET)
    names = sorted(p.name for p in raw.glob("Dataset*"))
    assert names == ["Dataset501_RenalKidney32", "Dataset502_RenalMass32", "Dataset503_RenalOneStage32",
                     "Dataset504_RenalOneStage"]
    for key in ("kidney", "one_stage_grid", "one_stage_native"):
        folder = _dataset(raw, key)
        assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in sorted(SUBSET)]
        assert json.loads((folder / "dataset.json").read_text())["numTraining"] == len(SUBSET)
    mass_cases = sorted(p.name.removesuffix(".nii.gz") for p in (_dataset(raw, "mass") / "labelsTr").iterdir())
    expected = sorted(f"{c}_{s}" for c in SUBSET for s in ("left", "right") if (c, s) != ("case_00194", "left"))
    assert mass_cases == expected  # case_00194 has one (right) kidney


def test_grid_images_keep_origin_lps_axes_and_sidecars_hold_the_source_geometry(converted_subset, subset_src):
    raw, _, _ = converted_subset
    source = read_image(subset_src / "case_00017" / "imaging.nii.gz")
    assert source.GetDirection() != (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # KiTS stores (I, P, L)
    for key in ("kidney", "one_stage_grid"):
        folder = _dataset(raw, key)
        image = sitk.ReadImage(str(folder / "imagesTr" / "case_00017_0000.nii.gz"))
        assert image.GetSize() == (TEST_GRID,) * 3 and image.GetSpacing() == (1.0, 1.0, 1.0)
        # the source's axes, reordered to run along patient L, P, S (renal_nnunet.anatomy.geometry.canonical_axes)
        np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-6)
        np.testing.assert_allclose(image.GetOrigin(), source.GetOrigin(), atol=1e-4)
        assert sitk.GetArrayViewFromImage(image).min() >= -120 and sitk.GetArrayViewFromImage(image).max() <= 180
        sidecar = GridSidecar.from_json(folder / "sidecars" / "case_00017.json")
        assert sidecar.source.size == source.GetSize() and sidecar.box == body_box(source)
        np.testing.assert_allclose(sidecar.source.spacing_mm, source.GetSpacing())


def test_native_one_stage_dataset_is_the_ct_in_hu_with_kidney_and_mass(converted_subset, subset_src):
    raw, _, _ = converted_subset
    folder = _dataset(raw, "one_stage_native")
    source_ct = sitk.ReadImage(str(subset_src / "case_00582" / "imaging.nii.gz"))
    source_seg = sitk.GetArrayFromImage(sitk.ReadImage(str(subset_src / "case_00582" / "segmentation.nii.gz")))
    ct = sitk.ReadImage(str(folder / "imagesTr" / "case_00582_0000.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "case_00582.nii.gz")))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(source_ct))
    assert ct.GetDirection() == source_ct.GetDirection()
    np.testing.assert_array_equal(labels == 2, np.isin(source_seg, (2, 3)))
    assert np.all(labels[source_seg == 1] == 1) and (labels == 1).sum() > (source_seg == 1).sum()  # + sinus


def test_every_mass_voxel_lies_inside_its_kidney_crop(converted_subset, subset_src):
    raw, _, config = converted_subset
    mass_folder = _dataset(raw, "mass")
    for case_id in SUBSET:
        ct = read_image(subset_src / case_id / "imaging.nii.gz")
        kits = sitk.GetArrayFromImage(sitk.ReadImage(str(subset_src / case_id / "segmentation.nii.gz")))
        sides = sitk.GetArrayFromImage(paper_kidney_sides(ct, kits, config.sinus_radius_mm))
        for side_value, side in ((1, "right"), (2, "left")):
            masses = np.argwhere(np.isin(kits, (2, 3)) & (sides == side_value))
            if not len(masses):
                continue
            sidecar = GridSidecar.from_json(mass_folder / "sidecars" / f"{case_id}_{side}.json")
            start, size = np.asarray(sidecar.box.start)[::-1], np.asarray(sidecar.box.size)[::-1]
            assert np.all((masses >= start) & (masses < start + size)), f"{case_id} {side}: mass outside the crop"
            crop_labels = sitk.GetArrayFromImage(sitk.ReadImage(str(mass_folder / "labelsTr" / f"{case_id}_{side}.nii.gz")))
            assert set(np.unique(crop_labels)) <= {0, 1}


def test_lesion_table_matches_an_independent_component_count_and_the_class_rules(converted_subset, subset_src):
    raw, _, _ = converted_subset
    table = pd.read_csv(raw / "RenalLesions" / "lesions.csv")
    for column in ("case_id", "side", "lesion_id", "source_label", "lesion_class", "class_evidence", "volume_ml",
                   "average_diameter_mm", "centroid_x_mm", "bbox_start", "bbox_size", "fold", "patient_id"):
        assert column in table.columns
    assert set(table["side"]) <= {"left", "right"}
    assert set(table["lesion_class"]) <= set(LESION_CLASSES) | {"unknown"}
    for case_id in SUBSET:
        kits = sitk.GetArrayFromImage(sitk.ReadImage(str(subset_src / case_id / "segmentation.nii.gz")))
        _, count = ndimage.label(np.isin(kits, (2, 3)), structure=np.ones((3, 3, 3)))
        rows = table[table["case_id"] == case_id]
        assert len(rows) == count, f"{case_id}: {len(rows)} rows, {count} components"
        assert sorted(rows["lesion_id"]) == list(range(1, count + 1))
    classes = table.groupby("case_id")["lesion_class"].agg(set)
    tumours = table[table["source_label"] == "tumor"].groupby("case_id")["lesion_class"].agg(set)
    assert tumours["case_00017"] == {"AML"}  # angiomyolipoma patient
    assert tumours["case_00521"] == {"cystic"} and tumours["case_00106"] == {"cystic"}  # cyst, multilocular
    assert tumours["case_00582"] == {"solid"}
    assert set(table.loc[table["source_label"] == "cyst", "lesion_class"]) == {"cystic"}
    assert classes.map(len).sum() >= len(SUBSET)
    for row in table.itertuples():
        crop = sitk.ReadImage(str(raw / "RenalLesions" / "crops" / f"{row.case_id}_{row.lesion_id}.nii.gz"))
        assert crop.GetSize() == (TEST_GRID,) * 3


def test_splits_group_by_patient_and_are_identical_across_datasets(converted_subset):
    raw, _, _ = converted_subset
    table = pd.read_csv(raw / "RenalLesions" / "lesions.csv")
    patients_per_fold = None
    for key in SUFFIXES:
        splits = json.loads((_dataset(raw, key) / "splits_final.json").read_text())
        assert len(splits) == 5
        folds = [sorted({name.removesuffix("_left").removesuffix("_right") for name in s["val"]}) for s in splits]
        for split in splits:
            assert not set(split["train"]) & set(split["val"])
        patients_per_fold = patients_per_fold or folds
        assert folds == patients_per_fold
    for row in table.itertuples():
        assert row.case_id in patients_per_fold[row.fold]


def test_rerun_skips_identical_cases_and_the_cli_reports_success(converted_subset, subset_src, capsys):
    raw, _, _ = converted_subset
    image = _dataset(raw, "kidney") / "imagesTr" / "case_00017_0000.nii.gz"
    before = image.stat().st_mtime_ns
    assert main(["convert", "kits", str(subset_src), "-o", str(raw), "--grid", str(TEST_GRID), "--workers", "2"]) == 0
    assert "skipped (unchanged) 6" in capsys.readouterr().out
    assert image.stat().st_mtime_ns == before


def test_kits21_and_kits23_layouts_give_the_same_datasets(kits23_dataset, tmp_path):
    case = ["case_00043"]
    src23 = write_painted_kits(kits23_dataset, tmp_path / "k23", "kits23", case, inplane_downsample=8)
    src21 = write_painted_kits(kits23_dataset, tmp_path / "k21", "kits21", case, inplane_downsample=8)
    assert (src21 / "case_00043" / "aggregated_MAJ_seg.nii.gz").is_file()
    config = ConversionConfig(grid=TEST_GRID)
    report23, report21 = convert_kits(src23, tmp_path / "raw23", config), convert_kits(src21, tmp_path / "raw21", config)
    assert report23.ok and report21.ok
    assert any("no splits_final.json" in note for note in report21.notes)  # one patient: no cross-validation
    rows23 = pd.read_csv(tmp_path / "raw23" / "RenalLesions" / "lesions.csv")
    rows21 = pd.read_csv(tmp_path / "raw21" / "RenalLesions" / "lesions.csv")
    pd.testing.assert_frame_equal(rows21, rows23)
    for path in (tmp_path / "raw23").rglob("labelsTr/*.nii.gz"):
        other = tmp_path / "raw21" / path.relative_to(tmp_path / "raw23")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(other))),
                                      sitk.GetArrayFromImage(sitk.ReadImage(str(path))))


def test_kits21_subtype_spellings_are_normalised(tmp_path):
    src = write_synthetic_kits(tmp_path / "syn", 3, layout="kits21", seed=3, shape_zyx=(40, 64, 64),
                               spacing_zyx_mm=(6.0, 6.0, 6.0))
    spelled = {r["case_id"]: r["tumor_histologic_subtype"] for r in json.loads((src / "kits.json").read_text())}
    assert spelled["case_00002"] == "papillary"  # KiTS21 spelling in the source
    assert {c.case_id: c.subtype for c in find_kits_cases(src)}["case_00002"] == "papillary_rcc"
    report = convert_kits(src, tmp_path / "raw", ConversionConfig(grid=16, workers=2))
    assert report.ok
    table = pd.read_csv(tmp_path / "raw" / "RenalLesions" / "lesions.csv")
    assert set(table.loc[table["case_id"] == "case_00002", "subtype"]) <= {"papillary_rcc"}
    assert set(table.loc[(table["case_id"] == "case_00001") & (table["source_label"] == "tumor"), "lesion_class"]) <= {"AML"}


def test_phantom_lesions_get_their_true_side(tmp_path):
    src = write_synthetic_kits(tmp_path / "syn", 2, layout="kits23", seed=5, masses_per_kidney=(2, 3))
    report = convert_kits(src, tmp_path / "raw", ConversionConfig(grid=16))
    assert report.ok
    table = pd.read_csv(tmp_path / "raw" / "RenalLesions" / "lesions.csv")
    checked = 0
    for record in json.loads((src / "kits23.json").read_text()):
        rows = table[table["case_id"] == record["case_id"]]
        centroids = rows[["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]].to_numpy()
        for lesion in record["synthetic_lesions"]:
            if lesion["diameter_mm"] < 15:
                continue
            nearest = rows.iloc[int(np.argmin(np.linalg.norm(centroids - lesion["centre_mm"], axis=1)))]
            assert nearest["side"] == lesion["side"], (record["case_id"], lesion)
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize("options", [{"grid": 1}, {"workers": 0}, {"first_id": 999}, {"margin_mm": -1.0}])
def test_invalid_options_are_rejected_before_any_case(options):
    with pytest.raises(ValueError):
        ConversionConfig(**options)
