"""Variants of the real CT series as hospitals and archives export them: blank attributes, compressed
transfer syntaxes, a localiser in the folder. Each variant is a copy of 20 slices; the shared
series is never written to."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pydicom

REAL_SLICES = tuple(f"1-{i:03d}.dcm" for i in range(51, 71))
"""20 of the real series' 134 slices, through both kidneys (z index 64-83 of the whole series)."""

TRANSFER_SYNTAXES = {
    "jpeg_lossless": ("1.2.840.10008.1.2.4.70", "JPEGLosslessProcess14_1"),
    "jpeg_lossless_p14": ("1.2.840.10008.1.2.4.57", "JPEGLosslessProcess14"),
    "jpeg2000": ("1.2.840.10008.1.2.4.90", "JPEG2000Lossless"),
    "rle": ("1.2.840.10008.1.2.5", "RLELossless"),
    "jpegls": ("1.2.840.10008.1.2.4.80", "JPEGLSLossless"),
}
"""Variant name -> (transfer syntax UID, python-gdcm's name for it): the lossless syntaxes PACS export."""

BLANKED_TYPE2 = ("PatientID", "PatientName", "StudyDate", "ReferringPhysicianName")
DELETED_TYPE2 = ("PatientBirthDate", "PatientSex", "StudyTime", "StudyID", "AccessionNumber")
"""Type 2 attributes the ``blank_type2`` variant leaves empty, and those it removes."""


def copy_slices(src: Path, dst: Path, names=REAL_SLICES) -> Path:
    dst.mkdir(parents=True)
    for name in names:
        shutil.copyfile(src / name, dst / name)
    return dst


def edit_slices(folder: Path, edit: Callable) -> Path:
    """Apply ``edit(dataset)`` to every slice file of ``folder`` (pixel data kept as stored)."""
    for path in sorted(folder.glob("*.dcm")):
        dataset = pydicom.dcmread(path)
        edit(dataset)
        dataset.save_as(path)
    return folder


def blank_sop_class(dataset) -> None:
    dataset.SOPClassUID = ""  # the file meta still says CT Image Storage, as de-identification tools leave it


def blank_type2(dataset) -> None:
    for keyword in BLANKED_TYPE2:
        setattr(dataset, keyword, "")
    for keyword in DELETED_TYPE2:
        delattr(dataset, keyword)


def encode_slices(src: Path, dst: Path, gdcm_syntax: str) -> Path:
    """Re-encode each slice's pixel data with python-gdcm; every other element is kept byte for byte
    (``gdcm.ImageWriter`` would add RescaleType 'US', which dciodvfy flags on an ORIGINAL CT)."""
    import gdcm

    dst.mkdir(parents=True)
    for path in sorted(src.glob("*.dcm")):
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        assert reader.Read(), path
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, gdcm_syntax)))
        change.SetInput(reader.GetImage())
        assert change.Change(), (path, gdcm_syntax)
        file = reader.GetFile()
        file.GetDataSet().Replace(change.GetOutput().GetDataElement())
        file.GetHeader().SetDataSetTransferSyntax(change.GetOutput().GetTransferSyntax())
        writer = gdcm.Writer()
        writer.SetFile(file)
        writer.SetFileName(str(dst / path.name))
        assert writer.Write(), dst / path.name
    return dst


def add_localizer(folder: Path, name: str = "0-scout.dcm", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                  orientation=(1, 0, 0, 0, 0, -1), position=(-275, 0, 400), series_uid: str | None = None) -> Path:
    """Add a scout to the series in ``folder``: a copy of its first slice with ``image_type``,
    ``orientation`` (default coronal) and ``position``, a new instance UID, and the same series
    unless ``series_uid`` is given."""
    scout = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0])
    scout.ImageType = list(image_type)
    scout.ImageOrientationPatient, scout.ImagePositionPatient = list(orientation), list(position)
    scout.SOPInstanceUID = scout.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    scout.SeriesInstanceUID = series_uid or scout.SeriesInstanceUID
    scout.InstanceNumber = 0
    scout.save_as(folder / name)
    return folder / name


def real_series_variants(src: Path, root: Path) -> dict[str, Path]:
    """The variants, by name (also their case id), each in its own folder under ``root``.

    ``plain`` is the 20 slices as stored; ``blank_sop_class`` has an empty SOP Class UID;
    ``blank_type2`` blank and absent type 2 patient/study attributes; one per compressed transfer
    syntax (:data:`TRANSFER_SYNTAXES`); ``localizer`` has a coronal scout added.
    """
    plain = copy_slices(src, root / "plain")
    variants = {"plain": plain,
                "blank_sop_class": edit_slices(copy_slices(src, root / "blank_sop_class"), blank_sop_class),
                "blank_type2": edit_slices(copy_slices(src, root / "blank_type2"), blank_type2)}
    for name, (_, gdcm_syntax) in TRANSFER_SYNTAXES.items():
        variants[name] = encode_slices(plain, root / name, gdcm_syntax)
    variants["localizer"] = copy_slices(src, root / "localizer")
    add_localizer(variants["localizer"])
    return variants


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's ``Error`` lines for a file (its exit code is 0 with some errors, so the lines count)."""
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
