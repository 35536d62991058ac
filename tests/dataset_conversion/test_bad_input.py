"""Bad input: one clear error per case naming file and problem; the rest converts; nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import SimpleITK as sitk

from renal_nnunet.cli import main
from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
from renal_nnunet.io import InputError

from .conftest import TEST_GRID, copy_cases

GOOD = "case_00061"
# case id -> (file at fault, words the message must contain)
EXPECTED_FAILURES = {
    "case_90001": ("imaging.nii.gz", "corrupt or truncated"),
    "case_90002": ("imaging.nii.gz", "corrupt or truncated"),
    "case_90003": ("imaging.nii.gz", "2D"),
    "case_90004": ("imaging.nii.gz", "4D"),
    "case_90005": ("segmentation.nii.gz", "size"),
    "case_90006": ("segmentation.nii.gz", "origin"),
    "case_90007": ("segmentation.nii.gz", "unknown label values [7]"),
    "case_90008": ("segmentation.nii.gz", "no kidney"),
    "case_90009": ("kits23.json", "no metadata entry for case_90009"),
    "case_90010": ("imaging.nii.gz", "does not exist"),
}


def _make_bad_cases(src: Path) -> None:
    good_dir = src / GOOD
    ct = sitk.ReadImage(str(good_dir / "imaging.nii.gz"))
    seg = sitk.ReadImage(str(good_dir / "segmentation.nii.gz"))
    metadata = json.loads((src / "kits23.json").read_text())

    def case(case_id, image=None, label=None, in_metadata=True):
        folder = src / case_id
        folder.mkdir()
        for name, content in (("imaging.nii.gz", image if image is not None else ct),
                              ("segmentation.nii.gz", label if label is not None else seg)):
            if isinstance(content, bytes):
                (folder / name).write_bytes(content)
            elif content != "absent":
                sitk.WriteImage(content, str(folder / name))
        if in_metadata:
            metadata.append({**metadata[0], "case_id": case_id})

    case("case_90001", image=b"this is not a gzip stream at all")
    good_bytes = (good_dir / "imaging.nii.gz").read_bytes()
    case("case_90002", image=good_bytes[: len(good_bytes) // 2])
    case("case_90003", image=sitk.Image(64, 64, sitk.sitkInt16))
    case("case_90004", image=sitk.Image([16, 16, 8, 3], sitk.sitkInt16))
    case("case_90005", label=seg[:, :, 1:])
    shifted = sitk.Image(seg)
    shifted.SetOrigin((5.0, 0.0, 0.0))
    case("case_90006", label=shifted)
    unknown = sitk.Image(seg)
    unknown[10, 10, 10] = 7
    case("case_90007", label=unknown)
    case("case_90008", label=seg * 0)
    case("case_90009", in_metadata=False)
    case("case_90010", image="absent")
    (src / "kits23.json").write_text(json.dumps(metadata))


@pytest.fixture(scope="module")
def bad_batch(painted_kits23, tmp_path_factory):
    src = copy_cases(painted_kits23, tmp_path_factory.mktemp("bad") / "dataset", [GOOD])
    _make_bad_cases(src)
    raw = tmp_path_factory.mktemp("raw_bad")
    return src, raw, convert_kits(src, raw, ConversionConfig(grid=TEST_GRID))


def test_the_good_case_converts_and_every_bad_case_fails_alone(bad_batch):
    _, raw, report = bad_batch
    assert report.converted == [GOOD]
    assert sorted(report.failed) == sorted(EXPECTED_FAILURES)
    saved = json.loads((raw / "conversion_report.json").read_text())
    assert sorted(saved["failed"]) == sorted(EXPECTED_FAILURES)
    for folder in raw.glob("Dataset*"):
        assert json.loads((folder / "dataset.json").read_text())["numTraining"] in (1, 2)


@pytest.mark.parametrize("case_id", sorted(EXPECTED_FAILURES))
def test_each_bad_input_gets_one_clear_message_naming_the_file(bad_batch, case_id):
    src, _, report = bad_batch
    file_name, problem = EXPECTED_FAILURES[case_id]
    message = report.failed[case_id]
    assert file_name in message and problem in message, message
    assert str(src) in message  # the full path, not just a name


def test_nothing_half_written_and_the_cli_exits_non_zero(bad_batch, capsys):
    src, raw, _ = bad_batch
    stray = [p for p in raw.rglob("*") if p.name.startswith(".") and p.name != ".renal_nnunet"]
    assert not stray
    for bad in EXPECTED_FAILURES:
        assert not list(raw.rglob(f"{bad}*")), f"output of failed case {bad} remains"
    assert main(["convert", "kits", str(src), "-o", str(raw), "--grid", str(TEST_GRID)]) == 1
    err = capsys.readouterr().err
    assert "skipped (unchanged) 1" in err and all(f"FAILED {case}" in err for case in EXPECTED_FAILURES)


def test_a_non_writable_output_folder_is_one_clear_error(bad_batch, tmp_path, capsys):
    src, _, _ = bad_batch
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(InputError, match="not writable"):
        convert_kits(src, blocker / "raw", ConversionConfig(grid=TEST_GRID))
    assert main(["convert", "kits", str(src), "-o", str(blocker / "raw")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_a_case_whose_output_cannot_be_written_fails_alone_and_leaves_nothing(painted_kits23, tmp_path):
    src = copy_cases(painted_kits23, tmp_path / "dataset", [GOOD, "case_00569"])
    raw = tmp_path / "raw"
    (raw / f"Dataset501_RenalKidney{TEST_GRID}" / "labelsTr" / f"{GOOD}.nii.gz").mkdir(parents=True)  # blocks the file
    report = convert_kits(src, raw, ConversionConfig(grid=TEST_GRID))
    assert report.converted == ["case_00569"] and list(report.failed) == [GOOD]
    assert f"{GOOD}.nii.gz" in report.failed[GOOD]
    assert not [p for p in raw.rglob(f"{GOOD}*") if p.is_file()]


def test_unreadable_metadata_or_an_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no KiTS metadata"):
        convert_kits(tmp_path, tmp_path / "raw")
    (tmp_path / "kits23.json").write_text("{not json")
    with pytest.raises(InputError, match="kits23.json"):
        convert_kits(tmp_path, tmp_path / "raw")


def test_a_case_that_breaks_after_an_earlier_conversion_is_removed_from_the_datasets(painted_kits23, tmp_path):
    src = copy_cases(painted_kits23, tmp_path / "dataset", [GOOD, "case_00569"])
    raw = tmp_path / "raw"
    assert convert_kits(src, raw, ConversionConfig(grid=TEST_GRID)).ok
    (src / "case_00569" / "imaging.nii.gz").write_bytes(b"broken")
    report = convert_kits(src, raw, ConversionConfig(grid=TEST_GRID))
    assert report.skipped == [GOOD] and list(report.failed) == ["case_00569"]
    assert not [p for p in raw.rglob("case_00569*") if p.is_file()]
    for folder in raw.glob("Dataset*"):
        assert json.loads((folder / "dataset.json").read_text())["numTraining"] == len(list((folder / "labelsTr").iterdir()))
