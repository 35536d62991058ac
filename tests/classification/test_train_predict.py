"""A short real training on synthetic lesions, resume, and the ensemble + Grad-CAM prediction."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from renal_nnunet.anatomy.geometry import paste_on_grid
from renal_nnunet.classification import (
    ClassifierEnsemble,
    ClassifierTrainConfig,
    classify_lesions,
    save_cam_overlay_png,
    train_classifier,
)
from renal_nnunet.classification.train import LATEST_CHECKPOINT
from renal_nnunet.cli import main as cli_main
from renal_nnunet.io import InputError, check_same_geometry
from tests.classification.lesion_data import mosaic

EPOCHS = 7
# lr 1e-3 instead of the paper's 1e-4: a few CPU epochs must reach a usable model.
CONFIG = ClassifierTrainConfig(fold=0, epochs=4, learning_rate=1e-3, seed=0)


@pytest.fixture(scope="module")
def trained(synthetic_lesions, tmp_path_factory):
    """Train 4 epochs, then resume to 7 (a second call with more epochs continues the run)."""
    out = tmp_path_factory.mktemp("classifier")
    train_classifier(synthetic_lesions, out, CONFIG)
    first_log = pd.read_csv(out / "fold_0" / "log.csv")
    best = train_classifier(synthetic_lesions, out, ClassifierTrainConfig(**{**CONFIG.__dict__, "epochs": EPOCHS}))
    return best, first_log


def test_training_writes_log_plot_checkpoints_and_resumes(trained):
    best, first_log = trained
    folder = best.parent
    log = pd.read_csv(folder / "log.csv")
    assert list(log["epoch"]) == list(range(EPOCHS))
    pd.testing.assert_frame_equal(log.iloc[:4], first_log)  # resumed, not restarted
    assert log["train_loss"].iloc[-2:].mean() < log["train_loss"].iloc[:2].mean()
    assert (folder / "progress.png").stat().st_size > 0
    latest = torch.load(folder / LATEST_CHECKPOINT, weights_only=True)
    assert latest["epoch"] == EPOCHS - 1 and latest["grid"] == 32 and latest["classes"] == ["AML", "cystic", "solid"]
    saved = torch.load(best, weights_only=True)
    assert saved["metrics"]["val_balanced_accuracy"] == pytest.approx(log["val_balanced_accuracy"].max())
    assert log["val_balanced_accuracy"].max() >= 0.9


def test_held_out_lesions_are_classified_and_cam_lies_on_them(trained, held_out_patches, tmp_path):
    best, _ = trained
    ct, lesion_mask, kinds = mosaic(held_out_patches)
    ensemble = [best, best.parent / LATEST_CHECKPOINT]  # two different models (best and last epoch)
    results = classify_lesions(ct, lesion_mask, ClassifierEnsemble(ensemble), cam=True)
    assert [r.lesion_id for r in results] == list(range(1, len(kinds) + 1))
    correct = [r.predicted_class == kind for r, kind in zip(results, kinds)]
    assert np.mean(correct) >= 0.9, [(r.predicted_class, kind) for r, kind in zip(results, kinds)]
    labels = sitk.GetArrayFromImage(lesion_mask)
    on_lesion = []
    for result, ok in zip(results, correct):
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert result.fold_probabilities.shape == (2, 3)
        np.testing.assert_allclose(list(result.probabilities.values()), result.fold_probabilities.mean(axis=0), rtol=1e-6)
        assert result.fold_agreement == np.mean([c == result.predicted_class for c in result.fold_predictions])
        box = sitk.GetArrayViewFromImage(result.cam).shape  # the map covers the lesion's bounding box only
        assert box == tuple(int(n) for n in np.ptp(np.argwhere(labels == result.lesion_id), axis=0) + 1)
        full_cam = paste_on_grid(result.cam, ct)
        check_same_geometry(ct, full_cam, "the CT", "the Grad-CAM")
        if ok:
            cam = sitk.GetArrayFromImage(full_cam)
            near_lesion = sitk.GetArrayFromImage(
                sitk.BinaryDilate(sitk.Cast(lesion_mask == result.lesion_id, sitk.sitkUInt8), [2, 2, 2]))
            on_lesion.append(bool(near_lesion[np.unravel_index(cam.argmax(), cam.shape)]))
            assert cam.max() == pytest.approx(1.0)
            assert not cam[(labels != 0) & (labels != result.lesion_id)].any()  # no bleed onto other lesions
    assert np.mean(on_lesion) >= 0.8
    png = save_cam_overlay_png(ct, lesion_mask, paste_on_grid(results[0].cam, ct), 1, tmp_path / "cam.png")
    assert png.stat().st_size > 0


def test_bad_prediction_inputs_give_clear_errors(trained, held_out_patches):
    best, _ = trained
    _, ct, mask = held_out_patches[0]
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    with pytest.raises(InputError, match="lesion mask is empty"):
        classify_lesions(ct, empty, ClassifierEnsemble([best]))
    at_border = sitk.Image(mask)
    at_border[0, 5, 5] = 2
    with pytest.raises(InputError, match=r"lesions \[2\] touch the image border"):
        classify_lesions(ct, at_border, ClassifierEnsemble([best]))
    assert len(classify_lesions(ct, at_border, ClassifierEnsemble([best]), cam=False, lesion_ids=[1])) == 1
    shifted = sitk.Image(mask)
    shifted.SetOrigin((5.0, 0.0, 0.0))
    with pytest.raises(InputError, match="geometry does not match"):
        classify_lesions(ct, shifted, ClassifierEnsemble([best]))
    with pytest.raises(InputError, match="not in the lesion mask"):
        classify_lesions(ct, mask, ClassifierEnsemble([best]), lesion_ids=[9])
    with pytest.raises(InputError, match="does not exist"):
        classify_lesions(ct, mask, ClassifierEnsemble([best.parent / "missing.pth"]))


def test_a_checkpoint_of_another_kind_is_rejected(held_out_patches, tmp_path):
    _, ct, mask = held_out_patches[0]
    medicalnet_style = tmp_path / "resnet_10.pth"
    torch.save({"state_dict": {}}, medicalnet_style)
    with pytest.raises(InputError, match="not a renal_nnunet classifier checkpoint") as err:
        classify_lesions(ct, mask, ClassifierEnsemble([medicalnet_style]))
    assert str(medicalnet_style) in str(err.value)


def test_out_of_fold_calibration_is_written_and_lowers_the_likelihood_loss(trained, synthetic_lesions):
    """Folds 1 and 2 trained briefly beside fold 0; the temperature fitted on their out-of-fold
    predictions is written, and is the likelihood optimum (better than no scaling)."""
    from renal_nnunet.classification.calibration import (
        CALIBRATION_FILE,
        apply_temperature,
        calibrate_classifier,
        out_of_fold_probabilities,
    )

    best, _ = trained
    out = best.parent.parent
    checkpoints = {0: best, **{fold: train_classifier(synthetic_lesions, out, dataclasses.replace(CONFIG, fold=fold))
                               for fold in (1, 2)}}
    assert cli_main(["classifier", "calibrate", str(synthetic_lesions), "-o", str(out)]) == 0
    from_cli = json.loads((out / CALIBRATION_FILE).read_text())
    result = calibrate_classifier(synthetic_lesions, out, checkpoints)
    assert json.loads((out / CALIBRATION_FILE).read_text()) == result == from_cli
    assert result["lesions"] == 36 and result["folds"] == [0, 1, 2]
    probabilities, labels, folds = out_of_fold_probabilities(synthetic_lesions, checkpoints)
    assert sorted(np.bincount(folds)) == [12, 12, 12]

    def nll(t):
        return -np.mean(np.log(apply_temperature(probabilities, t)[np.arange(len(labels)), labels]))

    assert nll(result["temperature"]) <= min(nll(1.0), nll(result["temperature"] * 1.2), nll(result["temperature"] / 1.2))
    assert 0 <= result["ece_after"] <= 1 and 0 <= result["ece_before"] <= 1
    print(f"ECE before {result['ece_before']:.3f}, after {result['ece_after']:.3f}, T {result['temperature']:.3f}")
