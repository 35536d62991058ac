"""The real CT series (``../shared/realct``) as hospitals and archives export it: a blank SOP Class
UID, blank and absent type 2 attributes, each lossless compressed transfer syntax, a localiser in
the folder. Every variant (20 slices through both kidneys) reads as the same voxels and gives
valid DICOM SEG and SR objects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import CTImageStorage, SegmentationStorage

from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.cli import main as cli_main
from renal_nnunet.io import file_sha256, find_dicom_series, read_dicom_series, read_image, read_series_or_image
from renal_nnunet.outputs.dicom import read_dicom_seg_labels, write_dicom_outputs
from renal_nnunet.outputs.records import LesionRecord
from tests.pipeline.real_dicom import REAL_SLICES, TRANSFER_SYNTAXES, dciodvfy_errors, real_series_variants
from tests.outputs.test_dicom import RUN_RECORD

VARIANTS = ("plain", "blank_sop_class", "blank_type2", *TRANSFER_SYNTAXES, "localizer")


@pytest.fixture(scope="module")
def real_variants(realct_series, tmp_path_factory) -> dict[str, Path]:
    return real_series_variants(realct_series, tmp_path_factory.mktemp("real_variants"))


@pytest.fixture(scope="module")
def plain_ct(real_variants) -> sitk.Image:
    return read_series_or_image(real_variants["plain"])


@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_each_variant_reads_as_the_same_voxels(real_variants, plain_ct, variant):
    series = find_dicom_series(real_variants[variant])
    ct = read_dicom_series(series)
    syntax = pydicom.dcmread(series.files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
    assert syntax == TRANSFER_SYNTAXES.get(variant, ("1.2.840.10008.1.2",))[0]
    assert [Path(f).name for f in series.files] == sorted(REAL_SLICES, reverse=True)  # ascending z
    assert (ct.GetSize(), ct.GetOrigin(), ct.GetSpacing(), ct.GetDirection()) == \
        (plain_ct.GetSize(), plain_ct.GetOrigin(), plain_ct.GetSpacing(), plain_ct.GetDirection())
    # GDCM reads a JPEG 2000 stream of precision 16 as int32: compare values, not the pixel type.
    assert np.array_equal(sitk.GetArrayViewFromImage(ct).astype(np.int32),
                          sitk.GetArrayViewFromImage(plain_ct).astype(np.int32))
    expected = ("left out 1 localiser image(s) (ImageType LOCALIZER): 0-scout.dcm",) if variant == "localizer" else ()
    assert series.left_out == expected


def _hand_labelled(ct: sitk.Image) -> tuple[sitk.Image, np.ndarray, list[LesionRecord]]:
    """Output labels on the real series' grid (boxes where its README puts the kidneys), an AML in the
    right kidney and a mass too small to classify in the left, with their lesion ids and table rows."""
    labels = np.zeros(sitk.GetArrayViewFromImage(ct).shape, np.uint8)
    labels[2:18, 250:320, 170:235] = OUTPUT_LABELS["kidney_right"]
    labels[2:18, 250:320, 305:385] = OUTPUT_LABELS["kidney_left"]
    components = np.zeros_like(labels)
    components[6:10, 270:290, 190:210], components[8:9, 280:284, 340:344] = 1, 2
    labels[components == 1], labels[components == 2] = OUTPUT_LABELS["AML"], OUTPUT_LABELS["mass_too_small"]
    seg = sitk.GetImageFromArray(labels)
    seg.CopyInformation(ct)
    records = [LesionRecord(1, "right", OUTPUT_LABELS["AML"], 5.5, 21.0, -61.5, 12.0, (0.0, 0.0, 0.0), "AML",
                            {"AML": 0.83, "cystic": 0.1, "solid": 0.07}, 1.0, probability_calibrated=0.71),
               LesionRecord(2, "left", OUTPUT_LABELS["mass_too_small"], 0.05, 4.2, 8.25, 10.0, (0.0, 0.0, 0.0),
                            "too_small")]
    return seg, components, records


EXPORT_NOTES = {
    "blank_sop_class": ["SOP Class UID (0008,0016) empty in 20 of 20 slice(s): taken from the file meta's Media "
                        "Storage SOP Class UID (CT Image Storage) for the DICOM SEG/SR; the input files are not "
                        "changed"],
    "blank_type2": ["absent type 2 attribute(s) copied into the DICOM SEG/SR as empty: Patient's Birth Date "
                    "(0010,0030) (20 slice(s)), Patient's Sex (0010,0040) (20 slice(s)), Study Time (0008,0030) "
                    "(20 slice(s)), Accession Number (0008,0050) (20 slice(s)), Study ID (0020,0010) (20 slice(s))"],
}
"""What the DICOM export tells the user about each variant (nothing for the others)."""


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_gives_a_valid_seg_and_sr_and_its_files_are_not_changed(real_variants, tmp_path, variant):
    series = find_dicom_series(real_variants[variant])
    before = {f: file_sha256(f) for f in series.files}
    seg, components, records = _hand_labelled(read_dicom_series(series))
    written, notes = write_dicom_outputs(seg, components, records, series.files, tmp_path, variant, RUN_RECORD)
    assert sorted(written) == ["dicom_seg", "dicom_sr"] and notes == EXPORT_NOTES.get(variant, [])
    assert np.array_equal(read_dicom_seg_labels(written["dicom_seg"], series.files), sitk.GetArrayFromImage(seg))
    segmentation, report = pydicom.dcmread(written["dicom_seg"]), pydicom.dcmread(written["dicom_sr"])
    sources = [i for s in segmentation.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence]
    evidence = [i for study in report.CurrentRequestedProcedureEvidenceSequence
                for s in study.ReferencedSeriesSequence for i in s.ReferencedSOPSequence]
    assert len(sources) == len(REAL_SLICES) and {i.ReferencedSOPClassUID for i in sources} == {CTImageStorage}
    assert sorted(i.ReferencedSOPClassUID for i in evidence) == [CTImageStorage] * 20 + [SegmentationStorage]
    for dataset in (segmentation, report):
        assert dataset.PatientID == ("" if variant == "blank_type2" else "Pancreas-CT-CB_001")
        assert "StudyID" in dataset and "AccessionNumber" in dataset and "PatientBirthDate" in dataset
    assert {f: file_sha256(f) for f in series.files} == before  # repairs happen on copies in memory
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    assert dciodvfy_errors(written["dicom_seg"]) == [] and dciodvfy_errors(written["dicom_sr"]) == []


def test_predict_a_series_with_a_blank_sop_class_exits_0_with_seg_and_sr(tiny_demo, real_variants, tmp_path, capsys):
    """The issue's case: every slice's SOP Class UID is empty while the file meta says CT Image Storage."""
    out_dir, _ = tiny_demo
    series = real_variants["blank_sop_class"]
    before = {p.name: file_sha256(p) for p in series.iterdir()}
    code = cli_main(["predict", "-i", str(series), "-o", str(tmp_path / "out"), "-m", str(out_dir / "models"),
                     "--dicom-seg", "--no-cam", "--no-report"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert (tmp_path / "out" / "blank_sop_class_seg.dcm").is_file(), printed
    assert (tmp_path / "out" / "blank_sop_class_sr.dcm").is_file(), printed
    assert f"note: {EXPORT_NOTES['blank_sop_class'][0]}" in printed
    assert {p.name: file_sha256(p) for p in series.iterdir()} == before


def test_predict_gives_every_variant_the_same_segmentation_and_a_seg_not_written_keeps_the_rest(
        tiny_demo, real_variants, tmp_path, capsys):
    """One batch over all variants. One case's SEG cannot be written (its series has no Frame of
    Reference UID): that case keeps its NIfTI labels, tables and report, a note says why, the batch
    goes on, exit code 1."""
    out_dir, _ = tiny_demo
    out = tmp_path / "out"
    inputs = tmp_path / "series"
    shutil.copytree(real_variants["plain"].parent, inputs)
    for path in sorted((inputs / "jpegls").iterdir()):
        dataset = pydicom.dcmread(path)
        dataset.FrameOfReferenceUID = ""
        dataset.save_as(path)
    code = cli_main(["predict", "-i", str(inputs), "-o", str(out), "-m",
                     str(out_dir / "models"), "--dicom-seg", "--no-cam"])
    printed = capsys.readouterr().out
    assert code == 1, printed
    rows = {row["case_id"]: row for row in json.loads((out / "predict_summary.json").read_text())["cases"]}
    assert sorted(rows) == sorted(VARIANTS) and {row["status"] for row in rows.values()} == {"ok"}, printed
    plain = sitk.GetArrayFromImage(read_image(out / "plain_seg.nii.gz"))
    assert plain.any(), "the tiny demo's models found nothing on the real series: no DICOM objects to check"
    for variant in VARIANTS:
        assert np.array_equal(sitk.GetArrayFromImage(read_image(out / f"{variant}_seg.nii.gz")), plain), variant
    failed = rows["jpegls"]
    kept = ("seg", "lesions_csv", "lesions_json", "report")
    assert all(Path(failed["files"][kind]).is_file() for kind in kept) and "dicom_seg" not in failed["files"]
    assert len(failed["output_errors"]) == 1 and "Frame of Reference UID" in failed["output_errors"][0]
    assert failed["output_errors"][0] in failed["messages"] and f"note: {failed['output_errors'][0]}" in printed
    for variant in set(VARIANTS) - {"jpegls"}:
        assert rows[variant]["output_errors"] == [] and {"dicom_seg", "dicom_sr"} <= set(rows[variant]["files"])
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    for variant in set(VARIANTS) - {"jpegls"}:
        assert dciodvfy_errors(out / f"{variant}_seg.dcm") == [] and dciodvfy_errors(out / f"{variant}_sr.dcm") == []
