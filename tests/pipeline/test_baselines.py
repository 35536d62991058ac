"""nnU-Net's own cascade and a ResEnc preset as baselines of ``compare``.

The tiny demo's native-resolution one-stage dataset (its five phantoms) is copied under a new id
with two patient-grouped folds (the converter's ``patient_folds``), planned by stock nnU-Net, and
given a ``3d_lowres`` stage at twice the spacing plus nnU-Net's ``3d_cascade_fullres`` entry: its
phantoms are too small for nnU-Net's planner to make a low-resolution stage (measured: with
``-gpu_memory_target 0.05`` it drops 3d_lowres, "image size difference to 3d_fullres is too
small"), so the two entries are written as the planner writes them for large images. The same
dataset is planned with ``nnUNetPlannerResEncM``. Every model trains with the stock trainer's CPU
smoke length (1 epoch x 5 iterations): trained models, not good ones; what is tested is that each
runs exactly as nnU-Net runs it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.labels import OUTPUT_LABELS
from renal_nnunet.inference.baselines import Baseline, BaselinePredictor, to_output_labels
from renal_nnunet.io import InputError, read_image
from renal_nnunet.nnunet.environment import NnunetFolders, nnunet_environment
from renal_nnunet.pipeline.compare import ComparisonConfig, compare_methods
from renal_nnunet.runtime.backends import Runtime
from tests.conftest import BIN, TEST_ENV, run_command

DATASET_ID = 509
DATASET = f"Dataset{DATASET_ID}_TinyCascade"
SMOKE = "nnUNetTrainer_CPUsmoke"
RESENC_PLANS = "nnUNetResEncUNetMPlans"


def add_cascade_stage(plans_path: Path) -> None:
    """Add ``3d_lowres`` (twice the 3d_fullres spacing, same network) and ``3d_cascade_fullres``
    to a plans file, with the keys nnU-Net's ``ExperimentPlanner.plan_experiment`` writes."""
    plans = json.loads(plans_path.read_text())
    fullres = plans["configurations"]["3d_fullres"]
    plans["configurations"]["3d_lowres"] = {
        "inherits_from": "3d_fullres", "data_identifier": "nnUNetPlans_3d_lowres",
        "spacing": [2 * s for s in fullres["spacing"]],
        "median_image_size_in_voxels": [m / 2 for m in fullres["median_image_size_in_voxels"]],
        "batch_dice": False, "next_stage": "3d_cascade_fullres"}
    plans["configurations"]["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    plans_path.write_text(json.dumps(plans, indent=2))


@pytest.fixture(scope="module")
def trained_baselines(tiny_demo, tmp_path_factory) -> dict:
    """Trained 3d_lowres (folds 0, 1), 3d_cascade_fullres (fold 0) and ResEnc M (fold 0) models."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess

    from renal_nnunet.nnunet.commands import plan, train
    from renal_nnunet.nnunet.splits import patient_folds, write_splits

    out_dir, _ = tiny_demo
    demo = NnunetFolders.under(out_dir / "nnunet")
    folders = NnunetFolders.under(tmp_path_factory.mktemp("baselines"))
    source, = demo.raw.glob("Dataset*_RenalOneStage")
    raw = folders.raw / DATASET
    shutil.copytree(source, raw, ignore=shutil.ignore_patterns("splits_final.json"))
    cases = sorted(p.name.removesuffix(".nii.gz") for p in (raw / "labelsTr").glob("*.nii.gz"))
    write_splits(raw, {c: c for c in cases}, patient_folds(cases, num_folds=2))
    with nnunet_environment(folders, augmentation_processes=0):
        preprocessed = plan(DATASET_ID, ("3d_fullres",), verify=False)
        add_cascade_stage(preprocessed / "nnUNetPlans.json")
        preprocess([DATASET_ID], "nnUNetPlans", ("3d_lowres",), [1], verbose=False)
        plan(DATASET_ID, ("3d_fullres",), verify=False, planner="nnUNetPlannerResEncM")
        # every 3d_lowres fold first: their validation predictions are the cascade's training input
        for configuration, plans, fold in (("3d_lowres", "nnUNetPlans", 0), ("3d_lowres", "nnUNetPlans", 1),
                                           ("3d_cascade_fullres", "nnUNetPlans", 0), ("3d_fullres", RESENC_PLANS, 0)):
            train(DATASET_ID, fold, SMOKE, configuration, plans, device="cpu")
    results = folders.results / DATASET
    return {"folders": folders, "splits": json.loads((raw / "splits_final.json").read_text()),
            "lowres": results / f"{SMOKE}__nnUNetPlans__3d_lowres",
            "cascade": results / f"{SMOKE}__nnUNetPlans__3d_cascade_fullres",
            "resenc_m": results / f"{SMOKE}__{RESENC_PLANS}__3d_fullres"}


@pytest.fixture(scope="module")
def stock_cascade_labels(trained_baselines, tiny_demo, tmp_path_factory) -> dict[str, Path]:
    """Stock ``nnUNetv2_predict`` of the cascade: 3d_lowres, then 3d_cascade_fullres with
    ``-prev_stage_predictions`` (subprocesses, the trainer found through ``renal-nnunet env``)."""
    out_dir, _ = tiny_demo
    root = tmp_path_factory.mktemp("stock_cascade")
    inputs = root / "inputs"
    inputs.mkdir()
    for ct in (out_dir / "test_images").glob("*.nii.gz"):
        shutil.copy(ct, inputs / ct.name.replace(".nii.gz", "_0000.nii.gz"))
    folders = trained_baselines["folders"]
    env = {"nnUNet_raw": str(folders.raw), "nnUNet_preprocessed": str(folders.preprocessed),
           "nnUNet_results": str(folders.results), **TEST_ENV}
    env["nnUNet_extTrainer"] = run_command(env, BIN / "renal-nnunet", "env").strip().split("=", 1)[1].strip("'")
    common = ("-d", DATASET_ID, "-tr", SMOKE, "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1")
    run_command(env, BIN / "nnUNetv2_predict", "-i", inputs, "-o", root / "lowres", "-c", "3d_lowres", *common)
    run_command(env, BIN / "nnUNetv2_predict", "-i", inputs, "-o", root / "cascade", "-c", "3d_cascade_fullres",
                "-prev_stage_predictions", root / "lowres", *common)
    return {p.name.removesuffix(".nii.gz"): p for p in (root / "cascade").glob("*.nii.gz")}


def test_cascade_baseline_runs_its_lowres_stage_as_stock_nnunet_predict_does(trained_baselines, stock_cascade_labels,
                                                                             tiny_demo):
    """The cascade baseline finds its 3d_lowres stage beside it, and its labels equal those of
    stock ``nnUNetv2_predict -c 3d_cascade_fullres -prev_stage_predictions`` voxel for voxel."""
    out_dir, _ = tiny_demo
    baseline = Baseline.of("nnunet_cascade", trained_baselines["cascade"])
    assert baseline.previous.folder == trained_baselines["lowres"]
    predictor = BaselinePredictor(baseline, (0,))
    assert stock_cascade_labels
    for case, stock_path in stock_cascade_labels.items():
        ct = read_image(out_dir / "test_images" / f"{case}.nii.gz")
        stock = sitk.GetArrayFromImage(read_image(stock_path))
        np.testing.assert_array_equal(predictor.raw_labels(ct), stock)


def test_compare_with_nnunet_cascade_and_resenc_baselines(trained_baselines, stock_cascade_labels, tiny_demo,
                                                          tmp_path):
    """``compare --baseline`` with a 3d_cascade_fullres and a ResEnc M model: every output table,
    the box plots and the report; the cascade baseline's saved labels are the stock labels in the
    pipeline's convention, on the CT's grid."""
    from renal_nnunet.cli import main

    out_dir, _ = tiny_demo
    output = tmp_path / "comparison"
    code = main(["compare", "-m", str(out_dir / "models"), "-i", str(out_dir / "test_images"),
                 "-r", str(out_dir / "test_references"), "-o", str(output), "-f", "0",
                 "--baseline", f"nnunet_cascade={trained_baselines['cascade']}",
                 "--baseline", f"resenc_m={trained_baselines['resenc_m']}"])
    assert code == 0
    table = pd.read_csv(output / "comparison.csv", index_col="method")
    assert list(table.index) == ["cascade", "nnunet_cascade", "resenc_m"]
    per_case = pd.read_csv(output / "per_case.csv")
    assert {"method", "case_id", "fold", "status", "kidney_dice_right", "kits_dice_masses"} <= set(per_case.columns)
    assert sorted(per_case.method.unique()) == ["cascade", "nnunet_cascade", "resenc_m"]
    statistics = pd.read_csv(output / "statistics.csv")
    assert {"baseline", "metric", "p_value", "p_holm"} <= set(statistics.columns)
    assert set(statistics.baseline) == {"nnunet_cascade", "resenc_m"}
    report = (output / "comparison.md").read_text()
    assert "nnunet_cascade" in report and "Published figures" in report and "0.8799" in report
    assert (output / "boxplots.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recorded = json.loads((output / "comparison.json").read_text())["baselines"]["nnunet_cascade"]
    assert recorded["previous_stage"] == str(trained_baselines["lowres"])
    labels = json.loads((trained_baselines["cascade"] / "dataset.json").read_text())["labels"]
    for case, stock_path in stock_cascade_labels.items():
        ct = read_image(out_dir / "test_images" / f"{case}.nii.gz")
        saved = read_image(output / "nnunet_cascade" / f"{case}_seg.nii.gz")
        assert saved.GetSize() == ct.GetSize() and np.allclose(saved.GetOrigin(), ct.GetOrigin())
        expected = to_output_labels(sitk.GetArrayFromImage(read_image(stock_path)), ct, labels)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(saved), sitk.GetArrayFromImage(expected))
        assert set(np.unique(sitk.GetArrayFromImage(saved))) <= {0, *OUTPUT_LABELS.values()}


def test_cascade_without_its_previous_stage_or_fold_is_named(trained_baselines, tmp_path):
    """A cascade whose 3d_lowres folder is not beside it, or whose fold is untrained, is refused by name."""
    alone = tmp_path / trained_baselines["cascade"].name
    shutil.copytree(trained_baselines["cascade"], alone)
    with pytest.raises(InputError, match="previous stage 3d_lowres was not found"):
        Baseline.of("nnunet_cascade", alone)
    named = Baseline.of("nnunet_cascade", alone, trained_baselines["lowres"])
    assert named.previous.folder == trained_baselines["lowres"]
    with pytest.raises(InputError, match="fold 1 of this model is not trained"):
        BaselinePredictor(named, (1,))
    with pytest.raises(InputError, match="has no previous stage"):
        Baseline.of("resenc_m", trained_baselines["resenc_m"], trained_baselines["lowres"])


def test_a_case_that_fails_is_listed_and_left_out_of_the_statistics(trained_baselines, tiny_demo, tmp_path):
    """A CT no method can read (truncated) fails in every method without stopping the others: it is
    scored as an empty prediction in the pooled table, marked failed with no values per case, and
    listed in the report; the readable case is compared as usual."""
    out_dir, _ = tiny_demo
    images, references = tmp_path / "images", tmp_path / "references"
    shutil.copytree(out_dir / "test_images", images)
    shutil.copytree(out_dir / "test_references", references)
    ct, = images.glob("*.nii.gz")
    (images / "broken.nii.gz").write_bytes(ct.read_bytes()[:2000])
    shutil.copy(references / ct.name, references / "broken.nii.gz")
    result = compare_methods(images, references, tmp_path / "out", out_dir / "models", Runtime.resolve("torch", "cpu"),
                             [Baseline.of("resenc_m", trained_baselines["resenc_m"])], config=ComparisonConfig(folds=(0,)))
    assert list(result.table.index) == ["cascade", "resenc_m"]
    assert (result.table.failed_cases == 1).all() and (result.table.cases == 2).all()
    broken = result.per_case[result.per_case.case_id == "broken"]
    assert list(broken.status) == ["failed", "failed"] and broken.kidney_dice_right.isna().all()
    readable = result.per_case[result.per_case.case_id != "broken"]
    assert (readable.status == "ok").all() and readable.kidney_dice_right.notna().all()
    assert (result.statistics.n_pairs <= 1).all()
    report = (tmp_path / "out" / "comparison.md").read_text()
    assert "- cascade: broken" in report and "- resenc_m: broken" in report
