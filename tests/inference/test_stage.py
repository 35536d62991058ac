"""Inference helpers that need no trained model: grid size from plans, crop boxes, merging crops,
and clear errors for a wrong model folder or a missing fold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.inference.stage import (
    combine_crop_probabilities,
    crop_boxes_from_labels,
    model_grid_size,
    predict_stage_probabilities,
)
from renal_nnunet.io import InputError


def _model_dir(tmp_path, median_size):
    model_dir = tmp_path / "Dataset501_RenalKidney128" / "nnUNetTrainerRenalPaper__nnUNetPlans__3d_fullres"
    model_dir.mkdir(parents=True)
    plans = {"configurations": {"3d_fullres": {"median_image_size_in_voxels": median_size}}}
    (model_dir / "plans.json").write_text(json.dumps(plans))
    return model_dir


def test_grid_size_comes_from_the_plans(tmp_path):
    assert model_grid_size(_model_dir(tmp_path, [128.0, 128.0, 128.0])) == 128


def test_a_model_not_trained_on_a_cubic_grid_is_refused(tmp_path):
    with pytest.raises(InputError, match="not a cubic grid"):
        model_grid_size(_model_dir(tmp_path, [90.0, 512.0, 512.0]))


def test_a_folder_without_plans_is_not_a_model(tmp_path):
    with pytest.raises(InputError, match="no plans.json"):
        model_grid_size(tmp_path)


def test_a_missing_fold_names_its_checkpoint(tmp_path):
    model_dir = _model_dir(tmp_path, [32.0, 32.0, 32.0])
    ct = sitk.Image([8, 8, 8], sitk.sitkInt16)
    with pytest.raises(InputError, match=r"fold_3.*checkpoint missing"):
        predict_stage_probabilities(ct, model_dir, folds=(3,))


def test_crop_boxes_follow_each_label_with_the_margin_in_mm():
    labels = np.zeros((10, 20, 30), np.uint8)
    labels[2:4, 5:8, 3:6] = 1
    labels[5:9, 10:12, 20:25] = 2
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((2.0, 1.0, 4.0))  # (x, y, z) mm
    boxes = crop_boxes_from_labels(image, margin_mm=4.0)
    # margin 4 mm = 2 voxels in x, 4 in y, 1 in z; clipped to the image
    assert boxes == [((1, 1, 1), (7, 11, 4)), ((18, 6, 4), (9, 10, 6))]


def test_merged_crops_keep_each_box_foreground():
    shape = (4, 4, 4)
    left = np.zeros((2, *shape), np.float32)
    left[0] = 1.0
    left[:, :, :, :2] = np.array([0.2, 0.8], np.float32)[:, None, None, None]
    right = np.zeros((2, *shape), np.float32)
    right[0] = 1.0
    right[:, :, :, 3:] = np.array([0.4, 0.6], np.float32)[:, None, None, None]
    labels = np.argmax(combine_crop_probabilities([left, right]), axis=0)
    assert labels[..., :2].all() and labels[..., 3:].all() and not labels[..., 2].any()
    with pytest.raises(ValueError):
        combine_crop_probabilities([])


def test_channel_by_channel_argmax_equals_the_argmax_of_all_probabilities():
    """The kidney stage takes its labels channel by channel (a 512x512 CT's three full-size
    probability maps need not be held at once); the labels are those of the full array."""
    from renal_nnunet.anatomy.geometry import resample_to_grid
    from renal_nnunet.inference.stage import _to_source, _to_source_labels

    ct = sitk.GetImageFromArray(np.zeros((21, 40, 33), np.float32))
    ct.SetSpacing((0.8, 0.8, 2.5))
    ct.SetDirection((0, 0, 1, 0, -1, 0, -1, 0, 0))
    _, sidecar = resample_to_grid(ct, 16, "linear", (2, 5, 1), (25, 30, 18))
    logits = np.random.default_rng(0).normal(size=(3, 16, 16, 16)).astype(np.float32)
    logits[:, 5:9, 5:9, 5:9] = [[[[0.0]]], [[[4.0]]], [[[4.0]]]]  # exact ties between the two kidneys
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    expected = np.argmax(_to_source(probabilities, sidecar), axis=0)
    labels = _to_source_labels(probabilities, sidecar)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2}
    np.testing.assert_array_equal(labels, expected)
