"""``renal-nnunet plan|train|predict-dataset|predict-stage`` with NO ``nnUNet_extTrainer`` set:
the wrappers register the trainers in-process, and predictions land on the input geometry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tests.conftest import FIRST_ID, KIDNEY_DATASET, TINY, nnunet_folders


@pytest.mark.slow
def test_wrappers_train_and_predict_without_the_variable(planned_tiny_kidney, use_env, heldout_cases, tmp_path):
    from renal_nnunet.cli import main
    from renal_nnunet.inference.ensemble import FoldEnsemble
    from renal_nnunet.inference.grid_to_ct import label_boxes, predict_stage_probabilities
    from renal_nnunet.io import read_image

    use_env(planned_tiny_kidney)
    assert "nnUNet_extTrainer" not in os.environ
    assert main(["train", str(FIRST_ID), "2", "-tr", TINY, "-device", "cpu"]) == 0
    assert "nnUNet_extTrainer" not in os.environ, "the registration does not leak into the environment"
    model_dir = Path(planned_tiny_kidney["nnUNet_results"]) / KIDNEY_DATASET / f"{TINY}__nnUNetPlans__3d_fullres"
    assert (model_dir / "fold_2" / "checkpoint_final.pth").is_file()

    predictions = tmp_path / "grid_predictions"
    assert main(["predict-dataset", "-i", str(heldout_cases["grid_images"]), "-o", str(predictions),
                 "-d", str(FIRST_ID), "-f", "2", "-tr", TINY, "-device", "cpu"]) == 0
    for case in heldout_cases["cases"]:
        grid_image = read_image(heldout_cases["grid_images"] / f"{case}_0000.nii.gz")
        predicted = read_image(predictions / f"{case}.nii.gz")
        assert predicted.GetSize() == grid_image.GetSize() == (32, 32, 32)

    # one stage on a source CT: the whole CT, then (the cascade's use) inside each labelled region's box
    case = heldout_cases["cases"][0]
    ct_path, kidneys_path = heldout_cases["ct"][case], heldout_cases["kidney_reference"][case]
    ct = read_image(ct_path)
    assert main(["predict-stage", "-i", str(ct_path), "-o", str(tmp_path / "whole"), "-m", str(model_dir),
                 "-f", "2", "-device", "cpu"]) == 0
    _assert_same_geometry(read_image(tmp_path / "whole" / "imaging.nii.gz"), ct)
    kidneys = read_image(kidneys_path)

    assert main(["predict-stage", "-i", str(ct_path), "-o", str(tmp_path / "boxes"), "-m", str(model_dir),
                 "-f", "2", "--crop-from", str(kidneys_path), "--margin-mm", "20", "-device", "cpu"]) == 0
    in_boxes = read_image(tmp_path / "boxes" / "imaging.nii.gz")
    _assert_same_geometry(in_boxes, ct)
    inside = np.zeros(ct.GetSize()[::-1], bool)
    for box in label_boxes(kidneys, margin_mm=20).values():
        inside[box.slices] = True
    assert inside.any() and not inside.all()
    assert not sitk.GetArrayFromImage(in_boxes)[~inside].any(), "nothing is predicted outside the crop boxes"
    box = label_boxes(kidneys, margin_mm=20)[1]
    probabilities = predict_stage_probabilities(ct, FoldEnsemble(model_dir, folds=(2,)), box).ensemble
    outside = np.ones(inside.shape, bool)
    outside[box.slices] = False
    assert (probabilities[0][outside] == 1).all() and (probabilities[1:, outside] == 0).all()
    assert np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)


@pytest.mark.slow
def test_plan_wrapper_plans_and_installs_the_patient_grouped_splits(heldout_cases, use_env, tmp_path):
    from renal_nnunet.cli import main

    # in-process training augmentation exported for the whole session (nnU-Net's planner fails on it alone)
    use_env({**nnunet_folders(tmp_path, heldout_cases["raw"]), "nnUNet_n_proc_DA": "0"})
    assert main(["plan", "-d", "901"]) == 0
    preprocessed = tmp_path / "preprocessed" / "Dataset901_RenalKidney32"
    plans = json.loads((preprocessed / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["patch_size"] == [32, 32, 32], "the whole grid image is the patch"
    assert json.loads((preprocessed / "splits_final.json").read_text()) == \
        json.loads((heldout_cases["raw"] / "Dataset901_RenalKidney32" / "splits_final.json").read_text())


def test_wrapper_reports_a_missing_model_clearly(use_env, tmp_path, capsys):
    from renal_nnunet.cli import main

    use_env({"nnUNet_raw": str(tmp_path), "nnUNet_preprocessed": str(tmp_path), "nnUNet_results": str(tmp_path)})
    (tmp_path / "Dataset777_Nothing").mkdir()
    assert main(["predict-dataset", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "-d", "777",
                 "-device", "cpu"]) == 2
    assert "trained model folder does not exist" in capsys.readouterr().err


def _assert_same_geometry(image: sitk.Image, reference: sitk.Image) -> None:
    assert image.GetSize() == reference.GetSize()
    assert np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-5)
    assert np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-5)
    assert np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-7)
