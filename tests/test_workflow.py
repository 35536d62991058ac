"""The README's real-data workflow: ``scripts/workflow_kits.sh`` and the README block that shows it
stay equal, its settings agree in the script, its help and the README, and bad arguments stop it
before anything is written."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.label_maps import kits_anatomy
from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.io import read_series_or_image
from renal_nnunet.synthetic import write_painted_kits
from tests.conftest import BIN, REPO_ROOT
from tests.pipeline.dicom_series import write_dicom_series

SCRIPT = REPO_ROOT / "scripts" / "workflow_kits.sh"
README = REPO_ROOT / "README.md"
BLOCK_START, BLOCK_END = "# >>> README workflow block", "# <<< README workflow block"
README_MARK = "<!-- generated from scripts/workflow_kits.sh"

COMMAND_ORDER = ("renal-nnunet convert kits", "renal-nnunet plan", "nnUNetv2_train", "renal-nnunet classifier train",
                 "renal-nnunet assemble-models", "renal-nnunet predict", "renal-nnunet evaluate",
                 "renal-nnunet compare")


def readme_block_from_script(script: str) -> str:
    """The README's workflow block as the script defines it: the lines between the script's markers
    with each command's resume check (``... || run ``) or ``run `` prefix taken off."""
    lines = script.splitlines()
    section = lines[lines.index(BLOCK_START) + 1:lines.index(BLOCK_END)]
    return "\n".join(re.sub(r"^(\s*)(?:\S.* \|\| )?run ", r"\1", line) for line in section)


def readme_workflow_block(readme: str) -> str:
    """The bash block that follows the README's generated-from-the-script marker."""
    after_mark = readme.split(README_MARK, 1)[1]
    return re.search(r"```bash\n(.*?)\n```", after_mark, re.S).group(1)


def test_readme_block_is_the_scripts_commands():
    script = SCRIPT.read_text()
    expected = readme_block_from_script(script)
    assert readme_workflow_block(README.read_text()) == expected, (
        "README's 'Workflow on real data' block differs from scripts/workflow_kits.sh; paste this block:\n" + expected)
    commands = [line.strip() for line in expected.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    positions = [next(i for i, line in enumerate(commands) if line.startswith(c)) for c in COMMAND_ORDER]
    assert positions == sorted(positions), "the block runs convert -> plan -> train -> ... -> compare in order"
    assert "--ref-format kits" in next(line for line in commands if line.startswith("renal-nnunet evaluate"))
    assert not any(re.match(r"(\S.* \|\| )?run ", line) for line in commands), "every command is shown bare"


def test_settings_and_their_defaults_agree_in_script_help_and_readme():
    script = SCRIPT.read_text()
    # ${NAME:=default}, or ${NAME=default} where an empty value is a choice (BASELINES= : none)
    defaults = dict(re.findall(r"\$\{(\w+):?=([^}]*)\}", script))
    help_defaults = {name: value.strip('"') for name, value in re.findall(r"^#   ([A-Z_]+)=(\"[^\"]*\"|\S*)", script, re.M)}
    readme_rows = dict(re.findall(r"^\| `([A-Z_]+)` \| (?:`([^`]*)`|\(none[^)]*\)) \|", README.read_text(), re.M))
    assert help_defaults == defaults
    assert readme_rows == defaults


def _run_script(env: dict[str, str], *args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess:
    # nnU-Net's variables are the script's to set (its defaults put every folder under WORK_DIR).
    ignored = ("nnUNet_extTrainer", "nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    environment = {**{k: v for k, v in os.environ.items() if k not in ignored},
                   "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], env=environment, capture_output=True,
                          encoding="utf-8", errors="replace", timeout=timeout)


def test_script_names_a_missing_test_case_before_doing_anything(kits23_dataset, tmp_path):
    done = _run_script({"TEST_CASES": "case_00061 case_99999"}, kits23_dataset, tmp_path / "work")
    assert done.returncode == 1
    assert f"TEST_CASES: {kits23_dataset}/case_99999 does not exist" in done.stderr
    assert not (tmp_path / "work" / "kits_train").exists() and not (tmp_path / "work" / "nnUNet_raw").exists()


def test_script_names_an_unknown_baseline_before_doing_anything(kits23_dataset, tmp_path):
    done = _run_script({"BASELINES": "3d_fullres resenc_xxl"}, kits23_dataset, tmp_path / "work")
    assert done.returncode == 1
    assert "BASELINES: unknown baseline 'resenc_xxl'" in done.stderr
    assert "3d_fullres 3d_lowres 3d_cascade_fullres resenc_m resenc_l resenc_xl" in done.stderr, "the names it takes"
    assert not (tmp_path / "work").exists()


def test_script_without_arguments_prints_usage():
    done = _run_script({})
    assert done.returncode == 2 and "Usage: scripts/workflow_kits.sh KITS_DIR WORK_DIR" in done.stderr



# --- The whole script on real-size CTs: painted KiTS23 cases at their full 512 x 512 resolution.
# Six training cases hold AML, cysts and solid tumours (the classifier's three classes); two held-out
# cases are predicted, one of them passed as an axial DICOM series (the other case stays a NIfTI in
# KiTS's I-P-L storage order, so both orientations are checked). The U-Nets train with the CPU-tiny
# trainer on a 32^3 grid (fold 0 only), the classifier for one epoch; the stock nnU-Net baselines
# are left out (BASELINES empty: hours at native resolution on a CPU), so compare has the cascade and
# the one-stage grid U-Net.
WORKFLOW_TRAIN = ("case_00038", "case_00061", "case_00148", "case_00252", "case_00473", "case_00569")
WORKFLOW_TEST_NIFTI, WORKFLOW_TEST_DICOM = "case_00204", "case_00153"
WORKFLOW_SETTINGS = {"GRID": "32", "TRAINER": "nnUNetTrainerRenalPaper_CPUtiny", "FOLDS": "0", "DEVICE": "cpu",
                     "CLASSIFIER_EPOCHS": "1", "BASELINES": "", "WORKERS": "1",
                     # nnU-Net augments in the training process (no worker start-up on 2 cores)
                     "nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1", "nnUNet_compile": "false"}


@pytest.fixture(scope="module")
def workflow_run(kits23_dataset, tmp_path_factory) -> dict[str, Path]:
    """``scripts/workflow_kits.sh`` run once on painted full-resolution KiTS23 cases."""
    root = tmp_path_factory.mktemp("workflow")
    src = write_painted_kits(kits23_dataset, root / "painted",
                             case_ids=(*WORKFLOW_TRAIN, WORKFLOW_TEST_NIFTI, WORKFLOW_TEST_DICOM))
    images, references = root / "test" / "images", root / "test" / "references"
    images.mkdir(parents=True)
    references.mkdir(parents=True)
    (images / f"{WORKFLOW_TEST_NIFTI}.nii.gz").symlink_to(src / WORKFLOW_TEST_NIFTI / "imaging.nii.gz")
    (references / f"{WORKFLOW_TEST_NIFTI}.nii.gz").symlink_to(src / WORKFLOW_TEST_NIFTI / "segmentation.nii.gz")
    # A scanner writes axial slices: the series and its reference are stored L-P-S.
    dicom_ct = sitk.DICOMOrient(sitk.ReadImage(str(src / WORKFLOW_TEST_DICOM / "imaging.nii.gz")), "LPS")
    write_dicom_series(dicom_ct, images / WORKFLOW_TEST_DICOM)
    sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(src / WORKFLOW_TEST_DICOM / "segmentation.nii.gz")), "LPS"),
                    str(references / f"{WORKFLOW_TEST_DICOM}.nii.gz"))
    work = root / "work"
    done = _run_script({**WORKFLOW_SETTINGS, "TEST_CASES": f"{WORKFLOW_TEST_DICOM} {WORKFLOW_TEST_NIFTI}",
                        "TEST_IMAGES": str(images), "TEST_REFERENCES": str(references)},
                       src, work, timeout=40 * 60)
    (root / "workflow_output.txt").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"workflow_kits.sh failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return {"work": work, "images": images, "references": references, "src": src}


def _kidney_centroids_lps_x_mm(seg: sitk.Image, labels: dict[str, int]) -> dict[str, float]:
    """LPS x (mm) of each labelled kidney's centroid."""
    array = sitk.GetArrayViewFromImage(seg)
    centroids = {}
    for side, label in labels.items():
        index_zyx = np.argwhere(array == label).mean(axis=0)
        centroids[side] = seg.TransformContinuousIndexToPhysicalPoint(index_zyx[::-1].tolist())[0]
    return centroids


@pytest.mark.slow
def test_workflow_script_runs_end_to_end_on_real_size_kits_cases(workflow_run):
    work = workflow_run["work"]
    models = work / "models"
    assert (models / "manifest.json").is_file()
    predictions = work / "predictions"
    assert (predictions / "predict_summary.json").is_file()
    kidney_labels = {"right": OUTPUT_LABELS["kidney_right"], "left": OUTPUT_LABELS["kidney_left"]}
    for case, source in ((WORKFLOW_TEST_NIFTI, workflow_run["images"] / f"{WORKFLOW_TEST_NIFTI}.nii.gz"),
                         (WORKFLOW_TEST_DICOM, workflow_run["images"] / WORKFLOW_TEST_DICOM)):
        for suffix in ("_seg.nii.gz", "_lesions.csv", "_lesions.json", "_report.png"):
            assert (predictions / f"{case}{suffix}").is_file(), f"{case}{suffix} missing"
        ct = read_series_or_image(source)
        assert sorted(ct.GetSize())[1:] == [512, 512]  # real size, whatever the storage order
        seg = sitk.ReadImage(str(predictions / f"{case}_seg.nii.gz"))
        assert seg.GetSize() == ct.GetSize()
        assert np.allclose(seg.GetSpacing(), ct.GetSpacing(), atol=1e-6)
        assert np.allclose(seg.GetOrigin(), ct.GetOrigin(), atol=1e-4)
        assert np.allclose(seg.GetDirection(), ct.GetDirection(), atol=1e-6)
        # Left is left: each predicted kidney lies on the side of the reference kidney of that side
        # (LPS x grows to the patient's left), whatever the storage order of the input.
        reference = sitk.ReadImage(str(workflow_run["references"] / f"{case}.nii.gz"))
        reference_sides = image_like(kits_anatomy(reference).side, reference)
        predicted = _kidney_centroids_lps_x_mm(seg, kidney_labels)
        expected = _kidney_centroids_lps_x_mm(reference_sides, kidney_labels)
        assert predicted["right"] < predicted["left"]
        for side in kidney_labels:
            assert abs(predicted[side] - expected[side]) < abs(predicted[side] - expected[_other(side)]), (case, side)

    evaluation = work / "evaluation"
    per_case = pd.read_csv(evaluation / "per_case.csv")
    assert set(per_case["case_id"]) == {WORKFLOW_TEST_NIFTI, WORKFLOW_TEST_DICOM}
    kidneys = per_case[per_case["structure"].isin(["kidney_right", "kidney_left"])]
    assert len(kidneys) == 4 and kidneys["dice"].between(0, 1).all() and (kidneys["dice"] > 0).all()
    summary = pd.read_csv(evaluation / "summary.csv")
    assert pd.to_numeric(summary["value"], errors="coerce").notna().any()
    comparison = pd.read_csv(work / "comparison" / "comparison.csv", index_col="method")
    assert set(comparison.index) == {"cascade", "one_stage_grid"}
    numbers = comparison[["kidney_dice_right", "kidney_dice_left", "seconds_per_case"]]
    assert np.isfinite(numbers.to_numpy(float)).all() and (numbers["seconds_per_case"] > 0).all()


def _other(side: str) -> str:
    return "left" if side == "right" else "right"
