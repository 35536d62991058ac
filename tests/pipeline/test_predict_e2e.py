"""End-to-end prediction with the tiny demo's trained models (real nnU-Net and classifier)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import LESION_CLASSES, OUTPUT_LABELS
from renal_nnunet.classification.calibration import apply_temperature
from renal_nnunet.cli import main as cli_main
from renal_nnunet.io import InputError, dicom_series_files, read_image, read_series_or_image, write_image
from renal_nnunet.outputs.dicom import read_dicom_seg_labels
from renal_nnunet.outputs.lesion_table import LESION_TABLE_COLUMNS
from renal_nnunet.pipeline.models import load_models
from renal_nnunet.pipeline.predict import PredictConfig, predict
from renal_nnunet.pipeline.provenance import model_files
from tests.pipeline.dicom_series import write_dicom_series

REQUIRED_COLUMNS = ("side", "volume_ml", "average_diameter_mm", "lesion_class", "renal_r", "renal_e", "renal_n",
                    "renal_a", "renal_l", "renal_score", "padua_score", "c_index")


@pytest.fixture(scope="module")
def held_out_ct(tiny_demo) -> sitk.Image:
    out_dir, _ = tiny_demo
    return read_image(sorted((out_dir / "test_images").glob("*.nii.gz"))[0])


@pytest.fixture(scope="module")
def three_ways(tiny_demo, held_out_ct, tmp_path_factory):
    """The same held-out CT predicted as stored (LPS), as a permuted+flipped NIfTI, and as DICOM."""
    out_dir, _ = tiny_demo
    work = tmp_path_factory.mktemp("three_ways")
    odd = sitk.DICOMOrient(held_out_ct, "SAL")  # axes permuted and flipped
    sitk.WriteImage(odd, str(work / "odd.nii.gz"))
    write_dicom_series(held_out_ct, work / "dicom" / "series1")
    models = out_dir / "models"
    results = {
        "lps": predict(held_out_ct, work / "out_lps", models, PredictConfig(case_id="lps"))[0],
        "odd": predict(work / "odd.nii.gz", work / "out_odd", models)[0],
        "dicom": predict(work / "dicom" / "series1", work / "out_dicom", models, PredictConfig(dicom_seg=True))[0],
    }
    inputs = {"lps": held_out_ct, "odd": odd, "dicom": sitk.ReadImage(
        sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(work / "dicom" / "series1")))}
    return results, inputs


def test_demo_prints_tables_and_leaves_a_usable_models_folder(tiny_demo):
    out_dir, summary = tiny_demo
    assert "kidney Dice" in summary.text and "lesion recall" in summary.text and "Table 1" in summary.text
    manifest = load_models(out_dir / "models")
    assert manifest.grid == 32 and manifest.kidney.folds == (0,)
    assert summary.reports and all(p.is_file() for p in summary.reports)
    per_case = pd.read_csv(out_dir / "evaluation" / "per_case.csv")
    assert {"kidney_right", "kidney_left"} <= set(per_case["structure"])


def test_outputs_keep_the_input_geometry_and_label_table(three_ways):
    results, inputs = three_ways
    for name, result in results.items():
        assert result.status == "ok", (name, result.messages)
        seg = read_image(result.files["seg"])
        ct = inputs[name]
        assert seg.GetSize() == ct.GetSize() and seg.GetDirection() == pytest.approx(ct.GetDirection())
        assert seg.GetOrigin() == pytest.approx(ct.GetOrigin()) and seg.GetSpacing() == pytest.approx(ct.GetSpacing())
        assert set(np.unique(sitk.GetArrayViewFromImage(seg))) <= set(OUTPUT_LABELS.values())
        table = pd.read_csv(result.files["lesions_csv"])
        assert tuple(table.columns) == LESION_TABLE_COLUMNS and set(REQUIRED_COLUMNS) <= set(table.columns)
        _check_nephrometry(table)
        assert result.files["report"].stat().st_size > 10_000
        assert result.files["labels_itksnap"].is_file() and result.files["labels_slicer"].is_file()
        assert {"kidney", "mass"} <= set(result.stage_seconds) and min(result.stage_seconds.values()) >= 0


def _check_nephrometry(table: pd.DataFrame) -> None:
    """Solid and AML masses have points (unless no kidney is within reach), the others measurements only."""
    scored = table.lesion_class.isin(["solid", "AML"])
    measured = table.c_index.notna()
    assert (table.renal_score.notna() == (scored & measured)).all()
    assert table.loc[table.renal_score.notna(), "renal_score"].between(4, 12).all()
    assert (measured | table.nephrometry_note.str.contains("no kidney", na=False)).all()


def test_storage_order_and_dicom_give_identical_results(three_ways):
    results, _ = three_ways
    segs = {name: sitk.DICOMOrient(read_image(r.files["seg"]), "LPS") for name, r in results.items()}
    reference = sitk.GetArrayFromImage(segs["lps"])
    for name in ("odd", "dicom"):
        assert np.array_equal(sitk.GetArrayFromImage(segs[name]), reference), name
    tables = {name: pd.read_csv(r.files["lesions_csv"]).drop(columns="cam_file") for name, r in results.items()}
    for name in ("odd", "dicom"):
        pd.testing.assert_frame_equal(tables[name], tables["lps"], check_exact=False, rtol=1e-4, atol=1e-4)


def test_right_kidney_is_on_the_patients_right(three_ways):
    results, inputs = three_ways
    for name, result in results.items():
        seg = read_image(result.files["seg"])
        array = sitk.GetArrayViewFromImage(seg)
        x_mm = {}
        for side in ("kidney_right", "kidney_left"):
            index = np.argwhere(array == OUTPUT_LABELS[side]).mean(axis=0)[::-1]
            x_mm[side] = seg.TransformContinuousIndexToPhysicalPoint(index.tolist())[0]
        assert x_mm["kidney_right"] < x_mm["kidney_left"], name  # LPS: +x is the patient's left
        lesions = pd.read_csv(result.files["lesions_csv"])
        for row in lesions.itertuples():
            assert (row.side == "right") == (row.centroid_x_mm < np.mean(list(x_mm.values()))), (name, row)


def test_missing_fold_checkpoint_is_a_clear_error(tiny_demo, held_out_ct, tmp_path):
    out_dir, _ = tiny_demo
    models = tmp_path / "models"
    shutil.copytree(out_dir / "models", models)
    manifest = load_models(models)
    with pytest.raises(InputError, match=r"no fold\(s\) \[3\]"):
        predict(held_out_ct, tmp_path / "out", models, PredictConfig(folds=(3,)))
    checkpoint = models / manifest.mass.path / "fold_0" / "checkpoint_final.pth"
    checkpoint.unlink()
    with pytest.raises(InputError, match=r"checkpoint_final\.pth: mass model fold 0 checkpoint is missing"):
        predict(held_out_ct, tmp_path / "out", models)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_non_ct_intensities_are_refused(tiny_demo, held_out_ct, tmp_path):
    out_dir, _ = tiny_demo
    shifted = sitk.Cast(held_out_ct, sitk.sitkFloat32) + 1024.0  # stored without the rescale intercept
    sitk.WriteImage(shifted, str(tmp_path / "raw_values.nii.gz"))
    with pytest.raises(InputError, match=r"raw_values\.nii\.gz: does not look like a CT.*no air"):
        predict(tmp_path / "raw_values.nii.gz", tmp_path / "out", out_dir / "models")


def test_batch_goes_past_a_corrupt_file_and_reports_it(tiny_demo, held_out_ct, tmp_path, capsys):
    out_dir, _ = tiny_demo
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sitk.WriteImage(held_out_ct, str(inputs / "good.nii.gz"))
    (inputs / "broken.nii.gz").write_bytes((inputs / "good.nii.gz").read_bytes()[:300])
    code = cli_main(["predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "--models", str(out_dir / "models"),
                     "--no-cam"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "broken: FAILED" in printed and "broken.nii.gz" in printed and "1/2 case(s) predicted" in printed
    assert (tmp_path / "out" / "good_seg.nii.gz").is_file() and (tmp_path / "out" / "good_lesions.csv").is_file()
    summary = json.loads((tmp_path / "out" / "predict_summary.json").read_text())
    assert [c["status"] for c in summary["cases"]] == ["failed", "ok"]
    # Parts split the inputs like nnUNetv2_predict: part 0 of 2 is only the first case.
    code = cli_main(["predict", "-i", str(inputs), "-o", str(tmp_path / "part0"), "--models",
                     str(out_dir / "models"), "--num-parts", "2", "--part-id", "0"])
    assert code == 1 and "0/1 case(s)" in capsys.readouterr().out
    assert not (tmp_path / "part0" / "good_seg.nii.gz").exists()


def test_case_0000_is_case_for_predict_predict_stage_and_evaluate(tiny_demo, held_out_ct, tmp_path):
    """One case-id rule (nnU-Net's): every command names ``case_0000.nii.gz``'s outputs ``case``."""
    out_dir, _ = tiny_demo
    models = out_dir / "models"
    ct_path = write_image(held_out_ct, tmp_path / "images" / "case_0000.nii.gz")
    assert cli_main(["predict", "-i", str(ct_path), "-o", str(tmp_path / "pred"), "-m", str(models),
                     "--no-cam", "--no-report", "--device", "cpu"]) == 0
    assert (tmp_path / "pred" / "case_seg.nii.gz").is_file() and (tmp_path / "pred" / "case_lesions.csv").is_file()
    kidney = load_models(models).kidney
    assert cli_main(["predict-stage", "-i", str(ct_path), "-o", str(tmp_path / "stage"), "-m", str(models / kidney.path),
                     "-f", *map(str, kidney.folds), "--device", "cpu"]) == 0
    assert [p.name for p in (tmp_path / "stage").iterdir()] == ["case.nii.gz"]

    (tmp_path / "ref").mkdir()
    shutil.copy(tmp_path / "pred" / "case_seg.nii.gz", tmp_path / "ref" / "case_0000.nii.gz")
    assert cli_main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                     "-o", str(tmp_path / "eval"), "--no-figures"]) == 0
    assert set(pd.read_csv(tmp_path / "eval" / "per_case.csv")["case_id"]) == {"case"}


def test_dicom_seg_and_sr_match_the_nifti_labels_and_the_lesion_table(tiny_demo, three_ways, tmp_path, capsys):
    out_dir, _ = tiny_demo
    results, _ = three_ways
    result = results["dicom"]
    series = Path(result.source)
    files = dicom_series_files(series)
    nifti = sitk.GetArrayFromImage(read_image(result.files["seg"]))
    assert np.array_equal(read_dicom_seg_labels(result.files["dicom_seg"], files), nifti)
    table = pd.read_csv(result.files["lesions_csv"])
    groups = hd.sr.srread(result.files["dicom_sr"]).content.get_volumetric_roi_measurement_groups()
    nephrometry = {str(g.tracking_identifier): g for g in groups if str(g.tracking_identifier).endswith("nephrometry")}
    groups = [g for g in groups if not str(g.tracking_identifier).endswith("nephrometry")]
    assert len(groups) == len(table) > 0 and len(nephrometry) == table.c_index.notna().sum()
    for group, row in zip(groups, table.itertuples()):
        values = {m.name.meaning: m.value for m in group.get_measurements()}
        assert values["Volume"] == pytest.approx(row.volume_ml, rel=1e-3)
        if not math.isnan(row.c_index):
            scores = {m.name.value: m.value for m in nephrometry[f"mass {row.lesion_id} nephrometry"].get_measurements()}
            assert scores["RNN-CINDEX"] == pytest.approx(row.c_index, rel=1e-3)
        assert values["Mean Attenuation Coefficient"] == pytest.approx(row.mean_hu, rel=1e-3, abs=0.1)
        assert group.finding_sites[0].laterality.meaning.lower() == row.side
    # The other slice order through the CLI: the same labels, on that series' own slices.
    reversed_series = write_dicom_series(sitk.DICOMOrient(read_series_or_image(series), "LPI"), tmp_path / "rev")
    assert cli_main(["predict", "-i", str(reversed_series), "-o", str(tmp_path / "out"), "-m", str(out_dir / "models"),
                     "--dicom-seg", "--no-cam", "--no-report"]) == 0
    capsys.readouterr()
    reversed_files = dicom_series_files(reversed_series)
    reversed_labels = read_dicom_seg_labels(tmp_path / "out" / "rev_seg.dcm", reversed_files)
    assert np.array_equal(reversed_labels, sitk.GetArrayFromImage(read_image(tmp_path / "out" / "rev_seg.nii.gz")))
    as_image = sitk.GetImageFromArray(reversed_labels)
    as_image.CopyInformation(read_series_or_image(reversed_series))
    lps = sitk.DICOMOrient(read_image(result.files["seg"]), "LPS")
    assert np.array_equal(sitk.GetArrayFromImage(sitk.DICOMOrient(as_image, "LPS")), sitk.GetArrayFromImage(lps))


def test_a_series_without_frame_of_reference_keeps_its_nifti_results_and_says_why_no_seg(tiny_demo, three_ways,
                                                                                      tmp_path):
    """A series missing a tag the SEG must reference: the case still succeeds with its NIfTI outputs,
    no DICOM object is written, and the case notes and output errors name the series and the problem."""
    import pydicom

    out_dir, _ = tiny_demo
    results, _ = three_ways
    series = tmp_path / "no_frame_of_reference"
    series.mkdir()
    for path in dicom_series_files(Path(results["dicom"].source)):
        dataset = pydicom.dcmread(path)
        del dataset.FrameOfReferenceUID
        dataset.save_as(series / Path(path).name)
    result = predict(series, tmp_path / "out", out_dir / "models", PredictConfig(dicom_seg=True, cam=False, report=False))[0]
    assert result.status == "ok" and (tmp_path / "out" / "no_frame_of_reference_seg.nii.gz").is_file()
    assert not list((tmp_path / "out").glob("*.dcm"))
    assert len(result.output_errors) == 1 and result.output_errors[0] in result.messages
    assert result.output_errors[0].startswith(f"no DICOM SEG or SR written for the series in {series}: ")
    assert "Frame of Reference UID (0020,0052) is missing or empty in" in result.output_errors[0]


def test_summary_holds_the_run_record_and_synthetic_models_are_flagged(tiny_demo, three_ways):
    out_dir, _ = tiny_demo
    results, _ = three_ways
    summary = json.loads((Path(results["odd"].files["seg"]).parent / "predict_summary.json").read_text())
    run = summary["run"]
    models = out_dir / "models"
    assert set(run["model_files_sha256"]) == {p.relative_to(models).as_posix() for p in model_files(models,
                                                                                                   load_models(models))}
    for relative, digest in run["model_files_sha256"].items():
        assert digest == hashlib.sha256((models / relative).read_bytes()).hexdigest()
    assert {"renal_nnunet", "nnunetv2", "torch"} <= set(run["versions"]) and run["device"] == "cpu"
    assert run["settings"]["folds"] == [0]
    manifest = load_models(models)
    assert manifest.training["data"] == "synthetic" and manifest.training["grid"] == 32
    assert manifest.training["kidney"]["dataset"].endswith("RenalKidney32") and manifest.training["kidney"]["cases"] == 5
    assert all(any("trained on synthetic data" in m for m in r.messages) for r in results.values())


def test_calibrated_probability_applies_the_models_temperature(tiny_demo, held_out_ct, tmp_path):
    out_dir, _ = tiny_demo
    models = tmp_path / "models"
    shutil.copytree(out_dir / "models", models)
    manifest = json.loads((models / "manifest.json").read_text())
    manifest["classifier_calibration"] = {"temperature": 3.0}
    (models / "manifest.json").write_text(json.dumps(manifest))
    result = predict(held_out_ct, tmp_path / "out", models, PredictConfig(cam=False, report=False))[0]
    classified = [r for r in result.lesions if r.probabilities]
    assert classified, "the demo case should hold a classified mass"
    for record in classified:
        raw = np.array([[record.probabilities[name] for name in LESION_CLASSES]])  # one fold: the ensemble mean
        expected = apply_temperature(raw, 3.0)[0, LESION_CLASSES.index(record.lesion_class)]
        assert record.probability_calibrated == pytest.approx(expected, abs=1e-6)
        assert record.indeterminate == (expected < PredictConfig.review_below_probability)
    table = pd.read_csv(result.files["lesions_csv"])
    assert {"probability_calibrated", "indeterminate", "plausibility"} <= set(table.columns)


def test_a_chest_level_scan_ends_as_no_kidney_in_view(tiny_demo, held_out_ct, tmp_path):
    """Air-filled 'lungs' inside the chest wall, in front of the kidneys: the kidney model still
    finds its kidneys, and the plausibility check turns the case into 'no kidney in view'."""
    from scipy.ndimage import binary_erosion

    out_dir, _ = tiny_demo
    ct = sitk.DICOMOrient(held_out_ct, "LPS")
    array = sitk.GetArrayFromImage(ct)
    _, y, x = np.indices(array.shape)
    inside = np.stack([binary_erosion(axial > -500, iterations=2) for axial in array])
    array[inside & (y < array.shape[1] * 0.5) & (np.abs(x - array.shape[2] / 2) > 2)] = -850
    chest = sitk.GetImageFromArray(array)
    chest.CopyInformation(ct)
    result = predict(chest, tmp_path / "out", out_dir / "models", PredictConfig(case_id="chest", cam=False))[0]
    assert result.status == "no_kidney" and result.lesions == ()
    assert any(m.startswith("no kidney in view") and "chest" in m for m in result.messages)
    assert not sitk.GetArrayViewFromImage(read_image(result.files["seg"])).any()
