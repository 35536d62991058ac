"""Grid -> CT through every stage's mapping, on random geometries: a label map made on the grid
by the converter's own functions (:func:`labels_to_grid`, the sidecar of :func:`prepare_grid_ct`)
comes back onto the source CT where it was.

Nearest paths (map-back) must be voxel-exact; linear paths (the stages' probabilities) must equal
the linear interpolation of the grid at each source voxel, and their labels must match the grid
label map's own footprint (centroid within half a source voxel, Dice at least 0.95). The truth is
computed in :mod:`tests.geometry_roundtrip.truth` from the documented convention only.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from renal_nnunet.anatomy.grid import labels_to_grid, prepare_grid_ct
from renal_nnunet.anatomy.labels import ONE_STAGE_LABELS, OUTPUT_LABELS
from renal_nnunet.inference.cascade import kidney_boxes, masses_from_boxes
from renal_nnunet.inference.ensemble import FoldProbabilities
from renal_nnunet.inference.grid_to_ct import (
    probabilities_to_source_labels,
    labels_of_boxes,
    probabilities_and_spread_to_source,
    probabilities_to_source,
)
from renal_nnunet.inference.map_back import map_labels_to_source, map_predictions_to_source
from renal_nnunet.io import read_image
from renal_nnunet.inference.baselines import to_output_labels
from tests.geometry_roundtrip.truth import (
    SEEDS,
    centroid,
    dice,
    ellipsoid,
    expected_from_grid,
    image_of,
    kidney_blobs,
    one_hot,
    random_layout,
    source_lps_mm,
)

CLEAR = 1e-4
"""Linear paths: a voxel whose two best classes are closer than this may go either way."""


def _grid_labels(labels: np.ndarray, layout) -> tuple[sitk.Image, object]:
    """The converter's grid label map and sidecar (as dataset_conversion.case makes them)."""
    grid_labels, _ = labels_to_grid(image_of(labels, layout), layout.grid, layout.box)
    return grid_labels, prepare_grid_ct(image_of(labels.astype(np.float32), layout), layout.grid, layout.box)[1]


def _argmax_clear(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax (ties to the lower class) and where the best class leads by at least :data:`CLEAR`."""
    top = np.sort(probabilities, axis=0)
    return probabilities.argmax(axis=0), top[-1] - top[-2] >= CLEAR


def _assert_where_it_was(labels: np.ndarray, footprint: np.ndarray, values) -> None:
    """Interpolated labels against the nearest footprint of the grid labels: per label, centroid
    within half a source voxel on each axis and Dice at least 0.95 (for an object several grid
    cells across: a blocky footprint's corners are cut by the interpolation)."""
    for value in values:
        got, want = labels == value, footprint == value
        assert dice(got, want) >= 0.95, f"label {value}: Dice {dice(got, want):.3f}"
        np.testing.assert_array_less(np.abs(centroid(got) - centroid(want)), 0.5)


@pytest.mark.parametrize("seed", SEEDS)
def test_map_back_puts_every_grid_label_on_the_source_voxels_of_its_cell(seed):
    layout = random_layout(seed)
    noise = np.random.default_rng(seed).integers(0, 4, layout.image.GetSize()[::-1]).astype(np.uint8)
    for labels in (noise, kidney_blobs(layout)):
        grid_labels, sidecar = _grid_labels(labels, layout)
        back = map_labels_to_source(grid_labels, sidecar)
        assert back.GetSize() == layout.image.GetSize() and back.GetOrigin() == layout.image.GetOrigin()
        expected, tie = expected_from_grid(sitk.GetArrayFromImage(grid_labels), layout, order=0)
        got = sitk.GetArrayFromImage(back)
        np.testing.assert_array_equal(got[layout.box.slices][~tie], expected[~tie])
        assert got.sum() == got[layout.box.slices].sum()  # 0 outside the box


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_predictions_folder_maps_back_through_the_written_sidecars(seed, tmp_path):
    layout = random_layout(seed)
    labels = kidney_blobs(layout, mass=True)
    grid_labels, sidecar = _grid_labels(labels, layout)
    sitk.WriteImage(grid_labels, str(tmp_path / "case_1.nii.gz"))
    sidecar.to_json(tmp_path / "sidecars" / "case_1.json")
    written, failures = map_predictions_to_source(tmp_path, tmp_path / "sidecars", tmp_path / "back")
    assert not failures and len(written) == 1
    expected, tie = expected_from_grid(sitk.GetArrayFromImage(grid_labels), layout, order=0)
    got = sitk.GetArrayFromImage(read_image(written[0]))
    np.testing.assert_array_equal(got[layout.box.slices][~tie], expected[~tie])
    assert got.sum() == got[layout.box.slices].sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_kidney_stage_probabilities_and_labels_land_where_the_grid_labels_were(seed):
    """The kidney stage on the whole CT (and on a box): probabilities are the linear interpolation
    of the grid's at each source voxel, labels their argmax, the left kidney at larger LPS x."""
    layout = random_layout(seed, grid=(12, 26))
    for layout in (layout.with_box((0, 0, 0), layout.image.GetSize()), layout):
        labels = kidney_blobs(layout)
        grid_labels, sidecar = _grid_labels(labels, layout)
        grid_array = sitk.GetArrayFromImage(grid_labels)
        probabilities = one_hot(grid_array, 3)
        expected, _ = expected_from_grid(probabilities[1:], layout, order=1)
        expected = np.concatenate([np.clip(1 - expected.sum(axis=0), 0, None)[None], expected])
        mapped = probabilities_to_source(FoldProbabilities(probabilities, (probabilities,)), sidecar, crop_only=True)
        np.testing.assert_allclose(mapped.ensemble, expected, atol=1e-5)
        np.testing.assert_allclose(mapped.per_fold[0], expected, atol=1e-5)
        want, clear = _argmax_clear(expected)
        got = probabilities_to_source_labels(probabilities, sidecar)[layout.box.slices]
        np.testing.assert_array_equal(got[clear], want[clear])
        x_mm = source_lps_mm(layout.image)[layout.box.slices][..., 0]
        assert x_mm[got == 2].mean() > x_mm[got == 1].mean()
        grid_array = sitk.GetArrayFromImage(_grid_labels(ellipsoid(layout), layout)[0])
        footprint, _ = expected_from_grid(grid_array, layout, order=0)
        _assert_where_it_was(probabilities_to_source_labels(one_hot(grid_array, 2), sidecar)[layout.box.slices], footprint, (1,))


def _mass_setup(seed: int):
    """A CT with kidneys, noise masses, the kidney boxes (margin 0-15 mm, some reaching the border)
    and each box's grid mass map made by the converter, with two folds that differ."""
    rng = np.random.default_rng(seed)
    layout = random_layout(seed, grid=(8, 26))
    whole = layout.with_box((0, 0, 0), layout.image.GetSize())
    kidneys = kidney_blobs(whole)
    masses = (rng.random(kidneys.shape) < 0.5).astype(np.uint8)
    boxes = kidney_boxes(image_of(kidneys, whole), margin_mm=float(rng.uniform(0.0, 15.0)))
    grid_maps = {}
    for side, box in boxes.items():
        box_layout = whole.with_box(box.start, box.size)
        grid_labels, sidecar = _grid_labels(masses, box_layout)
        ensemble = one_hot(sitk.GetArrayFromImage(grid_labels), 2)
        folds = (ensemble, np.stack([0.8 - 0.6 * ensemble[1], 0.2 + 0.6 * ensemble[1]]).astype(np.float32))
        grid_maps[box] = (box_layout, sidecar, FoldProbabilities(ensemble, folds))
    return whole, boxes, grid_maps


def _expected_merge(whole, boxes, grid_maps):
    """The documented merge: in box order, a box takes a voxel where its foreground is strictly
    higher than the merged one so far; the fold spread follows the winner."""
    shape = whole.image.GetSize()[::-1]
    merged, spread, tie = np.zeros(shape), np.zeros(shape), np.zeros(shape, bool)
    for box in boxes.values():
        box_layout, _, grid = grid_maps[box]
        p = expected_from_grid(grid.ensemble[1], box_layout, order=1)[0]
        fold_spread = expected_from_grid(np.std(np.stack([fold[1] for fold in grid.per_fold]), axis=0), box_layout,
                                         order=1)[0]  # the spread is taken on the grid, then mapped back
        where = box.slices
        tie[where] |= np.abs(p - merged[where]) < CLEAR
        higher = p > merged[where]
        merged[where] = np.where(higher, p, merged[where])
        spread[where] = np.where(higher, fold_spread, spread[where])
    return merged, spread, tie


@pytest.mark.parametrize("seed", SEEDS)
def test_mass_stage_boxes_land_on_their_own_voxels_and_merge_by_the_higher_probability(seed):
    whole, boxes, grid_maps = _mass_setup(seed)
    ct = whole.image

    def probabilities_of(box):
        _, sidecar, grid = grid_maps[box]
        return probabilities_to_source(grid, sidecar, crop_only=True)

    result = masses_from_boxes(ct, boxes, [probabilities_and_spread_to_source(grid_maps[box][2], grid_maps[box][1])
                                           for box in boxes.values()])
    merged, spread, tie = _expected_merge(whole, boxes, grid_maps)
    region = result.region
    assert region == boxes["right"].union(boxes["left"])
    clear = np.abs(merged - 0.5) >= CLEAR
    got = sitk.GetArrayFromImage(result.mask)
    np.testing.assert_array_equal(got[clear], (merged > 0.5)[clear])
    np.testing.assert_allclose(sitk.GetArrayFromImage(result.probability), merged[region.slices], atol=1e-5)
    np.testing.assert_allclose(sitk.GetArrayFromImage(result.spread)[~tie[region.slices]],
                               spread[region.slices][~tie[region.slices]], atol=1e-5)
    assert np.allclose(result.probability.GetOrigin(), ct.TransformIndexToPhysicalPoint(region.start), atol=1e-6)
    np.testing.assert_allclose(result.probability.GetSpacing(), ct.GetSpacing(), rtol=1e-12)
    np.testing.assert_allclose(result.probability.GetDirection(), ct.GetDirection(), atol=1e-12)
    stage_labels = labels_of_boxes(ct, list(boxes.values()), lambda box: probabilities_of(box).ensemble)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(stage_labels)[clear], (merged > 0.5)[clear])


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_one_stage_baseline_lands_where_the_grid_labels_were_with_sides_from_patient_x(seed):
    layout = random_layout(seed, voxels=(28, 40), spacing_mm=(3.0, 5.0), grid=(12, 26))
    layout = layout.with_box((0, 0, 0), layout.image.GetSize())
    kidneys = kidney_blobs(layout, mass=True, radius=0.14)
    one_stage = np.where(kidneys == 3, ONE_STAGE_LABELS["mass"], np.where(kidneys > 0, ONE_STAGE_LABELS["kidney"], 0))
    relative = np.indices(kidneys.shape) / (np.array(kidneys.shape) - 1)[:, None, None, None] - 0.5
    ct = np.where((relative ** 2).sum(axis=0) <= 0.2, 40.0, -1000.0).astype(np.float32)  # a body around the centre
    grid_labels, sidecar = _grid_labels(one_stage.astype(np.uint8), layout)
    probabilities = one_hot(sitk.GetArrayFromImage(grid_labels), 3)
    out = sitk.GetArrayFromImage(to_output_labels(probabilities_to_source_labels(probabilities, sidecar), image_of(ct, layout),
                                                  ONE_STAGE_LABELS))
    expected_probabilities, _ = expected_from_grid(probabilities, layout, order=1)
    labels, clear = _argmax_clear(expected_probabilities)
    components, count = ndimage.label(labels > 0, np.ones((3, 3, 3)))
    x_mm = source_lps_mm(layout.image)[..., 0]
    midline_mm = layout.image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in layout.image.GetSize()])[0]
    expected = np.zeros_like(out)
    for component in range(1, count + 1):
        inside = components == component
        left = x_mm[inside].mean() > midline_mm
        expected[inside] = OUTPUT_LABELS["kidney_left"] if left else OUTPUT_LABELS["kidney_right"]
    expected[labels == ONE_STAGE_LABELS["mass"]] = OUTPUT_LABELS["mass_too_small"]
    np.testing.assert_array_equal(out[clear], expected[clear])
    assert set(np.unique(expected)) == {0, 1, 2, 6}
