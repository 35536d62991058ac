"""Nephrometry on hand-built kidneys whose every component is known by construction, in several
storage orientations and on both sides of the body."""

from __future__ import annotations

import doctest
import functools
import math

import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.nephrometry import measure, points
from renal_nnunet.nephrometry.measure import max_diameter_mm, voxel_gap_mm
from renal_nnunet.nephrometry.score import score_masses
from tests.nephrometry.phantoms import endophytic_central_scene, exophytic_lower_pole_scene, grid, hilar_upper_scene, render

STORAGE = {"LPS": {}, "RPS (left-right flipped affine)": {"flip_x": True}, "IPL (as KiTS stores)": {"permute": True}}
EVERY_STORAGE_AND_SIDE = pytest.mark.parametrize(
    ("storage", "mirrored"), [(s, m) for s in STORAGE for m in (False, True)],
    ids=[f"{s}-{'left' if m else 'right'} kidney" for s in STORAGE for m in (False, True)])


def test_point_tables_and_measurement_examples_hold():
    for module in (points, measure):
        assert doctest.testmod(module).failed == 0


@functools.lru_cache(maxsize=None)
def _score(scene_of, storage: str, mirrored: bool):
    """The one mass's result of ``scene_of()`` stored as ``storage``, on the other side if ``mirrored``
    (cached: the orientation test compares the same runs)."""
    scene = scene_of().mirrored() if mirrored else scene_of()
    results = score_masses(*render(scene, grid(scene, **STORAGE[storage])))
    assert len(results) == 1
    return results[0]


@EVERY_STORAGE_AND_SIDE
def test_exophytic_lower_pole_lateral_anterior_mass_is_r1_e1_n1_a_l1(storage, mirrored):
    result = _score(exophytic_lower_pole_scene, storage, mirrored)
    p, m = result.points, result.measurements
    assert (p.renal_r, p.renal_e, p.renal_n, p.renal_a, p.renal_l) == (1, 1, 1, "a", 1)
    assert p.renal_h is False and p.renal_score == 4 and result.to_row()["renal_category"] == "low"
    assert (p.padua_location, p.padua_exophytic, p.padua_rim, p.padua_sinus, p.padua_collecting_system,
            p.padua_size) == (1, 1, 1, 1, 1, 1)
    assert p.padua_score == 6 and p.padua_suffix == "a"
    assert m.max_diameter_mm == pytest.approx(35.0, abs=2.5)  # one 2-3 mm voxel
    assert m.endophytic_fraction < 0.5 and m.anterior_offset_mm < -10 and m.medial_offset_mm < 0
    assert m.sinus_distance_mm >= 7 and m.polar_fraction == 0 and not m.crosses_polar_midline
    assert result.c_index > 2 and result.side == ("left" if mirrored else "right")


@EVERY_STORAGE_AND_SIDE
def test_endophytic_mass_crossing_the_midline_into_the_sinus_is_r3_e3_n3_l3(storage, mirrored):
    result = _score(endophytic_central_scene, storage, mirrored)
    p, m = result.points, result.measurements
    assert (p.renal_r, p.renal_e, p.renal_n, p.renal_a, p.renal_l) == (3, 3, 3, "x", 3)
    assert p.renal_score == 12 and result.to_row()["renal_category"] == "high"
    assert (p.padua_location, p.padua_exophytic, p.padua_sinus, p.padua_size) == (2, 3, 2, 3)
    assert m.endophytic_fraction == 1.0 and m.sinus_distance_mm == 0.0 and m.crosses_polar_midline
    assert m.max_diameter_mm == pytest.approx(75.0, abs=3.0)
    assert result.c_index < 0.5  # the mass's centre lies 14 mm from the kidney's, its radius is 38 mm


@pytest.mark.parametrize("mirrored", [False, True], ids=["right kidney", "left kidney"])
def test_medial_posterior_mass_at_the_hilum_is_l2_p_h_and_padua_medial(mirrored):
    result = _score(hilar_upper_scene, "LPS", mirrored)
    p, m = result.points, result.measurements
    assert (p.renal_r, p.renal_n, p.renal_a, p.renal_l, p.renal_h) == (1, 3, "p", 2, True)
    assert result.to_row()["renal_code"] == f"{p.renal_score}ph"
    assert (p.padua_rim, p.padua_sinus, p.padua_suffix) == (2, 2, "p")
    assert 0 < m.polar_fraction <= 0.5 and not m.crosses_polar_midline and m.hilum_distance_mm == 0.0


@pytest.mark.parametrize("scene", [exophytic_lower_pole_scene, endophytic_central_scene, hilar_upper_scene])
def test_scores_do_not_depend_on_storage_order_or_body_side(scene):
    rows = [_score(scene, storage, mirrored).to_row() for storage in STORAGE for mirrored in (False, True)]
    for row in rows[1:]:
        assert row.keys() == rows[0].keys()
        for column, value in row.items():
            if isinstance(value, float):
                assert value == pytest.approx(rows[0][column], abs=1e-6), column
            else:
                assert value == rows[0][column], column


def test_gaps_read_zero_at_contact_at_any_spacing_and_diameters_add_one_voxel():
    a, b = np.zeros((3, 1, 8), bool), np.zeros((3, 1, 8), bool)
    a[1, 0, :3], b[1, 0, 3:] = True, True
    assert voxel_gap_mm(a, b, (5.0, 0.7, 0.7)) == 0.0  # neighbours: touching
    b[1, 0, 3] = False
    assert voxel_gap_mm(a, b, (5.0, 0.7, 0.7)) == pytest.approx(0.7)  # one voxel of parenchyma between
    b[:] = False
    b[2, 0, 2] = True
    assert voxel_gap_mm(a, b, (5.0, 0.7, 0.7)) == 0.0  # the slice above: 5 mm between centres, touching
    assert voxel_gap_mm(a, np.zeros_like(b), (1.0, 1.0, 1.0)) == math.inf
    assert max_diameter_mm(np.array([[0, 0, 0], [0, 0, 9]]), (2.0, 2.0, 2.0)) == pytest.approx(20.0)


def test_a_mass_out_of_every_kidney_s_reach_is_reported_not_scored():
    scene = exophytic_lower_pole_scene()
    ct, kidneys, masses = render(scene, grid(scene))
    far = sitk.GetArrayFromImage(masses)
    far[:, :, :] = 0
    far[2:5, 2:5, 2:5] = 1  # a corner of the image, far from the kidney
    away = sitk.GetImageFromArray(far)
    away.CopyInformation(masses)
    result = score_masses(ct, kidneys, away)[0]
    assert result.measurements is None and result.points is None and "no kidney" in result.notes[0]
    assert result.to_row()["renal_score"] is None and math.isnan(result.c_index)
