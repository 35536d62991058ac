"""Input discovery, part splitting and the CT-intensity check (no models needed)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.io import (
    LOCALIZER_MAX_SLICES,
    InputError,
    find_dicom_series,
    read_dicom_series,
    read_series_or_image,
    select_part,
)
from renal_nnunet.pipeline.inputs import check_ct_intensities, discover_cases
from tests.pipeline.dicom_series import same_physical_volume, write_dicom_series
from tests.pipeline.real_dicom import add_localizer


def _ct(shape_zyx=(12, 24, 20), seed=0) -> sitk.Image:
    """Air around a water cylinder with a bone spot: a tiny CT in HU."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape_zyx)
    body = (y - shape_zyx[1] / 2) ** 2 + (x - shape_zyx[2] / 2) ** 2 < (min(shape_zyx[1:]) / 2.5) ** 2
    array = np.where(body, 40, -1000) + rng.normal(0, 10, shape_zyx)
    array[body & (x == shape_zyx[2] // 2) & (y == shape_zyx[1] // 2)] = 900
    image = sitk.GetImageFromArray(array.astype(np.int16))
    image.SetSpacing((1.5, 1.2, 3.0))
    image.SetOrigin((-20.0, 30.0, 100.0))
    return image


def test_discover_files_strips_suffix_and_channel_tag(tmp_path):
    for name in ("b_0000.nii.gz", "a.nii", "c.mha"):
        sitk.WriteImage(_ct(), str(tmp_path / name))
    (tmp_path / "notes.txt").write_text("not an image")
    cases = discover_cases(tmp_path)
    assert [c.case_id for c in cases] == ["a", "b", "c"]
    assert cases[1].path.name == "b_0000.nii.gz"


def test_discover_dicom_series_folder_and_folder_of_series(tmp_path):
    ct = sitk.DICOMOrient(_ct(), "LPI")
    write_dicom_series(ct, tmp_path / "series" / "patient1")
    write_dicom_series(_ct(seed=1), tmp_path / "series" / "patient2")
    one = discover_cases(tmp_path / "series" / "patient1")
    assert [(c.case_id, c.path.name) for c in one] == [("patient1", "patient1")]
    assert [c.case_id for c in discover_cases(tmp_path / "series")] == ["patient1", "patient2"]
    assert same_physical_volume(read_series_or_image(one[0].path), ct)


def test_discover_folder_mixing_files_and_series(tmp_path):
    sitk.WriteImage(_ct(), str(tmp_path / "b_0000.nii.gz"))
    write_dicom_series(_ct(seed=1), tmp_path / "a")
    write_dicom_series(_ct(seed=2), tmp_path / "c")
    (tmp_path / "not_dicom").mkdir()
    cases = discover_cases(tmp_path)
    assert [(c.case_id, c.path.name) for c in cases] == [("a", "a"), ("b", "b_0000.nii.gz"), ("c", "c")]


def test_discover_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        discover_cases(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        discover_cases(tmp_path / "empty")
    sitk.WriteImage(_ct(), str(tmp_path / "x.nii.gz"))
    sitk.WriteImage(_ct(), str(tmp_path / "x_0000.nii.gz"))
    with pytest.raises(InputError, match=r"same case id.*'x'"):
        discover_cases(tmp_path)


def test_parts_cover_every_case_once(tmp_path):
    for i in range(7):
        sitk.WriteImage(_ct(shape_zyx=(3, 4, 4)), str(tmp_path / f"case_{i}.nii.gz"))
    cases = discover_cases(tmp_path)
    parts = [select_part(cases, 3, k) for k in range(3)]
    assert sorted(c.case_id for part in parts for c in part) == [c.case_id for c in cases]
    assert [len(p) for p in parts] == [3, 2, 2]
    with pytest.raises(ValueError, match="part_id"):
        select_part(cases, 3, 3)


def test_ct_in_hu_passes():
    check_ct_intensities(_ct())


@pytest.mark.parametrize("transform, problem", [
    (lambda a: a + 1024, "no air"),                               # stored without the rescale intercept
    (lambda a: (a + 1000) / 2000.0, "no air"),                    # normalised to 0-1
    (lambda a: a * 10, "below -3100"),                            # wrong slope
    (lambda a: a * 0 - 1000, "no body"),                          # empty scan
])
def test_non_ct_intensities_raise_with_file_name(transform, problem):
    ct = _ct()
    bad = sitk.GetImageFromArray(transform(sitk.GetArrayFromImage(ct).astype(np.float32)))
    bad.CopyInformation(ct)
    with pytest.raises(InputError, match=rf"scan\.nii\.gz: does not look like a CT.*{problem}"):
        check_ct_intensities(bad, "scan.nii.gz")


def _edited_series(folder, edit) -> None:
    """Apply ``edit(z, dataset)`` to each slice file of a series (z = slice index as written);
    ``edit`` returns False to delete the file."""
    import pydicom

    for path in sorted(folder.glob("slice_*.dcm")):
        dataset = pydicom.dcmread(path)
        if edit(int(path.stem.split("_")[1]), dataset) is False:
            path.unlink()
        else:
            dataset.save_as(path)


def _shift(dataset, dx=0.0, dy=0.0, dz=0.0) -> None:
    x, y, z = (float(v) for v in dataset.ImagePositionPatient)
    dataset.ImagePositionPatient = [x + dx, y + dy, z + dz]


@pytest.mark.parametrize("edit, problem", [
    (lambda z, d: _shift(d, dz=1.0) if z >= 6 else None, r"uneven slice spacing: gaps from 3 to 4 mm"),
    (lambda z, d: False if z == 5 else None, r"missing slice\(s\): 1 after the slice at 112\.00 mm"),
    (lambda z, d: _shift(d, dy=z * 3.0 * np.tan(np.radians(15))), r"gantry tilt.* 15\.0 degrees"),
    (lambda z, d: setattr(d, "PhotometricInterpretation", "MONOCHROME1"), r"MONOCHROME1 \(an inverted grey scale\)"),
], ids=["uneven", "missing", "tilt", "monochrome1"])
def test_irregular_dicom_series_are_refused_naming_series_and_problem(tmp_path, edit, problem):
    write_dicom_series(_ct(), tmp_path / "s", uid_root="1.2.826.0.1.3680043.2.1125.77")
    read_series_or_image(tmp_path / "s")  # clean: reads as before
    _edited_series(tmp_path / "s", edit)
    with pytest.raises(InputError, match=rf"s: DICOM series 1\.2\.826\.0\.1\.3680043\.2\.1125\.77\.2 .*{problem}"):
        read_series_or_image(tmp_path / "s")


def test_several_series_in_a_folder_need_a_series_uid(tmp_path):
    first, second = _ct(seed=1), sitk.DICOMOrient(_ct(seed=2), "LPI")
    write_dicom_series(first, tmp_path / "two", uid_root="1.2.826.0.1.3680043.2.1125.81")
    write_dicom_series(second, tmp_path / "other", uid_root="1.2.826.0.1.3680043.2.1125.82")
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / "two" / f"b_{path.name}")
    with pytest.raises(InputError, match=r"two: folder holds 2 DICOM series \(.*\.81\.2, .*\.82\.2\); choose one "
                                         r"with --series-uid"):
        read_series_or_image(tmp_path / "two")
    with pytest.raises(InputError, match=r"no DICOM series 1\.2\.3 here"):
        read_series_or_image(tmp_path / "two", series_uid="1.2.3")
    assert same_physical_volume(read_series_or_image(tmp_path / "two", "1.2.826.0.1.3680043.2.1125.82.2"), second)
    assert same_physical_volume(read_series_or_image(tmp_path / "two", "1.2.826.0.1.3680043.2.1125.81.2"), first)


def test_localisers_in_a_series_are_left_out_with_a_note(tmp_path):
    """A coronal scout, an axial image typed LOCALIZER far from the stack, and a coronal image with no
    LOCALIZER type: the series reads as the CT alone, and the notes name each file and why."""
    ct = _ct()
    folder = write_dicom_series(ct, tmp_path / "s", uid_root="1.2.826.0.1.3680043.2.1125.91")
    add_localizer(folder, "scout_coronal.dcm")
    add_localizer(folder, "scout_axial.dcm", orientation=(1, 0, 0, 0, 1, 0), position=(-20, 30, 400))
    add_localizer(folder, "mpr_coronal.dcm", image_type=("DERIVED", "SECONDARY"))
    series = find_dicom_series(folder)
    assert same_physical_volume(read_dicom_series(series), ct) and len(series.files) == ct.GetDepth()
    assert series.left_out == (
        "left out 2 localiser image(s) (ImageType LOCALIZER): scout_axial.dcm, scout_coronal.dcm",
        "left out 1 image(s) as localisers: their orientation differs from the other 12 slices: mpr_coronal.dcm")
    assert same_physical_volume(read_series_or_image(folder), ct)


def test_a_localiser_series_beside_the_ct_series_is_left_out(tmp_path):
    ct = _ct()
    folder = write_dicom_series(ct, tmp_path / "s", uid_root="1.2.826.0.1.3680043.2.1125.92")
    add_localizer(folder, "topogram.dcm", series_uid="1.2.826.0.1.3680043.2.1125.92.9")
    series = find_dicom_series(folder)
    assert series.series_uid == "1.2.826.0.1.3680043.2.1125.92.2" and len(series.files) == ct.GetDepth()
    assert series.left_out == ("left out localiser series 1.2.826.0.1.3680043.2.1125.92.9 (ImageType LOCALIZER): "
                               "topogram.dcm",)


def test_more_stray_orientations_than_localisers_and_localisers_only_are_refused(tmp_path):
    folder = write_dicom_series(_ct(), tmp_path / "s", uid_root="1.2.826.0.1.3680043.2.1125.93")
    for k in range(LOCALIZER_MAX_SLICES + 1):
        add_localizer(folder, f"coronal_{k}.dcm", image_type=("DERIVED", "SECONDARY"), position=(-20, 30 + k, 100))
    with pytest.raises(InputError, match=r"s: DICOM series .*\(16 files\): the slices have different orientations "
                                         r"\(ImageOrientationPatient\): 4 of 16 differ from the rest"):
        read_series_or_image(folder)
    _edited_series(folder, lambda z, d: setattr(d, "ImageType", ["ORIGINAL", "PRIMARY", "LOCALIZER"]))
    for path in folder.glob("coronal_*.dcm"):
        path.unlink()
    with pytest.raises(InputError, match=r"holds only localiser images \(ImageType LOCALIZER\), no CT volume"):
        read_series_or_image(folder)
