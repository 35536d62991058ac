"""INT8 (NNCF) and bf16 on the tiny demo's trained models: quantised per fold, measured against fp32
on held-out cases before use, chosen per stage by ``--precision auto`` (never without a passing
measurement), recorded in ``predict_summary.json``, and quantised again for a changed checkpoint."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from renal_nnunet.inference.ensemble import FoldEnsemble
from renal_nnunet.io import read_image, write_image
from renal_nnunet.nnunet.environment import NnunetFolders
from renal_nnunet.nnunet.layout import fold_checkpoint
from renal_nnunet.pipeline.compile_models import compile_models
from renal_nnunet.pipeline.models import load_models
from renal_nnunet.pipeline.predict import PredictConfig, predict
from renal_nnunet.pipeline.quantization import (
    QuantizationConfig,
    accuracy_control_cases,
    compare_stage_labels,
    kept_kidney_labels,
    measure_unet_stage,
    split_cases,
    stage_check,
    true_grid_image,
    unet_accuracy_control,
    unet_patches,
    with_quantised_operations,
)
from renal_nnunet.runtime.agreement import (
    AGREEMENT_FILE,
    AgreementBounds,
    PrecisionCheck,
    StageAgreement,
    read_stage_agreement,
)
from renal_nnunet.runtime.backends import Runtime
from renal_nnunet.runtime.cpu import native_precisions
from renal_nnunet.runtime.openvino import (
    compile_on_cpu,
    compiled_model_path,
    int8_model_path,
    quantised_operations,
    quantize_model,
)

SMALL = QuantizationConfig(calibration_cases=2, validation_cases=2)
"""Two calibration grid images (crops) per stage and two held out: the tests' budget."""
OPENVINO_AUTO = Runtime.resolve("openvino", "cpu", "auto")


@pytest.fixture(scope="module")
def raw(tiny_demo):
    out_dir, _ = tiny_demo
    return NnunetFolders.under(out_dir / "nnunet").raw


@pytest.fixture(scope="module")
def quantised(tiny_demo, raw, tmp_path_factory):
    """A copy of the tiny demo's models folder after ``compile-models --precision int8``."""
    out_dir, _ = tiny_demo
    models = tmp_path_factory.mktemp("quantised") / "models"
    shutil.copytree(out_dir / "models", models)
    result = compile_models(models, precision="int8", calibration=raw, config=SMALL)
    return models, result


def test_compile_models_int8_quantises_every_fold_and_records_its_agreement(quantised):
    models, result = quantised
    manifest = load_models(models)
    assert set(result["agreement"]) == {"kidney", "mass", "classifier"}
    measured = {"int8", "bf16"} & native_precisions()
    for stage, agreement in result["agreement"].items():
        assert set(agreement.checks) == measured, stage
        assert all(check.cases == 2 for check in agreement.checks.values()), stage
        assert set(agreement.calibration["cases"]).isdisjoint(agreement.calibration["held_out"])
    for stage, dice_bound in (("kidney", SMALL.bounds.kidney_dice), ("mass", SMALL.bounds.mass_dice)):
        # the tiny demo leaves cases over for NNCF's accuracy control
        calibration = result["agreement"][stage].calibration
        control = set(calibration["accuracy_control"]["cases"])
        assert control and control.isdisjoint({*calibration["cases"], *calibration["held_out"]}), stage
        assert calibration["accuracy_control"]["max_drop"] == pytest.approx(
            (1 - dice_bound) * SMALL.accuracy_control_share), stage
        operations = result["agreement"][stage].checks["int8"].figures["quantised_operations"]
        assert len(operations) == len(getattr(manifest, stage).folds), stage
    for stage in (manifest.kidney, manifest.mass):
        folder = models / stage.path
        assert (folder / AGREEMENT_FILE).is_file()
        sha = read_stage_agreement(folder, [fold_checkpoint(folder, f) for f in stage.folds]).calibration["sha256"]
        for fold in stage.folds:
            assert int8_model_path(fold_checkpoint(folder, fold), sha).is_file()
    checks = result["agreement"]["mass"].checks["int8"].figures
    assert {"dice_mass_min", "masses_fp32", "masses_missed", "masses_extra"} <= set(checks)
    assert {"class_agreement", "cam_peak_voxels_max"} <= set(result["agreement"]["classifier"].checks["int8"].figures)


def test_predict_names_each_stage_s_precision_and_why(quantised, tiny_demo, tmp_path):
    models, result = quantised
    out_dir, _ = tiny_demo
    case = sorted((out_dir / "test_images").glob("*.nii.gz"))[0]
    for precision in ("auto", "int8"):
        predict(case, tmp_path / precision, models, PredictConfig(precision=precision, report=False, cam=False))
        summary = json.loads((tmp_path / precision / "predict_summary.json").read_text())
        assert summary["precision"] == summary["run"]["precision"]
        for stage, chosen in summary["precision"].items():
            check = result["agreement"][stage].checks["int8"]
            if precision == "int8":
                assert chosen["precision"] == "int8" and chosen["reason"].startswith("asked for")
            elif check.passed:
                assert chosen == {"precision": "int8", "reason": chosen["reason"]} and "meets the bounds" in chosen["reason"]
            else:
                assert chosen["precision"] in ("bf16", "fp32") and "INT8 check against fp32 failed" in chosen["reason"]


def test_the_agreement_check_fails_on_a_calibration_of_constant_images(tiny_demo, raw, tmp_path):
    out_dir, _ = tiny_demo
    stage = load_models(out_dir / "models").kidney
    model_dir = tmp_path / "model" / stage.path
    shutil.copytree((out_dir / "models" / stage.path).resolve(), model_dir,
                    ignore=shutil.ignore_patterns("*.openvino-*", AGREEMENT_FILE))
    dataset = model_dir.parent.name
    broken = tmp_path / "raw" / dataset
    shutil.copytree(raw / dataset, broken, ignore=shutil.ignore_patterns("labelsTr"))
    calibration, _ = split_cases(sorted((broken / "imagesTr").glob("*.nii.gz")), SMALL)
    for path in calibration:  # the same geometry, one value: no activation range is right
        image = read_image(path)
        array = sitk.GetArrayViewFromImage(image)
        constant = sitk.GetImageFromArray(np.full(array.shape, 40, array.dtype))
        constant.CopyInformation(image)
        write_image(constant, path)
    agreement = measure_unet_stage(model_dir, stage.folds, tmp_path / "raw", QuantizationConfig(
        precisions=("int8",), calibration_cases=2, validation_cases=2, accuracy_control_cases=0))
    check = agreement.checks["int8"]
    assert not check.passed and any("Dice" in failure for failure in check.failures), check
    chosen = FoldEnsemble(model_dir, stage.folds, OPENVINO_AUTO).runtime
    assert chosen.precision != "int8" and "INT8 check against fp32 failed" in chosen.reason


def test_accuracy_control_returns_operations_to_fp32_until_the_bound_holds(tiny_demo):
    """Calibrated on constant inputs, the INT8 kidney network misses the 0.99 Dice bound against
    fp32; NNCF's accuracy control on the stage's real inputs returns operations to fp32 until the
    worst Dice on them meets it."""
    out_dir, _ = tiny_demo
    stage = load_models(out_dir / "models").kidney
    model_dir = (out_dir / "models" / stage.path).resolve()
    ensemble = FoldEnsemble(model_dir, stage.folds[:1], Runtime("openvino", "cpu", "fp32"))
    fp32 = ensemble.fold_model(ensemble.checkpoints[0], "fp32")
    raw = NnunetFolders.under(out_dir / "nnunet").raw
    patches = unet_patches(ensemble, sorted((raw / model_dir.parent.name / "imagesTr").glob("*.nii.gz")))
    control = unet_accuracy_control(fp32, patches, [1, 2], max_drop=0.01)
    constant = [np.zeros_like(patches[0])]
    ignored = QuantizationConfig().ignored_patterns

    broken = quantize_model(fp32, constant, ignored)
    restored = quantize_model(fp32, constant, ignored, control)
    assert control.metric(compile_on_cpu(broken, "int8"), control.items)[0] < 0.99
    assert control.metric(compile_on_cpu(restored, "int8"), control.items)[0] >= 0.99
    # How many operations stay INT8 depends on the CPU's INT8 kernels: some did on AVX2-only
    # machines, none on an AVX-512 VNNI one (its check then picks fp32, as the next test shows).
    assert quantised_operations(restored) < quantised_operations(broken)


def test_an_int8_network_accuracy_control_returned_whole_is_not_run_as_int8(tiny_demo):
    """Accuracy control may return every operation to fp32 (it did for the default demo's kidney
    U-Net): that network is fp32 under another name, so its check fails and ``auto`` says why."""
    out_dir, _ = tiny_demo
    stage = load_models(out_dir / "models").kidney
    ensemble = FoldEnsemble((out_dir / "models" / stage.path).resolve(), stage.folds[:1],
                            Runtime("openvino", "cpu", "fp32"))
    returned_whole = ensemble.fold_model(ensemble.checkpoints[0], "fp32")
    agreeing = PrecisionCheck("int8", True, (), 16, {"dice_kidney_right_min": 1.0})

    check = with_quantised_operations(agreeing, [quantised_operations(returned_whole)])
    chosen = OPENVINO_AUTO.for_stage(StageAgreement({}, {}, {"int8": check}), frozenset({"int8"}))
    assert not check.passed and check.figures["quantised_operations"] == [0]
    assert chosen.precision == "fp32" and "no INT8 left" in chosen.reason
    assert with_quantised_operations(agreeing, [28]).passed


def test_the_kidney_check_scores_the_kidneys_predict_keeps(tiny_demo, raw):
    """One stray kidney voxel costs a side's Dice on the raw label map; the cascade drops such a
    component (kidneys_from_labels), so the kidney stage's agreement is scored after it, on the
    grid's true geometry."""
    out_dir, _ = tiny_demo
    dataset = raw / (out_dir / "models" / load_models(out_dir / "models").kidney.path).resolve().parent.name
    image_path = sorted((dataset / "imagesTr").glob("*.nii.gz"))[0]
    reference = sitk.GetArrayFromImage(read_image(dataset / "labelsTr" / image_path.name.replace("_0000.nii.gz", ".nii.gz")))
    assert {1, 2} <= set(np.unique(reference))
    stray = reference.copy()
    stray[tuple(np.argwhere(reference == 0)[0])] = 1
    labels = {"background": 0, "kidney_right": 1, "kidney_left": 2}
    grid_ct = true_grid_image(read_image(image_path), image_path)

    raw_scores = compare_stage_labels(reference, stray, labels, grid_ct.GetSpacing()[::-1], False)
    kept = [kept_kidney_labels(label_map, grid_ct) for label_map in (reference, stray)]
    assert raw_scores["dice_kidney_right"] < 1.0
    assert compare_stage_labels(*kept, labels, grid_ct.GetSpacing()[::-1], False) == {
        "dice_kidney_right": 1.0, "dice_kidney_left": 1.0}
    assert grid_ct.GetSpacing() != read_image(image_path).GetSpacing()  # the sidecar's, not nnU-Net's 1 mm


def test_int8_that_joins_two_masses_does_not_report_the_same_masses():
    """fp32's two masses as one component: both count as found by overlap, with a high Dice, but a
    user would be told of one mass where fp32 reports two, so the mass stage's check fails."""
    fp32 = np.zeros((24, 40, 40), np.uint8)
    fp32[10:15, 17:24, 8:18] = fp32[10:15, 17:24, 19:30] = 1
    joined = fp32.copy()
    joined[10:15, 17:24, 18] = 1
    labels = {"background": 0, "mass": 1}
    row = compare_stage_labels(fp32, joined, labels, (2.0, 0.8, 0.8), True)
    assert row["dice_mass"] > 0.95 and row["masses_missed"] == row["masses_extra"] == 0
    assert (row["masses_fp32"], row["masses_joined"]) == (2, 2)
    check = stage_check("int8", [row, compare_stage_labels(fp32, fp32, labels, (2.0, 0.8, 0.8), True)],
                        0.95, AgreementBounds())
    assert not check.passed
    assert check.failures == ("masses differ (0 of 4 missed, 0 extra, 2 joined, 0 split)",)
    assert stage_check("int8", [row], 0.95, AgreementBounds(same_masses=False)).passed


def test_accuracy_control_measures_on_cases_neither_calibrated_on_nor_held_out():
    cases = [f"case_{i:03d}" for i in range(48)]
    config = QuantizationConfig()
    calibration, held_out = split_cases(cases, config)
    control = accuracy_control_cases(cases, calibration, held_out, config)
    assert len(control) == 16 and not set(control) & {*calibration, *held_out}
    assert accuracy_control_cases(cases[:5], *split_cases(cases[:5], config), config) == []
    assert accuracy_control_cases(cases, calibration, held_out, QuantizationConfig(accuracy_control_cases=0)) == []


def test_auto_runs_fp32_without_a_measured_int8_and_int8_is_refused(tiny_demo, tmp_path):
    out_dir, _ = tiny_demo
    stage = load_models(out_dir / "models").kidney
    model_dir = tmp_path / stage.path
    shutil.copytree((out_dir / "models" / stage.path).resolve(), model_dir, ignore=shutil.ignore_patterns(AGREEMENT_FILE))
    chosen = FoldEnsemble(model_dir, stage.folds, OPENVINO_AUTO).runtime
    assert chosen.precision == "fp32" and "no INT8 agreement measured" in chosen.reason
    with pytest.raises(ValueError, match="compile-models"):
        FoldEnsemble(model_dir, stage.folds, Runtime.resolve("openvino", "cpu", "int8"))


@pytest.mark.parametrize("int8, bf16, native, expected", [
    (True, True, {"int8", "bf16"}, "int8"),
    (False, True, {"int8", "bf16"}, "bf16"),
    (False, True, {"int8"}, "fp32"),  # bf16 measured elsewhere, but this CPU would emulate it
    (False, False, {"int8", "bf16"}, "fp32"),
    (None, None, {"int8", "bf16"}, "fp32"),
])
def test_auto_takes_int8_then_native_bf16_then_fp32(int8, bf16, native, expected):
    checks = {name: PrecisionCheck(name, passed, () if passed else ("Dice 0.5 < 0.99",), 3)
              for name, passed in (("int8", int8), ("bf16", bf16)) if passed is not None}
    agreement = StageAgreement({}, {}, checks) if checks else None
    assert OPENVINO_AUTO.for_stage(agreement, frozenset(native)).precision == expected


def test_reduced_precisions_need_openvino_and_are_checked_once():
    assert Runtime.resolve("torch", "cpu", "auto").precision == "fp32"
    with pytest.raises(ValueError, match="openvino backend"):
        Runtime.resolve("torch", "cpu", "int8")
    with pytest.raises(ValueError, match="unknown precision"):
        Runtime.resolve("openvino", "cpu", "fp16")
    with pytest.raises(ValueError, match="no native bf16"):
        Runtime("openvino", "cpu", "bf16").for_stage(None, frozenset({"fp32", "int8"}))


def test_a_changed_checkpoint_is_quantised_again(quantised, raw, tmp_path):
    models, _ = quantised
    stage = load_models(models).kidney
    model_dir = tmp_path / stage.path
    shutil.copytree((models / stage.path).resolve(), model_dir)
    checkpoint = fold_checkpoint(model_dir, stage.folds[0])
    old = read_stage_agreement(model_dir, [fold_checkpoint(model_dir, f) for f in stage.folds])
    old_int8 = int8_model_path(checkpoint, old.calibration["sha256"])
    assert old_int8.is_file()

    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    last_bias = [name for name in saved["network_weights"] if name.endswith(".bias")][-1]
    saved["network_weights"][last_bias] = saved["network_weights"][last_bias] + 1.0  # the retrained fold
    torch.save(saved, checkpoint)
    checkpoints = [fold_checkpoint(model_dir, f) for f in stage.folds]
    assert read_stage_agreement(model_dir, checkpoints) is None, "a measurement of the old weights is trusted"
    assert FoldEnsemble(model_dir, stage.folds, OPENVINO_AUTO).runtime.precision == "fp32"

    measure_unet_stage(model_dir, stage.folds, raw, SMALL)
    new = read_stage_agreement(model_dir, checkpoints)
    new_int8 = int8_model_path(checkpoint, new.calibration["sha256"])
    assert new_int8.is_file() and new_int8 != old_int8 and compiled_model_path(checkpoint).stem in new_int8.stem
    assert not old_int8.exists(), "the stale INT8 model is left behind"


@pytest.mark.parametrize("n_cases, expected_calibration, expected_held_out", [(2, 1, 1), (5, 3, 2), (10, 5, 5),
                                                                              (48, 16, 16), (200, 16, 16)])
def test_held_out_cases_are_set_aside_before_calibration(n_cases, expected_calibration, expected_held_out):
    """With the defaults (16 and 16) a small stage keeps up to half its cases to measure on, never
    one; calibration and held-out cases never overlap."""
    cases = [f"case_{i:03d}" for i in range(n_cases)]
    calibration, held_out = split_cases(cases, QuantizationConfig())
    assert (len(calibration), len(held_out)) == (expected_calibration, expected_held_out)
    assert not set(calibration) & set(held_out)
