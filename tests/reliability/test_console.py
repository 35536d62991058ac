"""What a user sees of a case that goes wrong, and nothing else: ``predict`` on an all-air CT names
the file and the problem, and a predict run's console holds only the package's own lines (no
nnU-Net trainer search, no ITK/GDCM "WARNING: In ..." text). Uses the tiny demo's models; seconds
each once it exists."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pydicom
import pytest
import SimpleITK as sitk

from renal_nnunet.io import itk_messages_logged
from tests.conftest import REPO_ROOT
from tests.pipeline.dicom_series import write_dicom_series
from tests.reliability.test_predict_faults import run_cli

NNUNET_TRAINER_SEARCH = ("Searching in", "Searching for class", "Inspecting module", "Found class", "Using trainer",
                         "not found in nnunetv2")
"""Lines nnU-Net prints while it looks a trainer class up by name."""


@pytest.fixture(scope="module")
def good_ct(tiny_demo) -> sitk.Image:
    out_dir, _ = tiny_demo
    return sitk.ReadImage(str(sorted((out_dir / "test_images").glob("*.nii.gz"))[0]))


def test_an_all_air_ct_with_the_intensity_check_skipped_names_its_file_and_why(tiny_demo, good_ct, tmp_path):
    out_dir, _ = tiny_demo
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sitk.WriteImage(good_ct, str(inputs / "good.nii.gz"))
    air = sitk.Cast(good_ct * 0, sitk.sitkInt16) - 1000
    air.CopyInformation(good_ct)
    sitk.WriteImage(air, str(inputs / "all_air.nii.gz"))
    code, printed = run_cli("predict", "-i", inputs, "-o", tmp_path / "out", "-m", out_dir / "models", "--no-report",
                            "--skip-intensity-check")
    rows = {r["case_id"]: r for r in json.loads((tmp_path / "out" / "predict_summary.json").read_text())["cases"]}
    assert code == 0 and "Traceback" not in printed and "RuntimeWarning" not in printed, printed
    assert f"{inputs / 'all_air.nii.gz'}: no kidney found: the image holds no tissue (all voxels below -500 HU" in printed
    assert "is this a CT in HU?" in printed
    assert rows["all_air"]["status"] == "no_kidney"
    assert any("holds no tissue" in m for m in rows["all_air"]["messages"])
    assert rows["good"]["status"] == "ok", "the rest of the batch did not finish"


def _series_with_rounded_positions(ct: sitk.Image, folder):
    """``ct`` as a DICOM series whose third slice sits 0.05 mm off its place (rounding in
    ImagePositionPatient, as real exports have): within the package's slice-gap tolerance, above
    ITK's, whose series reader then prints a warning."""
    write_dicom_series(ct, folder)
    path = sorted(folder.glob("*.dcm"))[2]
    dataset = pydicom.dcmread(path)
    x, y, z = (float(v) for v in dataset.ImagePositionPatient)
    dataset.ImagePositionPatient = [x, y, z + 0.05]
    dataset.save_as(path)
    return folder


def test_a_predict_console_holds_no_nnunet_trainer_search_and_no_itk_warning(tiny_demo, good_ct, tmp_path):
    out_dir, _ = tiny_demo
    series = _series_with_rounded_positions(good_ct, tmp_path / "inputs" / "series1")
    # A process of its own: ITK writes to the process's stderr (fd 2), below Python's sys.stderr.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("nnUNet_extTrainer", None)
    done = subprocess.run([sys.executable, "-m", "renal_nnunet.cli", "predict", "-i", series, "-o", tmp_path / "out",
                           "-m", out_dir / "models", "--no-report", "--backend", "torch"],
                          env=env, capture_output=True, encoding="utf-8", errors="replace", timeout=600)
    console = done.stdout + done.stderr
    assert done.returncode == 0, console
    assert "WARNING: In" not in console and "ImageSeriesReader (0x" not in console, console
    assert not [line for line in console.splitlines() if any(s in line for s in NNUNET_TRAINER_SEARCH)], console
    assert "series1: ok" in console


def test_itk_warnings_become_debug_or_warning_records_naming_the_file(tmp_path, capfd, caplog):
    folder = _series_with_rounded_positions(sitk.Image([6, 5, 4], sitk.sitkInt16) - 1000, tmp_path / "series")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sorted(str(p) for p in folder.glob("*.dcm")))
    with caplog.at_level(logging.DEBUG, logger="renal_nnunet.io"), itk_messages_logged(folder):
        reader.Execute()
    assert "WARNING: In" not in capfd.readouterr().err
    record, = [r for r in caplog.records if "Non uniform sampling" in r.getMessage()]
    # the package's own slice-gap check owns this one: detail for -v, not a console warning
    assert record.levelno == logging.DEBUG and str(folder) in record.getMessage()
    reader.Execute()  # outside the block ITK prints again: the previous logger is back
    assert "Non uniform sampling" in capfd.readouterr().err
