"""Clear errors for bad input files, and atomic writes."""

from __future__ import annotations

import gzip
import os
import stat

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.io import InputError, atomic_path, check_same_geometry, read_image, read_label_map, write_image


def _volume(shape_zyx=(6, 7, 8), value=0) -> sitk.Image:
    image = sitk.GetImageFromArray(np.full(shape_zyx, value, np.int16))
    image.SetSpacing((0.8, 0.9, 2.5))
    return image


def test_read_image_round_trip_keeps_geometry(tmp_path):
    image = _volume()
    image.SetOrigin((10.0, -5.0, 3.0))
    image.SetDirection((0, 0, 1, 0, 1, 0, -1, 0, 0))
    path = write_image(image, tmp_path / "ct.nii.gz")
    back = read_image(path)
    check_same_geometry(image, back)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.nii.gz: file does not exist"):
        read_image(tmp_path / "missing.nii.gz")


def test_truncated_gzip_is_a_clear_error(tmp_path):
    path = write_image(_volume(value=7), tmp_path / "ct.nii.gz")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated.nii.gz: cannot be read"):
        read_image(truncated)


def test_corrupt_file_is_a_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    with pytest.raises(InputError, match="corrupt.nii.gz"):
        read_image(corrupt)


def test_2d_and_4d_images_are_rejected(tmp_path):
    flat = sitk.GetImageFromArray(np.zeros((5, 6), np.int16))
    write_image(flat, tmp_path / "flat.nii.gz")
    with pytest.raises(InputError, match="flat.nii.gz: is 2D"):
        read_image(tmp_path / "flat.nii.gz")
    single_slice = sitk.GetImageFromArray(np.zeros((1, 5, 6), np.int16))
    write_image(single_slice, tmp_path / "slice.nii.gz")
    with pytest.raises(InputError, match="slice.nii.gz: is effectively 2D"):
        read_image(tmp_path / "slice.nii.gz")
    four_d = sitk.JoinSeries([_volume(), _volume()])
    write_image(four_d, tmp_path / "four.nii.gz")
    with pytest.raises(InputError, match="four.nii.gz: is 4D"):
        read_image(tmp_path / "four.nii.gz")


def test_unknown_labels_and_geometry_mismatch(tmp_path):
    labels = sitk.GetImageFromArray(np.array([0, 1, 2, 9] * 84, np.uint8).reshape(6, 7, 8))
    labels.SetSpacing((0.8, 0.9, 2.5))
    write_image(labels, tmp_path / "seg.nii.gz")
    with pytest.raises(InputError, match=r"seg.nii.gz: unknown label values \[9\]"):
        read_label_map(tmp_path / "seg.nii.gz", allowed_labels={0, 1, 2, 3})
    ct = _volume()
    ct.SetSpacing((0.8, 0.9, 3.0))
    with pytest.raises(InputError, match="seg.nii.gz: geometry does not match ct.nii.gz: spacing"):
        read_label_map(tmp_path / "seg.nii.gz", reference=ct, reference_path="ct.nii.gz")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "ct.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer crashed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_image(_volume(), tmp_path / "ct.nii.gz")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("name, case_id", [
    ("case_0000.nii.gz", "case"), ("case.nii.gz", "case"), ("case_00012_0000.nii.gz", "case_00012"),
    ("case_00012.nii", "case_00012"), ("ct_0000.MHA", "ct"), ("ct.nrrd", "ct"), ("scan.mhd", "scan"),
    ("patient7", "patient7"), ("case_0001.nii.gz", "case_0001"), ("a_0000_0000.nii.gz", "a_0000"),
])
def test_case_id_drops_the_image_suffix_and_nnunets_channel_tag(name, case_id):
    """The one case-id rule (nnU-Net's): suffix removed, one trailing ``_0000`` channel tag dropped."""
    from renal_nnunet.io import case_id_from_path

    assert case_id_from_path(f"/data/{name}") == case_id
    assert case_id_from_path(f"/data/{name}/") == case_id


def test_map_back_and_evaluate_name_case_0000_as_case(tmp_path):
    """``map-back`` looks up ``case.json`` for ``case_0000.nii.gz``; ``evaluate`` pairs ``case_seg.nii.gz``
    with a reference ``case_0000.nii.gz`` (predict-stage and predict: tests/pipeline/test_predict_e2e.py)."""
    from renal_nnunet.evaluation.evaluate import find_cases
    from renal_nnunet.inference.map_back import map_predictions_to_source

    labels = _volume(value=1)
    write_image(labels, tmp_path / "grid" / "case_0000.nii.gz")
    written, failures = map_predictions_to_source(tmp_path / "grid", tmp_path / "sidecars", tmp_path / "back")
    assert written == [] and len(failures) == 1
    assert failures[0].startswith("case: ") and str(tmp_path / "sidecars" / "case.json") in failures[0]
    assert "grid sidecar missing" in failures[0]

    write_image(labels, tmp_path / "pred" / "case_seg.nii.gz")
    write_image(labels, tmp_path / "ref" / "case_0000.nii.gz")
    pairs, errors = find_cases(tmp_path / "pred", tmp_path / "ref")
    assert list(pairs) == ["case"] and errors == []
