"""DICOM outputs for a DICOM series input: a Segmentation (SEG) and a TID 1500 measurement report (SR).

``<case>_seg.dcm`` is a BINARY Segmentation referencing the source series: one segment for each
kidney found and one for each mass (a mass's segment is labelled with its class), each with SNOMED
CT codes, a laterality and the colour of the report. Its frames reference the source slices they
lie on, so viewers overlay it on the CT. ``<case>_sr.dcm`` is a Comprehensive 3D SR holding
one TID 1411 measurement group per mass (volume, average diameter, mean HU, class, calibrated
probability, indeterminate flag), each referencing its segment.

Why one segment per mass and not one per class: a TID 1411 group measures the region of the
segment it references, so a mass's volume and mean HU must refer to that mass alone.

Codes (SNOMED CT, ``SCT``): kidney 64033007 (category anatomical structure 91723000); masses in
category morphologically abnormal structure 49755003: AML as neoplasm 108369006, cystic as cyst
367643001, solid as mass 4147007, too small (or cut off) as lesion 52988006; laterality right
24028007 / left 7771000. SNOMED's angiomyolipoma concept is not in DICOM's segmentation property
list (CID 7151), so the class itself is also given in a private scheme ``99RNN``.

Nephrometry: a second measurement group per scored mass ("mass k nephrometry", referencing the
same segment) holds the R.E.N.A.L., PADUA and C-index items. DICOM has no codes for them, so they
are coded in ``99RNN`` as the class is (:data:`NEPHROMETRY_CODES`): points and sums as numeric
measurements in UCUM ``{score}``, the C-index and the endophytic fraction unitless, the maximal
diameter as SCT Diameter with derivation Maximum, the sinus distance in mm; the A descriptor,
the h suffix (where decidable) and the complexity categories as qualitative evaluations.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import KIDNEY_SIDE_LABELS, OUTPUT_LABEL_COLOURS, OUTPUT_LABEL_NAMES, OUTPUT_LABELS
from renal_nnunet.io import InputError, atomic_path
from renal_nnunet.outputs.records import CUT_OFF_CLASS, TOO_SMALL_CLASS, LesionRecord

__all__ = ["DICOM_SEG_SUFFIX", "DICOM_SR_SUFFIX", "NEPHROMETRY_CODES", "write_dicom_outputs", "build_segmentation",
           "build_measurement_report", "segment_labels", "read_dicom_seg_labels"]

log = logging.getLogger(__name__)

DICOM_SEG_SUFFIX = "_seg.dcm"
DICOM_SR_SUFFIX = "_sr.dcm"
PRIVATE_SCHEME = "99RNN"
_CLASS_MEANINGS = {"AML": "angiomyolipoma", "cystic": "cystic renal mass", "solid": "solid renal mass",
                   TOO_SMALL_CLASS: "mass too small to characterise",
                   CUT_OFF_CLASS: "mass cut off by the field of view"}


NEPHROMETRY_CODES: dict[str, tuple[str, str]] = {
    "renal_r": ("RNN-RENAL-R", "R.E.N.A.L. radius points"),
    "renal_e": ("RNN-RENAL-E", "R.E.N.A.L. exophytic/endophytic points"),
    "renal_n": ("RNN-RENAL-N", "R.E.N.A.L. nearness to collecting system or sinus points"),
    "renal_l": ("RNN-RENAL-L", "R.E.N.A.L. location to polar lines points"),
    "renal_score": ("RNN-RENAL", "R.E.N.A.L. nephrometry score"),
    "padua_location": ("RNN-PADUA-LOC", "PADUA longitudinal location points"),
    "padua_exophytic": ("RNN-PADUA-EXO", "PADUA exophytic rate points"),
    "padua_rim": ("RNN-PADUA-RIM", "PADUA renal rim points"),
    "padua_sinus": ("RNN-PADUA-SINUS", "PADUA renal sinus points"),
    "padua_collecting_system": ("RNN-PADUA-UCS", "PADUA urinary collecting system points"),
    "padua_size": ("RNN-PADUA-SIZE", "PADUA tumour size points"),
    "padua_score": ("RNN-PADUA", "PADUA score"),
    "c_index": ("RNN-CINDEX", "C-index"),
    "endophytic_fraction": ("RNN-ENDO", "endophytic fraction"),
    "sinus_distance_mm": ("RNN-SINUS-DIST", "distance to renal sinus or collecting system"),
    "renal_a": ("RNN-RENAL-A", "R.E.N.A.L. anterior/posterior descriptor"),
    "renal_h": ("RNN-RENAL-H", "R.E.N.A.L. hilar contact (h)"),
    "renal_category": ("RNN-RENAL-CAT", "R.E.N.A.L. complexity"),
    "padua_category": ("RNN-PADUA-CAT", "PADUA risk class"),
}
"""Private (``99RNN``) concept codes and meanings of the nephrometry items in the SR."""
_DESCRIPTORS = {"a": "anterior", "p": "posterior", "x": "neither anterior nor posterior"}


@dataclass(frozen=True)
class _Segment:
    """One segment: its number, output label key, side and the lesion it is (None for a kidney)."""

    number: int
    label_key: str
    side: str
    lesion_id: int | None


def _codes():
    from pydicom.sr.codedict import codes

    return codes


def _segments(seg: np.ndarray, lesions: Sequence[LesionRecord]) -> list[_Segment]:
    present = set(np.unique(seg).tolist())
    label_keys = {value: key for key, value in OUTPUT_LABELS.items()}
    kidneys = [(label_keys[value], side) for side, value in KIDNEY_SIDE_LABELS.items() if value in present]
    segments = [_Segment(i + 1, key, side, None) for i, (key, side) in enumerate(kidneys)]
    return segments + [_Segment(len(segments) + i + 1, label_keys[r.output_label], r.side, r.lesion_id)
                       for i, r in enumerate(lesions)]


def segment_labels(segment_array: np.ndarray, segments: Sequence[_Segment]) -> np.ndarray:
    """Output labels (``OUTPUT_LABELS``) from an array of segment numbers."""
    lookup = np.zeros(max([s.number for s in segments], default=0) + 1, np.uint8)
    for s in segments:
        lookup[s.number] = OUTPUT_LABELS[s.label_key]
    return lookup[segment_array]


def _segment_numbers(seg_array: np.ndarray, components: np.ndarray | None, segments: Sequence[_Segment]) -> np.ndarray:
    """Segment number per voxel: kidneys by label, masses by their component id."""
    numbers = np.zeros(seg_array.shape, np.uint16)
    for s in segments:
        mask = seg_array == OUTPUT_LABELS[s.label_key] if s.lesion_id is None else components == s.lesion_id
        numbers[mask] = s.number
    return numbers


def _source_order(seg: sitk.Image, datasets: Sequence) -> list:
    """The source slices in the order of ``seg``'s z index (they must be exactly its slices)."""
    indices = []
    for d in datasets:
        index = seg.TransformPhysicalPointToContinuousIndex([float(v) for v in d.ImagePositionPatient])
        if abs(index[0]) > 1e-3 or abs(index[1]) > 1e-3 or abs(index[2] - round(index[2])) > 1e-3:
            raise InputError(getattr(d, "filename", None), "slice does not lie on the segmentation's grid")
        indices.append(int(round(index[2])))
    if sorted(indices) != list(range(seg.GetDepth())):
        raise InputError(None, f"the {len(datasets)} source slices do not match the {seg.GetDepth()} slices predicted")
    return [d for _, d in sorted(zip(indices, datasets), key=lambda pair: pair[0])]


def _segment_description(segment: _Segment, algorithm):
    import highdicom as hd

    codes = _codes()
    laterality = codes.SCT.Right if segment.side == "right" else codes.SCT.Left
    if segment.lesion_id is None:
        category, property_type = codes.SCT.AnatomicalStructure, codes.SCT.Kidney
        label = OUTPUT_LABEL_NAMES[segment.label_key]
    else:
        category = codes.SCT.MorphologicallyAbnormalStructure
        property_type = {"AML": codes.SCT.Neoplasm, "cystic": codes.SCT.Cyst, "solid": codes.SCT.Mass}.get(
            segment.label_key, codes.SCT.Lesion)
        label = f"{OUTPUT_LABEL_NAMES[segment.label_key]} (mass {segment.lesion_id}, {segment.side})"
    description = hd.seg.SegmentDescription(
        segment_number=segment.number, segment_label=label[:64], segmented_property_category=category,
        segmented_property_type=property_type, algorithm_type="AUTOMATIC", algorithm_identification=algorithm,
        tracking_id=label[:64], tracking_uid=hd.UID(),
        anatomic_regions=None if segment.lesion_id is None else [codes.SCT.Kidney],
        display_color=hd.color.CIELabColor.from_rgb(*OUTPUT_LABEL_COLOURS[segment.label_key]))
    from pydicom.dataset import Dataset

    modifier = Dataset()
    modifier.CodeValue, modifier.CodingSchemeDesignator, modifier.CodeMeaning = (
        laterality.value, laterality.scheme_designator, laterality.meaning)
    if segment.lesion_id is None:
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
    else:
        description.AnatomicRegionSequence[0].AnatomicRegionModifierSequence = [modifier]
    return description


def _algorithm(run_record: dict):
    import highdicom as hd

    settings = {k: json.dumps(v) for k, v in run_record.get("settings", {}).items()}
    settings.update({k: str(run_record[k]) for k in ("device", "models_sha256") if k in run_record})
    return hd.AlgorithmIdentificationSequence(
        name="renal_nnunet", family=_codes().cid7162.ArtificialIntelligence,
        version=str(run_record.get("versions", {}).get("renal_nnunet", "unknown"))[:64], parameters=settings or None)


def _software_versions(run_record: dict) -> list[str]:
    return [f"{name} {version}"[:64] for name, version in run_record.get("versions", {}).items()] or ["unknown"]


def _content_description(run_record: dict) -> str:
    """Short run summary for the LO (64 character) description fields: device and models hash."""
    models = run_record.get("models_sha256", "")
    return f"renal_nnunet on {run_record.get('device', '?')}; models sha256 {models[:16]}"[:64]


def build_segmentation(seg: sitk.Image, components: np.ndarray, lesions: Sequence[LesionRecord],
                       datasets: Sequence, run_record: dict):
    """The SEG object (``highdicom.seg.Segmentation``) and its segments, or ``(None, [])`` when
    ``seg`` holds nothing. ``components`` (z, y, x) holds each lesion's id on ``seg``'s grid."""
    import highdicom as hd

    seg_array = sitk.GetArrayFromImage(seg)
    segments = _segments(seg_array, lesions)
    if not segments:
        return None, []
    ordered = _source_order(seg, datasets)
    algorithm = _algorithm(run_record)
    segmentation = hd.seg.Segmentation(
        source_images=ordered, pixel_array=_segment_numbers(seg_array, components, segments),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(s, algorithm) for s in segments],
        series_instance_uid=hd.UID(), series_number=9001, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="renal_nnunet", manufacturer_model_name="renal_nnunet cascade",
        software_versions=_software_versions(run_record), device_serial_number="0",
        content_description=_content_description(run_record), content_label="RENAL_NNUNET",
        series_description="renal_nnunet kidneys and renal masses")
    return segmentation, segments


def _finding_site(side: str):
    import highdicom as hd

    codes = _codes()
    return hd.sr.FindingSite(anatomic_location=codes.SCT.Kidney,
                             laterality=codes.SCT.Right if side == "right" else codes.SCT.Left)


def _measurements(record: LesionRecord) -> list:
    import highdicom as hd
    from pydicom.sr.coding import Code

    codes = _codes()
    values = [hd.sr.Measurement(name=codes.SCT.Volume, value=record.volume_ml, unit=Code("ml", "UCUM", "milliliter")),
              hd.sr.Measurement(name=codes.SCT.Diameter, value=record.average_diameter_mm,
                                unit=Code("mm", "UCUM", "millimeter"), derivation=codes.SCT.Mean),
              hd.sr.Measurement(name=codes.DCM.MeanAttenuationCoefficient, value=record.mean_hu,
                                unit=Code("[hnsf'U]", "UCUM", "Hounsfield unit"))]
    if not math.isnan(record.probability_calibrated):
        values.append(hd.sr.Measurement(name=codes.DCM.Probability, value=record.probability_calibrated,
                                        unit=Code("1", "UCUM", "no units")))
    return values


def _evaluations(record: LesionRecord) -> list:
    import highdicom as hd
    from pydicom.sr.coding import Code

    evaluations = [hd.sr.QualitativeEvaluation(
        name=Code("RNN-CLASS", PRIVATE_SCHEME, "renal mass class"),
        value=Code(record.lesion_class, PRIVATE_SCHEME, _CLASS_MEANINGS.get(record.lesion_class, record.lesion_class)))]
    if record.probabilities:
        codes = _codes()
        evaluations.append(hd.sr.QualitativeEvaluation(
            name=Code("RNN-REVIEW", PRIVATE_SCHEME, "class needs review (indeterminate)"),
            value=codes.SCT.Yes if record.indeterminate else codes.SCT.No))
    return evaluations


def _private(item: str):
    from pydicom.sr.coding import Code

    return Code(NEPHROMETRY_CODES[item][0], PRIVATE_SCHEME, NEPHROMETRY_CODES[item][1])


def _nephrometry_measurements(record: LesionRecord) -> list:
    """The nephrometry group's numeric items (measurements always, points where scored)."""
    import highdicom as hd
    from pydicom.sr.coding import Code

    row, codes = record.nephrometry.to_row(), _codes()
    score, unitless = Code("{score}", "UCUM", "score"), Code("1", "UCUM", "no units")
    values = [hd.sr.Measurement(name=codes.SCT.Diameter, value=row["max_diameter_mm"], derivation=codes.SCT.Maximum,
                                unit=Code("mm", "UCUM", "millimeter")),
              hd.sr.Measurement(name=_private("endophytic_fraction"), value=row["endophytic_fraction"], unit=unitless),
              hd.sr.Measurement(name=_private("c_index"), value=row["c_index"], unit=unitless)]
    if math.isfinite(row["sinus_distance_mm"]):
        values.append(hd.sr.Measurement(name=_private("sinus_distance_mm"), value=row["sinus_distance_mm"],
                                        unit=Code("mm", "UCUM", "millimeter")))
    if record.nephrometry.points is not None:
        values += [hd.sr.Measurement(name=_private(item), value=row[item], unit=score)
                   for item in ("renal_r", "renal_e", "renal_n", "renal_l", "renal_score", "padua_location",
                                "padua_exophytic", "padua_rim", "padua_sinus", "padua_collecting_system", "padua_size",
                                "padua_score")]
    return values


def _nephrometry_evaluations(record: LesionRecord) -> list:
    """The nephrometry group's coded items (where scored): A, h (where decidable), the categories."""
    import highdicom as hd
    from pydicom.sr.coding import Code

    row, codes = record.nephrometry.to_row(), _codes()
    if record.nephrometry.points is None:
        return []
    evaluations = [hd.sr.QualitativeEvaluation(name=_private("renal_a"),
                                               value=Code(row["renal_a"], PRIVATE_SCHEME, _DESCRIPTORS[row["renal_a"]]))]
    if row["renal_h"] is not None:
        evaluations.append(hd.sr.QualitativeEvaluation(name=_private("renal_h"),
                                                       value=codes.SCT.Yes if row["renal_h"] else codes.SCT.No))
    evaluations += [hd.sr.QualitativeEvaluation(name=_private(item), value=Code(row[item], PRIVATE_SCHEME, row[item]))
                    for item in ("renal_category", "padua_category")]
    return evaluations


def _groups(record: LesionRecord, segmentation, segment_number: int) -> list:
    """The lesion's measurement group, and its nephrometry group when it was measured."""
    import highdicom as hd

    codes = _codes()
    reference = hd.sr.ReferencedSegment.from_segmentation(segmentation, segment_number)
    groups = [hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"mass {record.lesion_id}"),
        referenced_segment=reference, finding_type=codes.SCT.Mass, finding_sites=[_finding_site(record.side)],
        measurements=_measurements(record), qualitative_evaluations=_evaluations(record))]
    if record.nephrometry is not None and record.nephrometry.measurements is not None:
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"mass {record.lesion_id} nephrometry"),
            referenced_segment=reference, finding_type=codes.SCT.Mass, finding_sites=[_finding_site(record.side)],
            measurements=_nephrometry_measurements(record),
            qualitative_evaluations=_nephrometry_evaluations(record) or None))
    return groups


def build_measurement_report(segmentation, segments: Sequence[_Segment], lesions: Sequence[LesionRecord],
                             datasets: Sequence, run_record: dict):
    """The TID 1500 Comprehensive 3D SR: one volumetric measurement group per lesion (and one of its
    nephrometry), referencing its segment."""
    import highdicom as hd

    codes = _codes()
    by_lesion = {s.lesion_id: s for s in segments if s.lesion_id is not None}
    groups = []
    for record in lesions:
        groups += _groups(record, segmentation, by_lesion[record.lesion_id].number)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="renal_nnunet", manufacturer_name="renal_nnunet",
            model_name=_content_description(run_record)))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=groups)
    return hd.sr.Comprehensive3DSR(
        evidence=[*datasets, segmentation], content=report, series_instance_uid=hd.UID(), series_number=9002,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="renal_nnunet", is_complete=True,
        series_description="renal_nnunet renal mass measurements", software_versions=_software_versions(run_record))


def write_dicom_outputs(seg: sitk.Image, components: np.ndarray, lesions: Sequence[LesionRecord],
                        source_files: Sequence[str], output_dir: Path, case_id: str,
                        run_record: dict) -> tuple[dict[str, Path], list[str]]:
    """Write ``<case>_seg.dcm`` and ``<case>_sr.dcm`` for a case read from ``source_files`` (atomic).

    The source headers are read into memory and repaired there where the standard allows
    (:mod:`renal_nnunet.outputs.dicom_sources`); the source files are never written to. Both
    objects are built before either is written.

    Args:
        seg: the output labels on the source series' grid.
        components: lesion ids (z, y, x) on the same grid (each lesion's voxels hold its id).
        lesions: the lesion table rows.
        source_files: the series' slice files (any order).
        run_record: what produced the result (versions, device, settings, model hashes).

    Returns:
        Files written by kind (``dicom_seg``, ``dicom_sr``) and messages for the user (what was
        repaired in the source headers, what was not written). Nothing is written when nothing was
        found (no kidney, no mass); no SR when no mass was found.

    Raises:
        InputError: the series lacks an attribute the objects must copy or reference (nothing written).
    """
    from renal_nnunet.outputs.dicom_sources import read_source_headers

    if not _segments(sitk.GetArrayViewFromImage(seg), lesions):
        return {}, ["nothing found: no DICOM SEG or SR written"]
    datasets, notes = read_source_headers(source_files)
    segmentation, segments = build_segmentation(seg, components, lesions, datasets, run_record)
    objects = {"dicom_seg": (segmentation, DICOM_SEG_SUFFIX)}
    if lesions:
        report = build_measurement_report(segmentation, segments, lesions, datasets, run_record)
        objects["dicom_sr"] = (report, DICOM_SR_SUFFIX)
    else:
        notes.append("no renal masses: no DICOM SR written")
    files = {}
    for kind, (dataset, suffix) in objects.items():
        files[kind] = output_dir / f"{case_id}{suffix}"
        with atomic_path(files[kind]) as tmp:
            dataset.save_as(tmp)
    return files, notes


def read_dicom_seg_labels(seg_path: str | Path, source_files: Sequence[str]) -> np.ndarray:
    """Output labels (z, y, x) of a ``<case>_seg.dcm`` on its source series' slices, in the order
    of ``source_files`` (as ``SimpleITK.ImageSeriesReader`` stacks them)."""
    import highdicom as hd
    import pydicom

    segmentation = hd.seg.segread(seg_path)
    uids = [pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID
            for f in source_files]
    numbers = segmentation.get_pixels_by_source_instance(uids, combine_segments=True,
                                                         assert_missing_frames_are_empty=True)
    keys = {name: key for key, name in OUTPUT_LABEL_NAMES.items()}
    segments = []
    for number in segmentation.segment_numbers:
        label = segmentation.get_segment_description(number).SegmentLabel
        segments.append(_Segment(number, keys[label.split(" (mass ")[0]], "", None))
    return segment_labels(np.asarray(numbers), segments)
