"""End to end with nnU-Net's stock commands as subprocesses: plan (the shared fixture), train two
folds of the paper trainer's tiny variant (found through ``renal-nnunet env``'s export line),
``nnUNetv2_predict -f 0 1``, then this package's mapping back onto the held-out CTs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import patient_left_mm
from renal_nnunet.anatomy.sides import body_midline_mm
from tests.conftest import BIN, FIRST_ID, KIDNEY_DATASET, TINY, dice, run_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stock_model(planned_tiny_kidney) -> tuple[dict[str, str], Path]:
    """Folds 0 and 1 of the tiny paper trainer, trained by stock ``nnUNetv2_train`` subprocesses
    that find the trainer through ``renal-nnunet env``'s export line."""
    env = dict(planned_tiny_kidney)
    export_line = run_command(env, BIN / "renal-nnunet", "env").strip()
    assert export_line.startswith("export nnUNet_extTrainer=")
    env["nnUNet_extTrainer"] = export_line.split("=", 1)[1].strip("'")
    # augmentation in the training process: the seeded tiny trainer then trains the same model every run
    train_env = {**env, "nnUNet_n_proc_DA": "0"}
    for fold in ("0", "1"):
        run_command(train_env, BIN / "nnUNetv2_train", FIRST_ID, "3d_fullres", fold, "-tr", TINY, "-device", "cpu")
    model_dir = Path(env["nnUNet_results"]) / KIDNEY_DATASET / f"{TINY}__nnUNetPlans__3d_fullres"
    log = next((model_dir / "fold_0").glob("training_log_*.txt")).read_text()
    assert "Using splits from existing split file" in log, "the converter's patient-grouped splits are used"
    return env, model_dir


def _untrained_copy(model_dir: Path, destination: Path) -> Path:
    """The same model folder with fold 0's weights replaced by a fresh initialisation."""
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from renal_nnunet.trainers.paper import nnUNetTrainerRenalPaper

    untrained = destination / model_dir.name
    (untrained / "fold_0").mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        shutil.copy(model_dir / name, untrained / name)
    plans = PlansManager(str(model_dir / "plans.json"))
    network = nnUNetTrainerRenalPaper.build_network_architecture(
        plans, plans.get_configuration("3d_fullres"), 1, 3, enable_deep_supervision=True)
    checkpoint = torch.load(model_dir / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    checkpoint["network_weights"] = network.state_dict()
    torch.save(checkpoint, untrained / "fold_0" / "checkpoint_final.pth")
    return untrained


def test_stock_predict_then_map_back_lands_on_the_ct(stock_model, heldout_cases, tmp_path):
    from renal_nnunet.inference.ensemble import FoldEnsemble
    from renal_nnunet.inference.grid_to_ct import predict_stage_probabilities
    from renal_nnunet.io import read_image
    from renal_nnunet.runtime.backends import Runtime

    env, model_dir = stock_model
    predictions, mapped = tmp_path / "grid_predictions", tmp_path / "mapped"
    run_command(env, BIN / "nnUNetv2_predict", "-i", heldout_cases["grid_images"], "-o", predictions, "-d", FIRST_ID,
         "-c", "3d_fullres", "-tr", TINY, "-f", "0", "1", "-device", "cpu", "-npp", "1", "-nps", "1")
    run_command(env, BIN / "renal-nnunet", "map-back", "-i", predictions, "-s", heldout_cases["sidecars"], "-o", mapped)
    untrained = FoldEnsemble(_untrained_copy(model_dir, tmp_path / "untrained"), folds=(0,))
    trained = {backend: FoldEnsemble(model_dir, folds=(0, 1), runtime=Runtime.resolve(backend))
               for backend in ("auto", "torch")}

    sides_seen = set()
    for case in heldout_cases["cases"]:
        ct = read_image(heldout_cases["ct"][case])
        labels = read_image(mapped / f"{case}.nii.gz")
        assert labels.GetSize() == ct.GetSize()
        assert np.allclose(labels.GetSpacing(), ct.GetSpacing(), atol=1e-4)
        assert np.allclose(labels.GetOrigin(), ct.GetOrigin(), atol=1e-4)
        assert np.allclose(labels.GetDirection(), ct.GetDirection(), atol=1e-6)
        predicted = sitk.GetArrayFromImage(labels)
        reference = sitk.GetArrayFromImage(read_image(heldout_cases["kidney_reference"][case])) > 0

        untrained_labels = np.argmax(predict_stage_probabilities(ct, untrained).ensemble, axis=0) > 0
        trained_dice, untrained_dice = dice(predicted > 0, reference), dice(untrained_labels, reference)
        assert trained_dice > max(0.3, untrained_dice + 0.25), (case, trained_dice, untrained_dice)

        # left is left: whatever the model labels "left kidney" (2) lies on the patient's left of the
        # body midline, "right kidney" (1) on the right. (A tiny model may miss one kidney in one
        # case, so presence is required over the held-out cases, not per case.)
        midline_mm = body_midline_mm(ct)
        for label, side_sign in ((1, -1), (2, 1)):
            if (predicted == label).sum() > 20:
                sides_seen.add(label)
                offset_mm = patient_left_mm(ct, np.argwhere(predicted == label)).mean() - midline_mm
                assert side_sign * offset_mm > 25, (case, label, offset_mm)

        # in-process on torch, as nnUNetv2_predict runs, the same grid image gives its labels (same
        # preprocessing, same fold-logit averaging); mapped back, probabilities cover the CT and sum to 1
        grid_image = read_image(heldout_cases["grid_images"] / f"{case}_0000.nii.gz")
        grid_labels = np.argmax(trained["torch"].grid_probabilities(grid_image).ensemble, axis=0)
        stock_grid_labels = sitk.GetArrayFromImage(read_image(predictions / f"{case}.nii.gz"))
        assert np.mean(grid_labels == stock_grid_labels) > 0.999
        probabilities = predict_stage_probabilities(ct, trained["auto"]).ensemble
        assert probabilities.shape == (3, *predicted.shape) and probabilities.dtype == np.float32
        assert np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
        assert dice(np.argmax(probabilities, axis=0) > 0, reference) > max(0.3, untrained_dice + 0.25)
    assert sides_seen == {1, 2}, f"kidney labels predicted over the held-out cases: {sorted(sides_seen)}"
