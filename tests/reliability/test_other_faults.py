"""Bad input never becomes a result: ``convert``, ``evaluate``, ``compare`` and the command line fed
broken metadata, missing predictions, mislabelled references and bad arguments (no trained model
needed, a few seconds each)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import KITS_LABELS, OUTPUT_LABELS
from renal_nnunet.synthetic import write_synthetic_kits
from tests.reliability.test_predict_faults import run_cli


@pytest.fixture(scope="module")
def kits_source(tmp_path_factory):
    """Three small synthetic cases in KiTS23's layout (label maps with tumours and cysts)."""
    return write_synthetic_kits(tmp_path_factory.mktemp("kits") / "kits", 3, layout="kits23", seed=3,
                                shape_zyx=(20, 32, 32), spacing_zyx_mm=(8.0, 10.0, 10.0))


def test_convert_refuses_case_ids_listed_twice_in_the_kits_metadata(kits_source, tmp_path):
    source = tmp_path / "kits"
    shutil.copytree(kits_source, source)
    metadata = source / "kits23.json"
    entries = json.loads(metadata.read_text())
    metadata.write_text(json.dumps([*entries, {**entries[0], "tumor_histologic_subtype": "clear_cell_rcc"}]))
    code, printed = run_cli("convert", "kits", source, "-o", tmp_path / "raw")
    assert code == 2 and "kits23.json" in printed and f"lists case_id {entries[0]['case_id']} more than once" in printed
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").rglob("*.nii.gz"))


def test_convert_on_a_missing_folder_says_so(tmp_path):
    code, printed = run_cli("convert", "kits", tmp_path / "nowhere", "-o", tmp_path / "raw")
    assert code == 2 and "nowhere: does not exist" in printed


def _pipeline_labels(kits: sitk.Image) -> sitk.Image:
    """A KiTS label map in the pipeline's convention (kidneys by patient side, masses as solid)."""
    from renal_nnunet.anatomy.geometry import image_like, patient_left_mm

    array = sitk.GetArrayFromImage(kits)
    out = np.zeros(array.shape, np.uint8)
    kidney = np.argwhere(array > 0)
    left = patient_left_mm(kits, kidney) > patient_left_mm(kits, kidney).mean()
    out[tuple(kidney.T)] = np.where(left, OUTPUT_LABELS["kidney_left"], OUTPUT_LABELS["kidney_right"])
    out[array >= KITS_LABELS["tumor"]] = OUTPUT_LABELS["solid"]
    return image_like(out, kits)


@pytest.fixture(scope="module")
def predictions_and_references(kits_source, tmp_path_factory):
    work = tmp_path_factory.mktemp("evaluate")
    refs, preds = work / "refs", work / "preds"
    refs.mkdir()
    preds.mkdir()
    for case in sorted(p for p in kits_source.iterdir() if p.is_dir()):
        labels = _pipeline_labels(sitk.ReadImage(str(case / "segmentation.nii.gz")))
        sitk.WriteImage(labels, str(refs / f"{case.name}.nii.gz"))
        sitk.WriteImage(labels, str(preds / f"{case.name}_seg.nii.gz"))  # perfect predictions
    return preds, refs


def test_a_reference_without_a_prediction_is_scored_as_an_empty_prediction(predictions_and_references, tmp_path):
    preds, refs = predictions_and_references
    partial = tmp_path / "partial"
    shutil.copytree(preds, partial)
    missing = sorted(partial.glob("*_seg.nii.gz"))[0]
    missing.unlink()
    code, printed = run_cli("evaluate", "--pred", partial, "--ref", refs, "-o", tmp_path / "eval", "--no-figures")
    case_id = missing.name.removesuffix("_seg.nii.gz")
    assert code == 0 and f"error {case_id}: no prediction" in printed
    summary = (tmp_path / "eval" / "summary.md").read_text()
    assert summary.splitlines()[2].startswith("**1 reference(s) had no prediction") and case_id in summary.splitlines()[2]
    per_case = pd.read_csv(tmp_path / "eval" / "per_case.csv")
    kidney = per_case[(per_case.case_id == case_id) & per_case.structure.str.startswith("kidney_")]
    assert len(kidney) == 2 and (kidney.dice == 0).all()
    lesions = pd.read_csv(tmp_path / "eval" / "per_lesion.csv")
    missed = lesions[lesions.case_id == case_id]
    assert len(missed) and (missed.status == "FN").all()
    recall = pd.read_csv(tmp_path / "eval" / "summary.csv").query("section == 'detection' and group == 'all' and "
                                                                   "metric == 'recall'").value.iloc[0]
    assert recall < 1.0, "missing predictions did not count as missed lesions"


def test_kits_references_read_as_pipeline_labels_are_named(kits_source, predictions_and_references, tmp_path):
    preds, _ = predictions_and_references
    kits_refs = tmp_path / "kits_refs"
    kits_refs.mkdir()
    for case in sorted(p for p in kits_source.iterdir() if p.is_dir()):
        shutil.copy(case / "segmentation.nii.gz", kits_refs / f"{case.name}.nii.gz")
    code, printed = run_cli("evaluate", "--pred", preds, "--ref", kits_refs, "-o", tmp_path / "eval", "--no-figures")
    assert "looks like a KiTS reference" in printed and "--ref-format kits" in printed
    ok, _ = run_cli("evaluate", "--pred", preds, "--ref", kits_refs, "--ref-format", "kits", "-o", tmp_path / "kits",
                    "--no-figures")
    assert ok == 0 and not len(pd.read_csv(tmp_path / "kits" / "errors.csv"))


def test_compare_refuses_a_ct_without_a_reference(predictions_and_references, tmp_path):
    from renal_nnunet.io import InputError
    from renal_nnunet.pipeline.compare import compare_methods

    preds, refs = predictions_and_references
    cts = tmp_path / "cts"
    cts.mkdir()
    for ref in refs.glob("*.nii.gz"):
        shutil.copy(ref, cts / ref.name)
    shutil.copy(ref, cts / "stranger.nii.gz")
    with pytest.raises(InputError, match="no reference for the CT.*stranger"):
        compare_methods(cts, refs, tmp_path / "out", cascade_models=tmp_path / "unused")


@pytest.mark.parametrize("argv, expected", [
    (["predict-stage", "-i", "ct.nii.gz", "-o", "out", "-m", "model", "-f", "x"], "-f/--folds: folds must be integers or 'all', got 'x'"),
    (["predict", "-i", "ct", "-o", "out", "-m", "m", "--review-below-probability", "7"],
     "argument --review-below-probability: must lie in [0, 1], got 7"),
    (["predict", "-i", "ct", "-o", "out", "-m", "m", "--min-diameter-mm", "-2"], "argument --min-diameter-mm: must be at least 0 mm"),
    (["predict-stage", "-i", "ct", "-o", "out", "-m", "m", "--margin-mm", "-1"], "argument --margin-mm: must be at least 0 mm"),
    (["predict", "-i", "ct", "-o", "out", "-m", "m", "--num-parts", "0"], "argument --num-parts: must be at least 1"),
])
def test_bad_arguments_are_named_without_a_traceback(tmp_path, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    code, printed = run_cli(*argv)
    assert code == 2 and expected in printed and "Traceback" not in printed
