"""nnU-Net v2 accepts every written dataset; splits are grouped by patient and installable."""

from __future__ import annotations

import json

import pytest

from renal_nnunet.io import InputError
from renal_nnunet.nnunet.splits import install_splits, patient_folds, splits_for_cases


def test_nnunet_verify_dataset_integrity_accepts_every_written_dataset(converted_subset, nnunet_env):
    # nnU-Net's own checker (what `nnUNetv2_plan_and_preprocess --verify_dataset_integrity` runs),
    # called in-process to spare CI four interpreter start-ups; it raises on any problem.
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    raw, _, _ = converted_subset
    folders = sorted(raw.glob("Dataset*"))
    assert len(folders) == 4
    for folder in folders:
        verify_dataset_integrity(str(folder), num_processes=1)


def test_install_splits_puts_the_file_where_nnunet_reads_it(converted_subset, nnunet_env):
    raw, _, _ = converted_subset
    kidney = next(raw.glob("Dataset501_*"))
    target = install_splits(kidney, nnunet_env["nnUNet_preprocessed"] / kidney.name)
    assert target.name == "splits_final.json"
    assert json.loads(target.read_text()) == json.loads((kidney / "splits_final.json").read_text())
    with pytest.raises(InputError, match="splits_final.json"):
        install_splits(nnunet_env["nnUNet_raw"], nnunet_env["nnUNet_preprocessed"] / "x")


def test_series_of_one_patient_share_a_fold_and_folds_shrink_with_few_patients():
    case_patients = {f"p{p}_s{s}": f"p{p}" for p in range(7) for s in range(3)}
    folds = patient_folds(case_patients.values())
    splits = splits_for_cases(case_patients, folds)
    assert len(splits) == 5
    assert sorted(c for s in splits for c in s["val"]) == sorted(case_patients)
    for split in splits:
        val_patients = {case_patients[c] for c in split["val"]}
        assert not val_patients & {case_patients[c] for c in split["train"]}
    assert patient_folds(case_patients.values()) == folds  # deterministic
    assert max(patient_folds(["a", "b", "c"]).values()) == 2  # three patients: three folds
    with pytest.raises(ValueError, match="at least 2 patients"):
        patient_folds(["a", "a"])
