"""Reading the converter's lesion table and crops; folds; balanced sampling; input scaling."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from renal_nnunet.anatomy.crops import lesion_crop
from renal_nnunet.anatomy.geometry import image_like
from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.classification.data import (
    LesionCropDataset,
    class_balanced_sampler,
    crop_to_input,
    fold_split,
    read_lesion_table,
)
from renal_nnunet.classification.train import crop_augmentation
from renal_nnunet.io import InputError


def test_table_drops_unknown_and_keeps_folds(synthetic_lesions):
    table = read_lesion_table(synthetic_lesions)
    assert set(table["lesion_class"]) == set(LESION_CLASSES) and len(table) == 36
    assert (table["label"] == table["lesion_class"].map(LESION_CLASSES.index)).all()
    train, val = fold_split(table, 1)
    assert len(train) + len(val) == len(table) and set(val["fold"]) == {1} and 1 not in set(train["fold"])
    everything, nothing = fold_split(table, None)
    assert len(everything) == len(table) and nothing.empty
    with pytest.raises(ValueError, match="fold 7 not in"):
        fold_split(table, 7)
    volume, label = LesionCropDataset(val, grid=16)[0]
    assert volume.shape == (1, 16, 16, 16) and label == val["label"].iloc[0]


def test_folds_are_made_by_patient_when_the_table_has_none(synthetic_lesions, tmp_path):
    folder = tmp_path / "lesions"
    shutil.copytree(synthetic_lesions, folder)
    table = pd.read_csv(folder / "lesions.csv").drop(columns="fold")
    table["patient_id"] = [f"p{i // 3}" for i in range(len(table))]  # three lesions per patient
    table.to_csv(folder / "lesions.csv", index=False)
    folds = read_lesion_table(folder).groupby("patient_id")["fold"].nunique()
    assert (folds == 1).all()
    assert sorted(read_lesion_table(folder)["fold"].unique()) == [0, 1, 2, 3, 4]


def test_bad_tables_name_the_file_and_problem(synthetic_lesions, tmp_path):
    with pytest.raises(InputError, match="lesion table does not exist"):
        read_lesion_table(tmp_path)
    folder = tmp_path / "lesions"
    shutil.copytree(synthetic_lesions, folder)
    table = pd.read_csv(folder / "lesions.csv")
    first_crop = folder / "crops" / f"{table['case_id'][0]}_1.nii.gz"
    first_crop.unlink()
    with pytest.raises(InputError, match="crop file missing") as err:
        read_lesion_table(folder)
    assert str(first_crop) in str(err.value)
    table.drop(columns="lesion_class").to_csv(folder / "lesions.csv", index=False)
    with pytest.raises(InputError, match=r"lacks columns \['lesion_class'\]"):
        read_lesion_table(folder)
    table.assign(lesion_class="oncocytoma").to_csv(folder / "lesions.csv", index=False)
    with pytest.raises(InputError, match="unknown lesion_class values \\['oncocytoma'\\]"):
        read_lesion_table(folder)


def test_balanced_sampler_equalises_a_rare_class():
    labels = np.array([0] * 2 + [1] * 20 + [2] * 78)  # AML rare, as in KiTS23
    drawn = labels[list(class_balanced_sampler(labels, 30000, torch.Generator().manual_seed(0)))]
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.02)


@pytest.mark.parametrize("outside_hu, outside_value", [(-120.0, 0.0), (-420.0, -1.0)], ids=["window-floor", "below"])
def test_input_scaling_and_augmentation_keep_the_outside_value(outside_hu, outside_value):
    """The window maps to [0, 1]; a fill below it keeps its own value (fat clipped to the floor,
    0, stays apart from it), and what rotation and shift bring in takes the crop's fill."""
    ct = np.full((16, 16, 16), 200.0, np.float32)  # renal cortex around the lesion
    ct[4:12, 4:12, 4:12] = 30.0
    ct[7, 7, 7] = 500.0  # above the window
    ct[6, 6, 6] = -150.0  # fat below the window floor
    mask = np.zeros(ct.shape, np.uint8)
    mask[4:12, 4:12, 4:12] = 1
    ct_image = sitk.GetImageFromArray(ct)
    crop, _ = lesion_crop(ct_image, image_like(mask, ct_image), grid=16, margin_mm=4.0, outside_hu=outside_hu)
    tensor = crop_to_input(crop)  # the 16-voxel box on a 16^3 grid: voxel for voxel
    assert tensor.shape == (1, 16, 16, 16)
    assert tensor[0, 0, 0, 0] == outside_value and tensor[0, 5, 5, 5] == pytest.approx(0.5)
    assert tensor[0, 7, 7, 7] == 1 and tensor[0, 6, 6, 6] == 0
    for seed in range(4):
        np.random.seed(seed)
        torch.manual_seed(seed)
        augmented = crop_augmentation(16)(tensor)
        assert augmented.shape == tensor.shape and not torch.equal(augmented, tensor)
        # noise sd <= 0.05: the corners (outside the crop after a rotation or shift) stay near the fill
        assert all(abs(float(augmented[0, z, y, x]) - outside_value) < 0.25 for z in (0, -1) for y in (0, -1)
                   for x in (0, -1))
