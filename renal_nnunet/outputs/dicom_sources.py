"""The source slices' headers as the DICOM SEG and SR reference them: read into memory, repaired where
the standard allows, never written back to the user's files.

Series from hospitals and public archives are often incomplete in ways the standard tolerates in
the images but a derived object must not copy:

- an empty SOP Class UID (0008,0016), left by de-identification tools and some exporters: it is
  taken from the file meta's Media Storage SOP Class UID (0002,0002), which PS3.10 7.1 makes the
  same value;
- absent type 2 patient and study attributes (Patient ID, Study ID, Accession Number, dates...):
  the SEG and SR copy them, and type 2 allows them present with an empty value, so they are set
  empty (blank ones already are);
- an absent or empty Slice Thickness (0018,0050): the SEG's Pixel Measures need one (type 1C for
  a volume), so the slice gap is used.

What cannot be repaired is refused with an :class:`~renal_nnunet.io.InputError` that names the
attribute and why the objects need it (:data:`REQUIRED`).
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Sequence

import numpy as np

from renal_nnunet.io import InputError

__all__ = ["TYPE2_COPIED", "REQUIRED", "read_source_headers", "repaired_source_headers"]

TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "AccessionNumber", "StudyID", "ReferringPhysicianName")
"""Type 2 attributes of the source's Patient and General Study modules that the SEG and SR copy."""

REQUIRED = {
    "StudyInstanceUID": "the SEG and SR belong to the study of the images they describe",
    "SeriesInstanceUID": "the SEG and SR reference the source series",
    "SOPInstanceUID": "each SEG frame references the source slice it lies on",
    "FrameOfReferenceUID": "a Segmentation shares the frame of reference of its source images",
    "PixelSpacing": "the SEG's pixel measures are those of its source images",
}
"""Type 1 attributes the SEG and SR copy or reference, with why (missing or empty: nothing is written)."""


def read_source_headers(files: Sequence[str]) -> tuple[list, list[str]]:
    """The headers (no pixel data) of a series' slice files, repaired by :func:`repaired_source_headers`.

    Returns:
        The datasets in the order of ``files``, and notes for the user on what was repaired.

    Raises:
        InputError: an attribute the objects need is missing (see :func:`repaired_source_headers`).
    """
    import pydicom

    return repaired_source_headers([pydicom.dcmread(f, stop_before_pixels=True) for f in files])


def repaired_source_headers(datasets: Sequence) -> tuple[list, list[str]]:
    """Copies of the slice headers ``datasets`` (one series) that the SEG and SR can copy and reference.

    The inputs are not changed. Repairs (see the module docstring): an empty or absent SOP Class UID
    from the file meta, absent type 2 patient/study attributes set empty, an absent or empty Slice
    Thickness set to the slice gap (mm).

    Returns:
        The repaired copies, in the order given, and one note per kind of repair (how many slices).

    Raises:
        InputError: a :data:`REQUIRED` attribute, or the SOP Class UID in both the dataset and its
            file meta, is missing or empty; the message names the attribute and the reason.
    """
    repaired = [copy.deepcopy(ds) for ds in datasets]
    notes = [_sop_class_from_file_meta(repaired)]
    for keyword, why in REQUIRED.items():
        lacking = [ds for ds in repaired if not ds.get(keyword)]
        if lacking:
            raise InputError(_file(lacking), f"{_name(keyword)} is missing or empty in {len(lacking)} of "
                                             f"{len(repaired)} slice(s): {why}")
    absent = Counter(keyword for ds in repaired for keyword in TYPE2_COPIED if keyword not in ds)
    for ds in repaired:
        for keyword in TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, None)  # present and empty, as type 2 allows
    if absent:
        notes.append("absent type 2 attribute(s) copied into the DICOM SEG/SR as empty: "
                     + ", ".join(f"{_name(k)} ({n} slice(s))" for k, n in absent.items()))
    notes.append(_slice_thickness_from_gap(repaired))
    return repaired, [n for n in notes if n]


def _sop_class_from_file_meta(datasets: Sequence) -> str:
    """Fill empty or absent SOP Class UIDs from the file meta; a note, or '' when none was empty."""
    blank = [ds for ds in datasets if not ds.get("SOPClassUID")]
    if not blank:
        return ""
    for ds in blank:
        meta_uid = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
        if not meta_uid:
            raise InputError(_file([ds]), "SOP Class UID (0008,0016) is empty and the file meta has no Media "
                                          "Storage SOP Class UID (0002,0002): the SEG and SR must name the class "
                                          "of the images they reference")
        ds.SOPClassUID = meta_uid
    return (f"SOP Class UID (0008,0016) empty in {len(blank)} of {len(datasets)} slice(s): taken from the file "
            f"meta's Media Storage SOP Class UID ({blank[0].SOPClassUID.name}) for the DICOM SEG/SR; the input "
            "files are not changed")


def _slice_thickness_from_gap(datasets: Sequence) -> str:
    """Set an absent or empty Slice Thickness to the slice gap (mm); a note, or '' when none was."""
    blank = [ds for ds in datasets if ds.get("SliceThickness") in (None, "")]
    if not blank or len(datasets) < 2:
        return ""
    orientation = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    along = np.sort([np.dot([float(v) for v in ds.ImagePositionPatient], normal) for ds in datasets])
    gap_mm = float(np.median(np.diff(along)))
    for ds in blank:
        ds.SliceThickness = f"{gap_mm:.6g}"
    return (f"Slice Thickness (0018,0050) absent or empty in {len(blank)} slice(s): the DICOM SEG's pixel "
            f"measures use the slice gap, {gap_mm:.6g} mm")


def _name(keyword: str) -> str:
    """``Frame of Reference UID (0020,0052)`` for ``FrameOfReferenceUID``."""
    from pydicom.datadict import dictionary_description, tag_for_keyword

    tag = tag_for_keyword(keyword)
    return f"{dictionary_description(keyword)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _file(datasets: Sequence) -> str | None:
    return getattr(datasets[0], "filename", None) if datasets else None
