"""Bad input never becomes a result: ``predict`` fed broken images, models and output folders.

Each fault is made small from the tiny demo's held-out CT. A batch of broken inputs is predicted
once beside one good CT; each broken case must fail with a message naming its file and the problem,
leave no output, and not stop the good case, whose output set is complete. Broken models folders
and output folders must end in a clear refusal (exit code 2, no traceback) before any case runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.cli import main
from renal_nnunet.pipeline.case_outputs import RECORD_SUFFIX
from renal_nnunet.pipeline.models import load_models


def run_cli(*argv) -> tuple[int, str]:
    """``renal-nnunet ARGV`` in process: exit code and everything it printed."""
    printed = io.StringIO()
    root, console = logging.getLogger(), logging.StreamHandler(printed)  # log records as the console shows them
    level = root.level
    root.addHandler(console)
    root.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exit_:  # argparse's refusals
                code = exit_.code
    finally:
        root.removeHandler(console)
        root.setLevel(level)
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def good_ct(tiny_demo) -> sitk.Image:
    out_dir, _ = tiny_demo
    return sitk.ReadImage(str(sorted((out_dir / "test_images").glob("*.nii.gz"))[0]))


def _nifti(array_xyz: np.ndarray, path, affine=None) -> None:
    nib.save(nib.Nifti1Image(array_xyz, np.diag([10.0, 10.0, 10.0, 1.0]) if affine is None else affine), str(path))


def _ct_xyz(ct: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(ct).transpose(2, 1, 0).astype(np.float32)


BROKEN = {
    # case id: (how it is made, what the message must say)
    "nan": (lambda ct, p: _nifti(np.where(np.indices(_ct_xyz(ct).shape)[0] < 2, np.nan, _ct_xyz(ct)), p),
            r"non-finite voxel"),
    "inf": (lambda ct, p: _nifti(np.where(np.indices(_ct_xyz(ct).shape)[0] < 1, np.inf, _ct_xyz(ct)), p),
            r"non-finite voxel"),
    "all_nan": (lambda ct, p: _nifti(np.full(_ct_xyz(ct).shape, np.nan, np.float32), p), r"non-finite voxel"),
    "truncated_gz": (lambda ct, p: _truncated(ct, p, ".nii.gz"), r"corrupt or truncated"),
    "truncated_nii": (lambda ct, p: _truncated(ct, p, ".nii"), r"is truncated: its header announces"),
    "garbage": (lambda ct, p: p.write_bytes(np.random.default_rng(0).bytes(4000)), r"corrupt or truncated"),
    "empty_file": (lambda ct, p: p.write_bytes(b""), r"corrupt or truncated|cannot be read"),
    "slice_2d": (lambda ct, p: _nifti(_ct_xyz(ct)[:, :, :1], p), r"effectively 2D"),
    "volume_4d": (lambda ct, p: _nifti(np.stack([_ct_xyz(ct)] * 2, axis=-1), p), r"4D|3D image"),
    "normalised": (lambda ct, p: _nifti((_ct_xyz(ct) + 1024) / 4096, p), r"does not look like a CT"),
    "sheared": (lambda ct, p: _nifti(_ct_xyz(ct), p, np.array([[10, 3, 0, 0], [0, 10, 0, 0], [0, 0, 10, 0], [0, 0, 0, 1.0]])),
                r"direction not orthogonal"),
}
SUFFIX = {"truncated_nii": ".nii"}


def _truncated(ct: sitk.Image, path, suffix: str) -> None:
    whole = path.with_name(f"whole{suffix}")
    sitk.WriteImage(ct, str(whole), suffix.endswith(".gz"))
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    whole.unlink()


@pytest.fixture(scope="module")
def broken_batch(tiny_demo, good_ct, tmp_path_factory):
    """One ``predict`` over the good CT, every broken input and a stray text file."""
    out_dir, _ = tiny_demo
    work = tmp_path_factory.mktemp("broken_batch")
    inputs = work / "inputs"
    inputs.mkdir()
    sitk.WriteImage(good_ct, str(inputs / "good.nii.gz"))
    for case_id, (make, _) in BROKEN.items():
        make(good_ct, inputs / f"{case_id}{SUFFIX.get(case_id, '.nii.gz')}")
    (inputs / "notes.txt").write_text("not an image")
    code, printed = run_cli("predict", "-i", inputs, "-o", work / "out", "-m", out_dir / "models", "--no-report")
    summary = json.loads((work / "out" / "predict_summary.json").read_text())
    return code, printed, {row["case_id"]: row for row in summary["cases"]}, work / "out"


@pytest.mark.parametrize("case_id", sorted(BROKEN))
def test_a_broken_input_fails_alone_naming_its_file_and_the_problem(broken_batch, case_id):
    code, printed, rows, out = broken_batch
    assert code == 1
    row = rows[case_id]
    assert row["status"] == "failed"
    assert f"{case_id}{SUFFIX.get(case_id, '.nii.gz')}" in row["error"]
    assert re.search(BROKEN[case_id][1], row["error"]), row["error"]
    assert f"{case_id}: FAILED" in printed
    assert not list(out.glob(f"{case_id}_*")), "a failed case left outputs"


def test_the_good_case_of_a_broken_batch_is_complete_and_nothing_half_written_remains(broken_batch):
    code, printed, rows, out = broken_batch
    assert rows["good"]["status"] == "ok"
    record = json.loads((out / f"good{RECORD_SUFFIX}").read_text())
    assert "good_seg.nii.gz" in record["files"] and all((out / name).is_file() for name in record["files"])
    assert not list(out.glob(".staging-*")), "a staging folder was left behind"
    assert "notes.txt" in printed and "not predicted" in printed, "a stray file is skipped without a word"
    assert "Traceback" not in printed


def _models_copy(tiny_demo, tmp_path):
    out_dir, _ = tiny_demo
    models = tmp_path / "models"
    shutil.copytree(out_dir / "models", models)
    return models, load_models(models)


def _damage_manifest(models, change) -> None:
    manifest = json.loads((models / "manifest.json").read_text())
    change(manifest)
    (models / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("fault, expected", [
    ("truncated_checkpoint", r"kidney.*fold_0.checkpoint_final\.pth: cannot be loaded as a checkpoint.*truncated or corrupt"),
    ("stages_swapped", r"dataset\.json: label table .* is the mass model's; the kidney model needs"),
    ("negative_margin", r"manifest\.json: not a valid models manifest .*margin_mm must be at least 0 mm"),
    ("classifier_missing", r"classifier checkpoint listed in the manifest is missing"),
    ("manifest_not_json", r"manifest\.json: is not valid JSON"),
])
def test_a_broken_models_folder_is_refused_by_name_before_any_case(tiny_demo, good_ct, tmp_path, fault, expected):
    models, manifest = _models_copy(tiny_demo, tmp_path)
    if fault == "truncated_checkpoint":
        checkpoint = models / manifest.kidney.path / "fold_0" / "checkpoint_final.pth"
        checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
        for cached in checkpoint.parent.glob("*.openvino-*"):
            cached.unlink()
    elif fault == "stages_swapped":
        _damage_manifest(models, lambda m: m.update(kidney=m["mass"], mass=m["kidney"]))
    elif fault == "negative_margin":
        _damage_manifest(models, lambda m: m.update(margin_mm=-5))
    elif fault == "classifier_missing":
        (models / manifest.classifier[0]).unlink()
    else:
        (models / "manifest.json").write_text("{ not json")
    sitk.WriteImage(good_ct, str(tmp_path / "ct.nii.gz"))
    code, printed = run_cli("predict", "-i", tmp_path / "ct.nii.gz", "-o", tmp_path / "out", "-m", models)
    assert code == 2 and "Traceback" not in printed
    assert re.search(expected, printed), printed
    assert not list((tmp_path / "out").glob("ct_*"))


def test_a_damaged_openvino_cache_is_converted_again_not_run(tiny_demo, good_ct, tmp_path, caplog):
    models, manifest = _models_copy(tiny_demo, tmp_path)
    sitk.WriteImage(good_ct, str(tmp_path / "ct.nii.gz"))
    assert run_cli("predict", "-i", tmp_path / "ct.nii.gz", "-o", tmp_path / "first", "-m", models,
                   "--backend", "openvino", "--no-report")[0] == 0
    weights, = (models / manifest.kidney.path / "fold_0").glob("*.openvino-*.bin")
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2: len(damaged) // 2 + 64] = bytes(64)  # same size, other weights
    weights.write_bytes(bytes(damaged))
    code, printed = run_cli("predict", "-i", tmp_path / "ct.nii.gz", "-o", tmp_path / "second", "-m", models,
                            "--backend", "openvino", "--no-report")
    assert code == 0 and "damaged" in caplog.text
    assert weights.read_bytes() != bytes(damaged), "the damaged cache entry was not rebuilt"
    first, second = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / run / "ct_seg.nii.gz")))
                     for run in ("first", "second"))
    np.testing.assert_array_equal(first, second)


def test_an_output_folder_under_a_file_is_refused(tiny_demo, good_ct, tmp_path):
    out_dir, _ = tiny_demo
    sitk.WriteImage(good_ct, str(tmp_path / "ct.nii.gz"))
    (tmp_path / "afile").write_text("x")
    for output in (tmp_path / "afile", tmp_path / "afile" / "out"):
        code, printed = run_cli("predict", "-i", tmp_path / "ct.nii.gz", "-o", output, "-m", out_dir / "models")
        assert code == 2 and "a file of that name" in printed and "Traceback" not in printed


def test_a_reused_output_folder_keeps_no_stale_output_and_every_run_record(tiny_demo, good_ct, tmp_path):
    out_dir, _ = tiny_demo
    out = tmp_path / "out"
    out.mkdir()
    sitk.WriteImage(good_ct, str(tmp_path / "ct.nii.gz"))
    stale = out / "ct_lesion9_gradcam.nii.gz"  # an earlier run's map of a lesion this run does not have
    stale.write_bytes(b"old")
    (out / "ct_report.png").write_bytes(b"old")
    (out / "other_seg.nii.gz").write_bytes(b"another case")  # not this case's: kept
    for _ in range(2):
        assert run_cli("predict", "-i", tmp_path / "ct.nii.gz", "-o", out, "-m", out_dir / "models",
                       "--no-report")[0] == 0
    assert not stale.exists() and not (out / "ct_report.png").exists()
    assert (out / "other_seg.nii.gz").read_bytes() == b"another case"
    record = json.loads((out / f"ct{RECORD_SUFFIX}").read_text())
    assert sorted(p.name for p in out.glob("ct_*") if p.name != f"ct{RECORD_SUFFIX}") == record["files"]
    assert len(list((out / "predict_runs").glob("*.json"))) == 2, "an earlier run's summary was replaced"


def test_continue_redoes_an_interrupted_case_and_skips_a_complete_one(tiny_demo, good_ct, tmp_path):
    out_dir, _ = tiny_demo
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    for case_id in ("done", "killed"):
        sitk.WriteImage(good_ct, str(inputs / f"{case_id}.nii.gz"))
    args = ("predict", "-i", inputs, "-o", out, "-m", out_dir / "models", "--no-report", "--continue")
    assert run_cli(*args)[0] == 0
    # as a SIGKILL while writing "killed" leaves it: some files, a staging folder, no record
    (out / f"killed{RECORD_SUFFIX}").unlink()
    (out / "killed_lesions.csv").unlink()
    (out / ".staging-killed-0123abcd").mkdir()
    (out / ".staging-killed-0123abcd" / "killed_seg.nii.gz").write_bytes(b"half")
    seg_before = (out / "done_seg.nii.gz").stat().st_mtime_ns
    code, printed = run_cli(*args)
    assert code == 0 and "done: skipped" in printed and "killed: ok" in printed
    assert (out / "done_seg.nii.gz").stat().st_mtime_ns == seg_before
    assert (out / f"killed{RECORD_SUFFIX}").is_file() and (out / "killed_lesions.csv").is_file()
    assert not list(out.glob(".staging-*"))
