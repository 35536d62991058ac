"""The demo's console reads like a product: one line per step with its time, then the tables;
nnU-Net's own output goes to a log file in the output folder, which the output names."""

from __future__ import annotations

import json

import pytest

from renal_nnunet.pipeline.demo import NNUNET_LOG
from tests.conftest import CONSOLE_FILE

NNUNET_CHATTER = ("not found in nnunetv2", "Searching in", "Inspecting module", "perform_everything_on_device",
                  "Warning", "INFO root", "Epoch ", "train_loss")


def test_console_has_one_line_per_step_and_names_the_log_file(tiny_demo):
    out_dir, summary = tiny_demo
    console = (out_dir.parent / CONSOLE_FILE).read_text()
    log_path = out_dir / NNUNET_LOG
    for chatter in NNUNET_CHATTER:
        assert chatter not in console, chatter
    lines = [line for line in console.splitlines() if line.strip()]
    steps = [line for line in lines if "demo step" in line]
    assert [line.split("demo step ")[1].split(":")[0] for line in steps] == [
        "data", "training", "prediction", "evaluation", "real_ct"]
    assert str(log_path) in lines[0], lines
    others = [line for line in lines[1:] if line not in steps]
    assert all(line.startswith(("WARNING", "ERROR")) for line in others), others
    assert str(log_path) in summary.text


def test_summary_shows_the_models_on_the_shared_real_ct_plainly(tiny_demo):
    """Where the shared real CT exists (the tests require it), the demo runs its models on it and says
    what they found, next to the statement that they never saw a real CT and the scan has no labels."""
    out_dir, summary = tiny_demo
    section = summary.text.split("## The same models on a real CT", 1)[1]
    assert "never saw a real CT" in section and "has no labels" in section
    rows = [line for line in section.splitlines() if line.startswith(("| right |", "| left |"))]
    assert len(rows) == 2 and all(line.count("|") == 4 for line in rows), rows
    assert "Masses reported:" in section and "met: " in section
    assert list((out_dir / "real_ct").glob("*_seg.nii.gz")), "the real CT's outputs are kept for a look"


def test_summary_shows_the_kidney_dice_the_grid_allows_beside_the_models(tiny_demo):
    """The held-out table says what a perfect kidney U-Net would score on the demo's grid, so a
    reader tells a Dice limited by the grid from one limited by the short training."""
    out_dir, summary = tiny_demo
    row = next(line for line in summary.text.splitlines() if line.startswith("| kidney Dice of a perfect kidney U-Net"))
    right, left = (float(value) for value in row.strip("|").split("|")[1:3])
    assert 0.5 < right <= 1 and 0.5 < left <= 1
    recorded = json.loads((out_dir / "demo_run.json").read_text())["kidney_dice_ceiling"]
    assert recorded == pytest.approx({"right": right, "left": left}, abs=5e-4)
    assert list((out_dir / "grid_ceiling" / "ceiling").glob("*_seg.nii.gz"))


def test_log_file_holds_nnunets_output(tiny_demo):
    out_dir, _ = tiny_demo
    written = (out_dir / NNUNET_LOG).read_text()
    assert "train_loss" in written and "Epoch " in written, "nnU-Net's trainer prints"
    assert "nnUNetPlans" in written or "Plans" in written, "nnU-Net's planner prints"
    assert "demo step training" in written, "the detailed log has the console's lines too"


def test_minutes_pick_a_named_training_length():
    """``--minutes`` chooses among the named trainer variants (the longest that fits per fold);
    the default and the tests' tiny demo train as long as before the lengths had names."""
    import pytest

    from renal_nnunet.pipeline.demo import DemoConfig, demo_length, training_length
    from tests.conftest import TINY_DEMO

    assert demo_length(DemoConfig()).trainer == "nnUNetTrainerRenalPaper_CPUdemo12min"
    assert training_length(DemoConfig()) == {"epochs": 28, "iterations_per_epoch": 20, "classifier_epochs": 28}
    assert demo_length(TINY_DEMO).trainer == "nnUNetTrainerRenalPaper_CPUdemo2min"
    assert training_length(TINY_DEMO) == {"epochs": 5, "iterations_per_epoch": 20, "classifier_epochs": 5}
    assert demo_length(DemoConfig(minutes=11.9)).baseline_trainer == "nnUNetTrainer_CPUdemo2min"
    assert demo_length(DemoConfig(minutes=12.0, folds=(0, 1))).minutes == 2.0, "the budget is shared by the folds"
    with pytest.raises(ValueError, match="12min .* 2min"):
        DemoConfig(minutes=1.0)


def test_an_ablation_fixes_one_randomisation_for_every_case(tmp_path):
    """``--phase`` / ``--field-of-view`` give every case of the demo's cohorts that phase and scan range
    (the generator's own draw, not a look-alike), the first line says so, and unknown names are refused."""
    import SimpleITK as sitk

    from renal_nnunet.dataset_conversion.kits import find_kits_cases
    from renal_nnunet.pipeline.demo import DemoConfig, _shapes_phrase, _write_cohort
    from renal_nnunet.synthetic.layouts import SYNTHETIC_SUBTYPE_CYCLE
    from renal_nnunet.synthetic.randomised import make_randomised_phantom

    config = DemoConfig(phase="non-contrast", field_of_view="chest")
    src = _write_cohort(config, tmp_path / "chest", 3, seed=0, shapes=None)
    cases = find_kits_cases(src)
    assert len(cases) == 3 and not any(sitk.GetArrayFromImage(sitk.ReadImage(str(case.label_path))).any()
                                       for case in cases), "chest-only scans hold no kidney"
    src = _write_cohort(DemoConfig(phase="non-contrast", field_of_view="abdomen"), tmp_path / "abdomen", 1, 0, None)
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(find_kits_cases(src)[0].image_path)))
    expected = make_randomised_phantom(0, subtype=SYNTHETIC_SUBTYPE_CYCLE[0], phase="non-contrast",
                                       field_of_view="abdomen")
    assert expected.phase == "non-contrast" and (written == sitk.GetArrayFromImage(expected.ct)).all()
    assert "every case in the non-contrast phase; every scan range chest" in _shapes_phrase(config, None)
    with pytest.raises(ValueError, match="nephrographic"):
        DemoConfig(phase="portal")
    with pytest.raises(ValueError, match="randomised generator only"):
        DemoConfig(generator="ellipsoid", field_of_view="abdomen")
