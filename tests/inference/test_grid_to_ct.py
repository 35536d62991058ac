"""Grid -> CT helpers that need no trained model: label boxes, merging crops, labels from the
foreground channels, and the map-back of the kidney stage's labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.box import Box
from renal_nnunet.inference.grid_to_ct import keep_higher_foreground, label_boxes, labels_from_foreground


def test_crop_boxes_follow_each_label_with_the_margin_in_mm():
    labels = np.zeros((10, 20, 30), np.uint8)
    labels[2:4, 5:8, 3:6] = 1
    labels[5:9, 10:12, 20:25] = 2
    image = sitk.GetImageFromArray(labels)
    image.SetSpacing((2.0, 1.0, 4.0))  # (x, y, z) mm
    boxes = label_boxes(image, margin_mm=4.0)
    # margin 4 mm = 2 voxels in x, 4 in y, 1 in z; clipped to the image
    assert boxes == {1: Box((1, 1, 1), (7, 11, 4)), 2: Box((18, 6, 4), (9, 10, 6))}


def _merged(boxes, shape):
    foreground = np.zeros((len(boxes[0][0]) - 1, *shape), np.float32)
    spread = np.zeros(shape, np.float32)
    for probabilities, start, size, box_spread in boxes:
        keep_higher_foreground(foreground, probabilities[1:], Box(start, size), [(spread, box_spread)])
    return foreground, spread


def test_merged_crops_keep_each_box_foreground():
    shape = (4, 4, 4)
    left = np.zeros((2, 4, 4, 2), np.float32)
    left[:] = np.array([0.2, 0.8], np.float32)[:, None, None, None]
    right = np.zeros((2, 4, 4, 1), np.float32)
    right[:] = np.array([0.4, 0.6], np.float32)[:, None, None, None]
    foreground, spread = _merged([(left, (0, 0, 0), (2, 4, 4), np.full((4, 4, 2), 0.1, np.float32)),
                                  (right, (3, 0, 0), (1, 4, 4), np.full((4, 4, 1), 0.3, np.float32))], shape)
    labels = labels_from_foreground(foreground)
    assert labels[..., :2].all() and labels[..., 3:].all() and not labels[..., 2].any()
    assert (spread[..., :2] == 0.1).all() and (spread[..., 3] == 0.3).all() and (spread[..., 2] == 0).all()


def test_overlapping_boxes_the_higher_foreground_wins_with_its_companions_and_ties_stay():
    first = np.array([0.3, 0.7], np.float32)[:, None, None, None] * np.ones((2, 1, 1, 3), np.float32)
    second = np.array([[[[0.2, 0.3, 0.9]]], [[[0.8, 0.7, 0.1]]]], np.float32)  # x: higher, tie, lower
    foreground, spread = _merged([(first, (0, 0, 0), (3, 1, 1), np.ones((1, 1, 3), np.float32)),
                                  (second, (0, 0, 0), (3, 1, 1), np.full((1, 1, 3), 2.0, np.float32))], (1, 1, 3))
    np.testing.assert_array_equal(foreground[0, 0, 0], np.array([0.8, 0.7, 0.7], np.float32))
    np.testing.assert_array_equal(spread[0, 0], [2.0, 1.0, 1.0])  # a tie keeps the earlier box


def test_multi_class_boxes_merge_by_total_foreground_keeping_the_winner_s_channels():
    a = np.array([0.2, 0.5, 0.3], np.float32)[:, None, None, None]
    b = np.array([0.3, 0.1, 0.6], np.float32)[:, None, None, None]
    foreground, _ = _merged([(a, (0, 0, 0), (1, 1, 1), np.zeros((1, 1, 1), np.float32)),
                             (b, (0, 0, 0), (1, 1, 1), np.zeros((1, 1, 1), np.float32))], (1, 1, 1))
    np.testing.assert_array_equal(foreground[:, 0, 0, 0], np.array([0.5, 0.3], np.float32))  # a's foreground 0.8 beats b's 0.7
    assert labels_from_foreground(foreground)[0, 0, 0] == 1


def test_two_class_labels_are_foreground_above_one_half_as_the_cascade_and_the_old_stage_merge():
    """For a 2-class model the one merge gives the cascade's mask (max of the boxes' mass probability
    > 0.5) and the labels of the old per-class merge (foreground max, background min, argmax);
    p = 0.5 exactly is background."""
    rng = np.random.default_rng(3)
    shape = (6, 7, 8)
    boxes, full = [], []
    for start, size in (((0, 0, 0), (5, 7, 6)), ((3, 1, 2), (5, 5, 4))):
        fg = rng.random(size[::-1]).astype(np.float32)
        fg.flat[::7] = 0.5
        box = np.stack([1 - fg, fg])
        boxes.append((box, start, size, np.zeros(size[::-1], np.float32)))
        whole = np.zeros((2, *shape), np.float32)
        whole[0] = 1.0
        whole[(slice(None), *Box(start, size).slices)] = box
        full.append(whole)
    foreground, _ = _merged(boxes, shape)
    labels = labels_from_foreground(foreground)
    stacked = np.stack(full)
    old_stage = np.argmax(np.stack([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)]), axis=0)
    cascade = stacked[:, 1].max(axis=0) > 0.5
    assert labels.dtype == np.uint8 and (foreground[0] == 0.5).any()
    np.testing.assert_array_equal(labels, cascade.astype(np.uint8))
    np.testing.assert_array_equal(labels, old_stage)


@pytest.mark.parametrize("slab_voxels", [2**24, 33 * 40 * 4, 1])
def test_channel_by_channel_argmax_equals_the_argmax_of_all_probabilities(slab_voxels, monkeypatch):
    """The kidney stage takes its labels channel by channel and slab by slab of source slices (a
    700-slice CT's full-size probability maps are never held); the labels are those of the full array."""
    from renal_nnunet.anatomy.geometry import resample_to_grid
    from renal_nnunet.inference import grid_to_ct
    from renal_nnunet.inference.grid_to_ct import _to_source, probabilities_to_source_labels

    monkeypatch.setattr(grid_to_ct, "SLAB_VOXELS", slab_voxels)

    ct = sitk.GetImageFromArray(np.zeros((21, 40, 33), np.float32))
    ct.SetSpacing((0.8, 0.8, 2.5))
    ct.SetDirection((0, 0, 1, 0, -1, 0, -1, 0, 0))
    _, sidecar = resample_to_grid(ct, 16, "linear", Box((2, 5, 1), (25, 30, 18)))
    logits = np.random.default_rng(0).normal(size=(3, 16, 16, 16)).astype(np.float32)
    logits[:, 5:9, 5:9, 5:9] = [[[[0.0]]], [[[4.0]]], [[[4.0]]]]  # exact ties between the two kidneys
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    expected = np.argmax(_to_source(probabilities, sidecar), axis=0)
    labels = probabilities_to_source_labels(probabilities, sidecar)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2}
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize("blob_zyx", [(slice(6, 9), slice(3, 6), slice(9, 12)), (slice(0, 2), slice(14, 16), slice(0, 3))])
def test_labels_are_resampled_near_the_foreground_only_and_equal_the_full_argmax(blob_zyx):
    """The kidney stage maps back only the source voxels near grid foreground (a whole CT's
    kidneys are a few percent of it); the labels everywhere equal the argmax of the full-size
    probabilities, also for foreground at the grid's edge and a reoriented CT."""
    from renal_nnunet.anatomy.geometry import resample_to_grid
    from renal_nnunet.inference.grid_to_ct import _labelled_region, _to_source, probabilities_to_source_labels

    ct = sitk.GetImageFromArray(np.zeros((30, 48, 40), np.float32))
    ct.SetSpacing((0.8, 0.7, 2.5))
    ct.SetDirection((0, 0, 1, 0, -1, 0, -1, 0, 0))
    _, sidecar = resample_to_grid(ct, 16, "linear", Box((3, 4, 2), (34, 40, 26)))
    logits = np.random.default_rng(1).normal(scale=0.3, size=(3, 16, 16, 16)).astype(np.float32)
    logits[0] += 3.0  # background everywhere but in the blob
    logits[(slice(1, 3), *blob_zyx)] += 6.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    region = _labelled_region(probabilities, sidecar)
    assert np.prod(region.size) < 0.15 * np.prod(sidecar.box.size)
    labels = probabilities_to_source_labels(probabilities, sidecar)
    assert set(np.unique(labels)) >= {0, 1}
    np.testing.assert_array_equal(labels, np.argmax(_to_source(probabilities, sidecar), axis=0))
    background_only = np.zeros_like(probabilities)
    background_only[0] = 1.0
    assert _labelled_region(background_only, sidecar) is None
    assert not probabilities_to_source_labels(background_only, sidecar).any()


def test_labels_of_a_long_ct_need_no_full_size_float_array(monkeypatch):
    """Mapping the kidney stage back costs the uint8 labels plus one slab, not ~12 bytes a voxel
    per channel (a 512 x 512 x 700 CT: 2.2 GB per channel)."""
    import tracemalloc

    from renal_nnunet.anatomy.geometry import resample_to_grid
    from renal_nnunet.inference import grid_to_ct

    monkeypatch.setattr(grid_to_ct, "SLAB_VOXELS", 2**18)
    ct = sitk.Image((256, 256, 90), sitk.sitkInt16)
    _, sidecar = resample_to_grid(ct, 16, "linear")
    logits = np.random.default_rng(0).normal(size=(3, 16, 16, 16)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    tracemalloc.start()
    labels = grid_to_ct.probabilities_to_source_labels(probabilities, sidecar)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert labels.shape == (90, 256, 256) and set(np.unique(labels)) == {0, 1, 2}
    assert peak < 2 * labels.size, f"{peak / labels.size:.1f} bytes per voxel"
