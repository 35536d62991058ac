"""DICOM SEG and SR of a hand-built case on real DICOM series (no models needed)."""

from __future__ import annotations

import shutil

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage

from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.io import InputError, dicom_series_files, read_series_or_image
from renal_nnunet.outputs.dicom import read_dicom_seg_labels, write_dicom_outputs
from renal_nnunet.outputs.dicom_sources import repaired_source_headers
from renal_nnunet.outputs.records import LesionRecord
from tests.nephrometry.phantoms import hand_made_nephrometry
from tests.pipeline.dicom_series import write_dicom_series
from tests.pipeline.real_dicom import dciodvfy_errors

RUN_RECORD = {"versions": {"renal_nnunet": "0.1.0", "nnunetv2": "2.8.1"}, "device": "cpu",
              "settings": {"cam": True, "folds": [0]}, "models_sha256": "ab" * 32}


def _series_case(folder, orientation: str):
    """A CT series stored in ``orientation`` (LPS: slices foot to head, LPI: head to foot), read back,
    with a right and a left kidney holding an AML and a mass too small to classify, as label map and lesion ids."""
    shape = (10, 24, 20)
    ct = np.full(shape, -1000, np.int16)
    ct[:, 2:22, 2:18] = 40
    image = sitk.GetImageFromArray(ct)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((-20.0, -24.0, 0.0))
    write_dicom_series(sitk.DICOMOrient(image, orientation), folder, uid_root="1.2.826.0.1.3680043.2.1125.5")
    ct = read_series_or_image(folder)
    labels = np.zeros(shape, np.uint8)
    labels[2:8, 5:15, 2:8] = OUTPUT_LABELS["kidney_right"]  # LPS: small x is the patient's right
    labels[2:8, 5:15, 12:18] = OUTPUT_LABELS["kidney_left"]
    components = np.zeros(shape, np.uint8)
    components[3:6, 8:11, 3:6], components[4:6, 8:10, 13:15] = 1, 2
    labels[components == 1], labels[components == 2] = OUTPUT_LABELS["AML"], OUTPUT_LABELS["mass_too_small"]
    lps = sitk.GetImageFromArray(labels)
    lps.CopyInformation(sitk.DICOMOrient(ct, "LPS"))
    lps_components = sitk.GetImageFromArray(components)
    lps_components.CopyInformation(lps)
    orient = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(ct.GetDirection())
    seg, comps = sitk.DICOMOrient(lps, orient), sitk.DICOMOrient(lps_components, orient)
    records = [LesionRecord(1, "right", OUTPUT_LABELS["AML"], 0.324, 9.1, -61.5, 12.0, (0.0, 0.0, 0.0), "AML",
                            {"AML": 0.83, "cystic": 0.1, "solid": 0.07}, 1.0, probability_calibrated=0.71,
                            indeterminate=False),
               LesionRecord(2, "left", OUTPUT_LABELS["mass_too_small"], 0.048, 4.2, 8.25, 10.0, (0.0, 0.0, 0.0), "too_small")]
    return seg, sitk.GetArrayFromImage(comps), records


@pytest.mark.parametrize("orientation", ["LPS", "LPI"])
def test_seg_reads_back_as_the_label_map_and_sr_as_the_lesion_table(tmp_path, orientation):
    seg, components, records = _series_case(tmp_path / "series", orientation)
    files = dicom_series_files(tmp_path / "series")
    written, notes = write_dicom_outputs(seg, components, records, files, tmp_path, "case", RUN_RECORD)
    assert notes == [] and sorted(p.name for p in written.values()) == ["case_seg.dcm", "case_sr.dcm"]
    assert np.array_equal(read_dicom_seg_labels(written["dicom_seg"], files), sitk.GetArrayFromImage(seg))

    segmentation = hd.seg.segread(written["dicom_seg"])
    labels = {n: segmentation.get_segment_description(n).SegmentLabel for n in segmentation.segment_numbers}
    assert labels == {1: "right kidney", 2: "left kidney", 3: "AML (mass 1, right)",
                      4: "mass too small to classify (mass 2, left)"}
    right_kidney = segmentation.get_segment_description(1)
    assert right_kidney.SegmentedPropertyTypeCodeSequence[0].CodeValue == "64033007"
    assert right_kidney.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence[0].CodeValue \
        == "24028007"
    assert segmentation.get_segment_description(4).AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0] \
        .CodeMeaning == "Left"
    # The run record, where DICOM has room for it.
    parameters = segmentation.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters
    assert f"models_sha256={'ab' * 32}" in parameters and "device=cpu" in parameters
    assert list(segmentation.SoftwareVersions) == ["renal_nnunet 0.1.0", "nnunetv2 2.8.1"]
    # Each frame lies on the source slice it references.
    positions = {d.SOPInstanceUID: [float(v) for v in d.ImagePositionPatient]
                 for d in (pydicom.dcmread(f, stop_before_pixels=True) for f in files)}
    for frame in segmentation.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == \
            pytest.approx(positions[source])

    groups = hd.sr.srread(written["dicom_sr"]).content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(records)
    for group, record in zip(groups, records):
        assert group.referenced_segment.referenced_segment_numbers == [record.lesion_id + 2]
        value = {m.name.meaning: m.value for m in group.get_measurements()}
        assert value["Volume"] == pytest.approx(record.volume_ml)
        assert value["Diameter"] == pytest.approx(record.average_diameter_mm)
        assert value["Mean Attenuation Coefficient"] == pytest.approx(record.mean_hu)
        assert value.get("Probability") == (pytest.approx(0.71) if record.probabilities else None)
        evaluations = [e.value.value for e in group.get_qualitative_evaluations()]
        assert evaluations == ([record.lesion_class, "373067005"] if record.probabilities else [record.lesion_class])
        site = group.finding_sites[0]
        assert (site.value.value, site.laterality.value) == (codes.SCT.Kidney.value,
                                                       {"right": "24028007", "left": "7771000"}[record.side])
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    assert dciodvfy_errors(written["dicom_seg"]) == [] and dciodvfy_errors(written["dicom_sr"]) == []


def test_nothing_found_writes_no_dicom_object_and_says_so(tmp_path):
    seg, components, _ = _series_case(tmp_path / "series", "LPS")
    empty = sitk.Image(seg.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(seg)
    written, notes = write_dicom_outputs(empty, np.zeros_like(components), [], dicom_series_files(tmp_path / "series"),
                                         tmp_path / "out", "case", RUN_RECORD)
    assert written == {} and notes == ["nothing found: no DICOM SEG or SR written"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_source_headers_are_repaired_on_copies_and_what_cannot_be_repaired_names_the_attribute(tmp_path):
    _series_case(tmp_path / "series", "LPS")
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in dicom_series_files(tmp_path / "series")]
    for dataset in headers:
        dataset.SOPClassUID, dataset.SliceThickness = "", ""
        del dataset.PatientID
    repaired, notes = repaired_source_headers(headers)
    assert notes == [
        "SOP Class UID (0008,0016) empty in 10 of 10 slice(s): taken from the file meta's Media Storage SOP Class "
        "UID (CT Image Storage) for the DICOM SEG/SR; the input files are not changed",
        "absent type 2 attribute(s) copied into the DICOM SEG/SR as empty: Patient ID (0010,0020) (10 slice(s))",
        "Slice Thickness (0018,0050) absent or empty in 10 slice(s): the DICOM SEG's pixel measures use the slice "
        "gap, 3 mm"]
    assert {(d.SOPClassUID, d.PatientID, float(d.SliceThickness)) for d in repaired} == {(CTImageStorage, None, 3.0)}
    assert headers[0].SOPClassUID == "" and "PatientID" not in headers[0]  # the inputs are left as they were
    headers[0].file_meta.MediaStorageSOPClassUID = ""
    with pytest.raises(InputError, match=r"slice_0000.dcm: SOP Class UID \(0008,0016\) is empty and the file meta "
                                         r"has no Media Storage SOP Class UID"):
        repaired_source_headers(headers)
    del headers[3].FrameOfReferenceUID
    with pytest.raises(InputError, match=r"slice_0003.dcm: Frame of Reference UID \(0020,0052\) is missing or empty "
                                         r"in 1 of 9 slice\(s\): a Segmentation shares the frame of reference"):
        repaired_source_headers(headers[1:])


def test_sr_holds_a_nephrometry_group_per_measured_mass_coded_in_the_private_scheme(tmp_path):
    from dataclasses import replace

    seg, components, records = _series_case(tmp_path / "series", "LPS")
    records = [replace(records[0], nephrometry=hand_made_nephrometry(True)),
               replace(records[1], nephrometry=hand_made_nephrometry(False))]
    written, _ = write_dicom_outputs(seg, components, records, dicom_series_files(tmp_path / "series"), tmp_path,
                                     "case", RUN_RECORD)
    groups = hd.sr.srread(written["dicom_sr"]).content.get_volumetric_roi_measurement_groups()
    assert [str(g.tracking_identifier) for g in groups] == ["mass 1", "mass 1 nephrometry", "mass 2", "mass 2 nephrometry"]
    scored = {m.name.value: m.value for m in groups[1].get_measurements()}
    assert scored["RNN-RENAL"] == 10 and scored["RNN-PADUA"] == 11 and scored["RNN-CINDEX"] == pytest.approx(20 / 26)
    assert scored["81827009"] == pytest.approx(52.0)  # SCT Diameter, derivation Maximum
    coded = {e.name.value: e.value.value for e in groups[1].get_qualitative_evaluations()}
    assert coded == {"RNN-RENAL-A": "p", "RNN-RENAL-H": "373066001", "RNN-RENAL-CAT": "high", "RNN-PADUA-CAT": "high"}
    measured_only = {m.name.value for m in groups[3].get_measurements()}
    assert "RNN-CINDEX" in measured_only and "RNN-RENAL" not in measured_only
    assert groups[3].get_qualitative_evaluations() == []
    if shutil.which("dciodvfy") is not None:
        assert dciodvfy_errors(written["dicom_sr"]) == []
