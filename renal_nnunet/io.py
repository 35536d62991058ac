"""Image IO with clear errors and atomic writes.

Images are ``SimpleITK.Image`` objects everywhere in this package, so geometry (origin, spacing,
direction, all in ITK's LPS+ patient convention) always travels with the voxels. Arrays taken from
them with ``sitk.GetArrayFromImage`` are indexed (z, y, x), the reverse of ITK's (x, y, z) index.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import json
import logging
import os
import re
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, TypeVar

import numpy as np
import SimpleITK as sitk

__all__ = [
    "itk_messages_logged",
    "InputError",
    "read_image",
    "read_label_map",
    "write_image",
    "atomic_path",
    "write_json",
    "file_sha256",
    "read_series_or_image",
    "DicomSeries",
    "find_dicom_series",
    "dicom_series_files",
    "read_dicom_series",
    "check_same_geometry",
    "IMAGE_SUFFIXES",
    "CHANNEL_SUFFIX",
    "has_image_suffix",
    "case_id_from_path",
    "select_part",
]

IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")
"""File endings read as images (compared case-insensitively)."""

log = logging.getLogger(__name__)

CHANNEL_SUFFIX = "_0000"
"""nnU-Net's tag of a case's first (here: only) input channel, ``CASE_0000.nii.gz``."""


class InputError(ValueError):
    """A bad input file. The message names the file and the problem."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def has_image_suffix(path: str | os.PathLike) -> bool:
    """Whether the file name ends in one of :data:`IMAGE_SUFFIXES` (any letter case)."""
    return Path(path).name.lower().endswith(IMAGE_SUFFIXES)


def case_id_from_path(path: str | os.PathLike) -> str:
    """Case id of an image file or DICOM folder, the one rule every command names its outputs by.

    As in nnU-Net, the image suffix is removed and a trailing ``_0000`` channel tag dropped, so
    ``case_0000.nii.gz`` and ``case.nii.gz`` are both case ``case``.

    >>> case_id_from_path("/data/case_00012_0000.nii.gz")
    'case_00012'
    >>> case_id_from_path("/data/case_00012.NII.GZ")
    'case_00012'
    >>> case_id_from_path("/dicom/patient7/")
    'patient7'
    """
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[: -len(CHANNEL_SUFFIX)] if name.endswith(CHANNEL_SUFFIX) else name


_Case = TypeVar("_Case")


def select_part(cases: Sequence[_Case], num_parts: int, part_id: int) -> list[_Case]:
    """The share of ``cases`` for part ``part_id`` of ``num_parts`` (``cases[part_id::num_parts]``,
    as ``nnUNetv2_predict -num_parts/-part_id`` splits its inputs): the one rule every command that
    runs a batch in parts (``predict``, ``convert``) splits its cases by.

    >>> select_part(["a", "b", "c", "d", "e"], 2, 1)
    ['b', 'd']

    Raises:
        ValueError: ``part_id`` is not in ``[0, num_parts)``.
    """
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise ValueError(f"part_id must be in [0, num_parts); got part_id={part_id}, num_parts={num_parts}")
    return list(cases[part_id::num_parts])


NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_image(path: str | os.PathLike) -> sitk.Image:
    """Read a 3D image (NIfTI or anything SimpleITK reads) whose voxels are all finite.

    Raises:
        InputError: the file is missing, corrupt or truncated (a NIfTI shorter than its header
            says, compressed or not), has a sheared (non-orthogonal) affine, holds NaN or infinite
            voxels, or is not a single-channel 3D image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder, not an image file")
    if path.name.endswith(".gz"):
        _require_complete_gzip(path)
    is_nifti = path.name.lower().endswith(NIFTI_SUFFIXES)
    if is_nifti:
        _require_complete_nifti(path)
    try:
        image = sitk.ReadImage(str(path))
        # Truncated gzip streams only fail once the voxels are decompressed.
        array = sitk.GetArrayViewFromImage(image)
    except RuntimeError as err:
        message = str(err).strip()
        if "orthonormal direction" in message:
            raise InputError(path, "direction not orthogonal (the affine is sheared or skewed): ITK, and so this "
                                   "package, needs orthogonal voxel axes; resample the image onto an orthogonal grid "
                                   "first (e.g. with nibabel.processing.resample_from_to or 3D Slicer)") from None
        first_line = message.splitlines()[-1] if message else "unreadable"
        raise InputError(path, f"cannot be read (corrupt or truncated?): {first_line}") from None
    _require_3d(image, path)
    # SimpleITK's NIfTI reader turns NaN and inf into 0, so a NIfTI is checked on its raw voxels.
    _require_finite(_raw_nifti_voxels(path) if is_nifti else array.T, path)
    return image


def _require_complete_nifti(path: Path) -> None:
    """Raise ``InputError`` unless the NIfTI holds every voxel its header announces (ITK reads
    the missing slices of an uncompressed ``.nii`` as 0 without an error)."""
    import nibabel as nib

    try:
        header = nib.load(str(path)).header
    except Exception as err:  # nibabel's errors for a bad header have no common base class
        raise InputError(path, f"cannot be read as NIfTI (corrupt header?): {err}") from None
    expected = int(np.prod(header.get_data_shape(), dtype=np.int64)) * header.get_data_dtype().itemsize
    if path.name.lower().endswith(".gz"):
        return  # the gzip stream was checked to its end marker; nibabel checks the size on reading
    offset = max(int(header["vox_offset"]), header.single_vox_offset)
    available = path.stat().st_size - offset
    if available < expected:
        raise InputError(path, f"is truncated: its header announces {expected} bytes of voxels, the file holds "
                               f"{max(available, 0)} (an interrupted copy or download?)")


def _raw_nifti_voxels(path: Path) -> np.ndarray:
    """A NIfTI's voxels as stored (scaled by its slope and intercept), read by nibabel, indexed
    (x, y, z) as ITK counts; integer data without scaling is not read (it cannot hold NaN or inf)."""
    import nibabel as nib

    image = nib.load(str(path))
    slope, intercept = image.header.get_slope_inter()
    if np.issubdtype(image.header.get_data_dtype(), np.integer) and all(
            v is None or np.isfinite(v) for v in (slope, intercept)):
        return np.zeros(0, np.int8)
    try:
        return np.asanyarray(image.dataobj)
    except (OSError, ValueError, EOFError) as err:
        raise InputError(path, f"cannot be read (corrupt or truncated?): {err}") from None


def _require_finite(array_xyz: np.ndarray, path: Path) -> None:
    """Raise ``InputError`` naming the count and the first voxel (ITK x, y, z index) of NaN or
    infinite values."""
    if not np.issubdtype(array_xyz.dtype, np.floating):
        return
    bad = ~np.isfinite(array_xyz)
    count = int(np.count_nonzero(bad))
    if count:
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
        raise InputError(path, f"holds {count} non-finite voxel(s) (NaN or infinite), the first at voxel {where}: "
                               "an image must have a finite value in every voxel; fix the export (or fill them) "
                               "before predicting")


def _require_complete_gzip(path: Path) -> None:
    """Raise ``InputError`` unless the gzip stream reaches its end marker.

    ITK zero-fills the missing voxels of some truncated ``.nii.gz`` files without an error (seen on
    real KiTS23 label maps cut in half), so the stream is checked here (~20 % of the read time).
    """
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (EOFError, OSError, zlib.error) as err:
        raise InputError(path, f"cannot be read (corrupt or truncated?): {err}") from None


def _require_3d(image: sitk.Image, path: str | os.PathLike | None) -> None:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; expected a scalar 3D image")
    size = image.GetSize()
    if image.GetDimension() != 3:
        raise InputError(path, f"is {image.GetDimension()}D with size {size}; expected a 3D image")
    if min(size) < 2:
        raise InputError(path, f"is effectively 2D (size {size}); expected a 3D volume")


def read_label_map(
    path: str | os.PathLike,
    allowed_labels: set[int] | None = None,
    reference: sitk.Image | None = None,
    reference_path: str | os.PathLike | None = None,
) -> sitk.Image:
    """Read an integer label map, optionally checking its values and its geometry.

    Args:
        path: the label file.
        allowed_labels: values that may occur; others raise.
        reference: an image whose grid the label map must share (e.g. the CT it belongs to).
        reference_path: name of the reference, for the error message.

    Raises:
        InputError: unreadable file, non-integer or unknown labels, or a geometry mismatch.
    """
    label = read_image(path)
    array = sitk.GetArrayViewFromImage(label)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.mod(array, 1) == 0):
            raise InputError(path, f"label map has non-integer values (dtype {array.dtype})")
        label = sitk.Cast(label, sitk.sitkUInt8 if array.min() >= 0 and array.max() < 256 else sitk.sitkInt32)
        array = sitk.GetArrayViewFromImage(label)
    if allowed_labels is not None:
        present = {int(v) for v in np.unique(array)}
        unknown = sorted(present - set(allowed_labels))
        if unknown:
            raise InputError(path, f"unknown label values {unknown}; allowed are {sorted(allowed_labels)}")
    if reference is not None:
        check_same_geometry(reference, label, reference_path, path)
    return label


def check_same_geometry(
    a: sitk.Image,
    b: sitk.Image,
    name_a: str | os.PathLike | None = None,
    name_b: str | os.PathLike | None = None,
    tolerance_mm: float = 1e-3,
) -> None:
    """Raise ``InputError`` unless ``a`` and ``b`` share size, spacing, origin and direction.

    Spacing and origin are compared in mm with ``tolerance_mm``; direction cosines with 1e-4.
    """
    problems = []
    if a.GetSize() != b.GetSize():
        problems.append(f"size {b.GetSize()} != {a.GetSize()}")
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance_mm):
        problems.append(f"spacing {b.GetSpacing()} != {a.GetSpacing()}")
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance_mm):
        problems.append(f"origin {b.GetOrigin()} != {a.GetOrigin()}")
    if not np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4):
        problems.append(f"direction {b.GetDirection()} != {a.GetDirection()}")
    if problems:
        raise InputError(
            name_b,
            f"geometry does not match {name_a or 'the reference image'}: " + "; ".join(problems)
            + ". Resample it onto the image grid first (e.g. SimpleITK.Resample with the image as reference).",
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the file's suffixes (``.nii.gz``), so writers that choose a format by
    extension still work. Nothing half-written is left behind on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    # A fresh name, not a mkstemp file: the writer creates it, so it gets the usual (umask) permissions.
    tmp = path.with_name(f".{path.name.split('.')[0]}.{os.getpid()}.{uuid.uuid4().hex[:12]}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> Path:
    """Write ``image`` atomically (temp file, then rename). Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path


def write_json(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically. Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (hex): what names a model file's content (provenance, caches).

    Remembered per process by the file's resolved path, size, modification time and inode: a
    prediction asks for each checkpoint's hash several times (its OpenVINO cache name, its
    agreement record, the run record), and a 128^3 U-Net checkpoint is hundreds of MB. A file
    rewritten in place (new mtime or size) or replaced (new inode) is hashed again.
    """
    status = os.stat(path)
    return _content_sha256(str(Path(path).resolve()), status.st_size, status.st_mtime_ns, status.st_ino)


@functools.lru_cache(maxsize=1024)
def _content_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


SLICE_SPACING_TOLERANCE = 0.01
"""Allowed relative deviation of a slice gap from the series' median gap (and of the slice
direction from the slice normal, as the sine of the angle); larger deviations are refused."""

LOCALIZER_MAX_SLICES = 3
"""At most this many slices whose orientation differs from the rest of their series are left out as
localisers (scouts); more are refused as a series of mixed orientations."""

_SERIES_TAGS = ["ImagePositionPatient", "ImageOrientationPatient", "GantryDetectorTilt", "ImageType",
                "PhotometricInterpretation"]


@dataclass(frozen=True)
class DicomSeries:
    """The slices of one DICOM series in a folder, in the order they are stacked, and what was left out.

    Attributes:
        folder: the folder holding the series.
        series_uid: its SeriesInstanceUID.
        files: the slice files, ascending along the slice normal (the order SimpleITK stacks them in).
        left_out: notes on the localiser images (or series) left out, naming the files and why.
    """

    folder: Path
    series_uid: str
    files: tuple[str, ...]
    left_out: tuple[str, ...] = ()


def find_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> DicomSeries:
    """The one DICOM series in ``folder`` (or the one ``series_uid`` names), localisers left out.

    Left out, each with a note: slices whose ImageType holds ``LOCALIZER``; up to
    :data:`LOCALIZER_MAX_SLICES` slices whose orientation differs from the rest of the series; and,
    when the folder holds several series, series made only of ``LOCALIZER`` images. The other slices
    must form one regular volume: one orientation, no gantry tilt (slices stacked along their
    normal), no two slices at one position, even slice gaps (within :data:`SLICE_SPACING_TOLERANCE`;
    a gap of about k gaps is reported as k - 1 missing slices).

    Raises:
        InputError: naming the folder, the series and the problem: no series, several series and
            no ``series_uid``, an unknown ``series_uid``, only localisers, or slices that do not
            form one regular volume.
    """
    folder = Path(folder)
    with itk_messages_logged(folder):
        series_ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not series_ids:
        raise InputError(folder, "folder holds no DICOM series")
    if series_uid is not None and series_uid not in series_ids:
        raise InputError(folder, f"no DICOM series {series_uid} here; the folder holds {', '.join(series_ids)}")
    left_out = []
    if series_uid is None and len(series_ids) > 1:
        files_of = {uid: _gdcm_files(folder, uid) for uid in series_ids}
        scouts = {uid: files for uid, files in files_of.items()
                  if all(_is_localizer(h) for h in _headers(files, ["ImageType"]))}
        if len(scouts) < len(series_ids):
            series_ids = [uid for uid in series_ids if uid not in scouts]
            left_out = [f"left out localiser series {uid} (ImageType LOCALIZER): {_names(files)}"
                        for uid, files in scouts.items()]
    if series_uid is None and len(series_ids) > 1:
        raise InputError(folder, f"folder holds {len(series_ids)} DICOM series ({', '.join(series_ids)}); "
                                 "choose one with --series-uid (series_uid=...) or give one series per folder")
    uid = series_uid or series_ids[0]
    files = _gdcm_files(folder, uid)
    name = f"DICOM series {uid} ({len(files)} files)"
    headers = _headers(files, _SERIES_TAGS)
    kept, notes = _leave_out_localizers(files, headers, name, folder)
    _refuse_inverted_grey_scale([headers[i] for i in kept], name, folder)
    order = _check_series_geometry([headers[i] for i in kept], name, folder)
    return DicomSeries(folder, uid, tuple(files[kept[i]] for i in order), tuple(left_out + notes))


def dicom_series_files(folder: str | os.PathLike, series_uid: str | None = None) -> list[str]:
    """The slice files of :func:`find_dicom_series` (localisers left out), in stacking order."""
    return list(find_dicom_series(folder, series_uid).files)


def _gdcm_files(folder: Path, uid: str) -> list[str]:
    with itk_messages_logged(folder):
        return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))


def _headers(files: Sequence[str], tags: list[str]) -> list:
    import pydicom

    return [pydicom.dcmread(f, stop_before_pixels=True, specific_tags=tags) for f in files]


def _names(files: Sequence[str]) -> str:
    return ", ".join(Path(f).name for f in files)


def _is_localizer(header) -> bool:
    """Whether a slice's ImageType (any value) says ``LOCALIZER`` (a scout or topogram)."""
    image_type = header.get("ImageType") or []
    values = [image_type] if isinstance(image_type, str) else list(image_type)
    return any(str(v).strip().upper() == "LOCALIZER" for v in values)


def _leave_out_localizers(files: Sequence[str], headers: Sequence, series: str,
                          folder: Path) -> tuple[list[int], list[str]]:
    """Indices of the slices to keep, and notes on the localisers left out (see :func:`find_dicom_series`)."""
    localizer = np.array([_is_localizer(h) for h in headers], bool)
    candidates = np.flatnonzero(~localizer)
    if not len(candidates):
        raise InputError(folder, f"{series}: holds only localiser images (ImageType LOCALIZER), no CT volume")
    try:
        orientations = np.array([[float(v) for v in headers[i].ImageOrientationPatient] for i in candidates])
    except AttributeError as err:
        raise InputError(folder, f"{series}: a slice lacks {str(err).split()[-1]}") from None
    same = np.abs(orientations[:, None, :] - orientations[None, :, :]).max(axis=2) <= SLICE_SPACING_TOLERANCE
    stray = candidates[~same[same.sum(axis=1).argmax()]]
    if len(stray) > LOCALIZER_MAX_SLICES:
        raise InputError(folder, f"{series}: the slices have different orientations (ImageOrientationPatient): "
                                 f"{len(stray)} of {len(candidates)} differ from the rest, more than the "
                                 f"{LOCALIZER_MAX_SLICES} left out as localisers")
    notes = []
    if localizer.any():
        notes.append(f"left out {localizer.sum()} localiser image(s) (ImageType LOCALIZER): "
                     f"{_names([files[i] for i in np.flatnonzero(localizer)])}")
    if len(stray):
        notes.append(f"left out {len(stray)} image(s) as localisers: their orientation differs from the other "
                     f"{len(candidates) - len(stray)} slices: {_names([files[i] for i in stray])}")
    return sorted(set(candidates) - set(stray)), notes


def _refuse_inverted_grey_scale(headers: Sequence, series: str, folder: Path) -> None:
    """Refuse MONOCHROME1 slices: the reader inverts their grey scale for display, so their values
    would come out inverted (air high, soft tissue low: -1000 and 40 HU read as 999 and -41), not HU."""
    inverted = sum(str(h.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1" for h in headers)
    if inverted:
        raise InputError(folder, f"{series}: {inverted} slice(s) are MONOCHROME1 (an inverted grey scale): read as "
                                 "stored they would not be HU; export the series as MONOCHROME2, as CT is stored")


def _check_series_geometry(headers: Sequence, series: str, folder: Path) -> np.ndarray:
    """Order of ``headers`` (slices of one orientation) ascending along the slice normal, after
    checking they form one regular volume (see :func:`find_dicom_series`)."""
    if len(headers) < 2:
        return np.arange(len(headers))
    try:
        orientation = np.array([float(v) for v in headers[0].ImageOrientationPatient])
        positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    except AttributeError as err:
        raise InputError(folder, f"{series}: a slice lacks {str(err).split()[-1]}") from None
    normal = np.cross(orientation[:3], orientation[3:])
    order = np.argsort(positions @ normal, kind="stable")
    offsets = positions[order] - positions[order[0]]
    tilt = float(np.max(np.linalg.norm(np.cross(offsets, normal), axis=1) / np.maximum(offsets @ normal, 1e-9)))
    gantry = float(getattr(headers[0], "GantryDetectorTilt", 0) or 0)
    if tilt > SLICE_SPACING_TOLERANCE:
        raise InputError(folder, f"{series}: gantry tilt: the slices are stacked {np.degrees(np.arctan(tilt)):.1f} "
                                 f"degrees off their normal (GantryDetectorTilt {gantry:g}); resample it to an "
                                 "untilted volume first")
    gaps = np.diff(offsets @ normal)
    median = float(np.median(gaps))
    if gaps.min() < SLICE_SPACING_TOLERANCE * median or median <= 0:
        raise InputError(folder, f"{series}: two slices share one position (duplicate slices)")
    uneven = np.flatnonzero(np.abs(gaps - median) > SLICE_SPACING_TOLERANCE * median)
    if not len(uneven):
        return order
    steps = gaps[uneven] / median
    if np.all(np.abs(steps - np.round(steps)) < SLICE_SPACING_TOLERANCE * steps) and np.all(steps > 1.5):
        missing = ", ".join(f"{int(round(k)) - 1} after the slice at {float(positions[order[i]] @ normal):.2f} mm"
                            for i, k in zip(uneven, steps))
        raise InputError(folder, f"{series}: missing slice(s): {missing} along the slice normal "
                                 f"(slice gap {median:.4g} mm)")
    raise InputError(folder, f"{series}: uneven slice spacing: gaps from {gaps.min():.4g} to {gaps.max():.4g} mm "
                             f"(median {median:.4g} mm); resample it to even slices first")


def read_dicom_series(series: DicomSeries) -> sitk.Image:
    """Read the slices of ``series`` (any transfer syntax GDCM decodes: uncompressed, JPEG Lossless,
    JPEG 2000, JPEG-LS, RLE) as one 3D image, in HU when the slices carry a rescale.

    Raises:
        InputError: the pixel data cannot be decoded or do not form a 3D volume.
    """
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series.files))
    try:
        with itk_messages_logged(series.folder):
            image = reader.Execute()
    except RuntimeError as err:
        raise InputError(series.folder, f"DICOM series cannot be read: {str(err).strip().splitlines()[-1]}") from None
    _require_3d(image, series.folder)
    return image


_ITK_MESSAGE = re.compile(r"^\s*(?:WARNING|ERROR): In .*?, line \d+\s*\n\s*(\w+) \(0x[0-9a-fA-F]+\): (.*)$", re.DOTALL)
_ITK_SERIES_SPACING = "Non uniform sampling or missing slices detected"
"""ImageSeriesReader's warning on any slice-gap variation above 1e-4 of a gap: rounding noise of
ImagePositionPatient. :func:`find_dicom_series` checks the gaps itself before reading (and refuses
gaps beyond :data:`SLICE_SPACING_TOLERANCE`), so this one is detail for the debug log."""


class _ItkMessages(sitk.LoggerBase):
    """Collects the text ITK (and GDCM's ImageIO through it) would print to stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[int, str]] = []

    def DisplayText(self, text: str) -> None:  # noqa: N802 (ITK's names)
        self.messages.append((logging.DEBUG, text))

    def DisplayGenericOutputText(self, text: str) -> None:  # noqa: N802
        self.messages.append((logging.DEBUG, text))

    def DisplayDebugText(self, text: str) -> None:  # noqa: N802
        self.messages.append((logging.DEBUG, text))

    def DisplayWarningText(self, text: str) -> None:  # noqa: N802
        self.messages.append((logging.WARNING, text))

    def DisplayErrorText(self, text: str) -> None:  # noqa: N802
        self.messages.append((logging.ERROR, text))


@contextlib.contextmanager
def itk_messages_logged(source: str | os.PathLike) -> Iterator[None]:
    """Within the block, what ITK and GDCM would print to the console ("WARNING: In .../
    itkGDCMImageIO.cxx, line ...") goes to this module's log instead, naming ``source``.

    ITK prints its warnings straight to the process's stderr, between the package's own log lines
    and progress bars, without saying which file they concern. Here each one becomes a log record
    that names ``source`` and says the warning in ITK's words (source file, line and object address
    dropped): warnings at WARNING (except ImageSeriesReader's slice-gap note, see
    :data:`_ITK_SERIES_SPACING`, at DEBUG), errors at ERROR, other text at DEBUG. Errors still
    raise as before. The previous ITK logger is restored after the block.

    (Turning ITK's warning display off instead would lose the warnings' text, which can matter:
    e.g. a rescale GDCM could not apply.)
    """
    collector = _ItkMessages()
    previous = collector.SetAsGlobalITKLogger()
    try:
        yield
    finally:
        previous.SetAsGlobalITKLogger()
        for level, text in collector.messages:
            match = _ITK_MESSAGE.match(text)
            who, what = (match.group(1), " ".join(match.group(2).split())) if match else ("ITK", " ".join(text.split()))
            if level == logging.WARNING and what.startswith(_ITK_SERIES_SPACING):
                level = logging.DEBUG
            log.log(level, "%s: the DICOM reader (%s) says: %s", source, who, what)


def read_series_or_image(path: str | os.PathLike, series_uid: str | None = None) -> sitk.Image:
    """Read a CT from a NIfTI (or other single) file, or from a folder holding a DICOM series.

    Args:
        path: the file or the series folder.
        series_uid: SeriesInstanceUID of the series to read when the folder holds several.

    Raises:
        InputError: missing path, no DICOM series, several and none chosen, slices that do not form
            a regular volume (see :func:`find_dicom_series`; localisers left out are logged), unreadable data.
    """
    path = Path(path)
    if path.is_dir():
        series = find_dicom_series(path, series_uid)
        for note in series.left_out:
            log.warning("%s: %s", path, note)
        return read_dicom_series(series)
    return read_image(path)
