"""Real KiTS23 kidney, tumour and cyst shapes in the randomised generator: what a user relies on.

The library takes only whole, mass-free kidneys and tells their side from patient coordinates (the
same shapes whatever the label map's storage order); a placed kidney is the labelled kidney, left
of the patient on any grid, where the placement's affine puts it; draws vary shape, side, turn and
size; real masses keep their kind's features and drawn size; the demo never trains on the shapes of
the cases its painted-KiTS control scores.
"""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import ImageGeometry, physical_points_mm
from renal_nnunet.io import write_image
from renal_nnunet.synthetic.kits_shapes import draw_kidney, load_kits_shapes
from renal_nnunet.synthetic.randomised import make_randomised_phantom

SHAPE_CASES = ("case_00017", "case_00048", "case_00137", "case_00524")  # masses on one side or both; cysts
SMALL = dict(inplane_voxels=(48, 56), slice_spacing_mm=(4.0, 5.0))
PERMUTED_FLIPPED = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


@pytest.fixture(scope="module")
def library(kits23_dataset):
    return load_kits_shapes(kits23_dataset, case_ids=SHAPE_CASES)


def _mass_free_kidney_sides(segmentation: sitk.Image) -> set[str]:
    """Sides of a case's mass-free kidneys, told from patient x of each of its two kidneys' voxels."""
    labels = sitk.GetArrayFromImage(segmentation)
    kidneys = cc3d.largest_k(labels > 0, k=2, connectivity=26)
    x = {k: physical_points_mm(segmentation, np.argwhere(kidneys == k))[:, 0].mean() for k in (1, 2)}
    return {"left" if x[k] == max(x.values()) else "right" for k in (1, 2) if not (labels[kidneys == k] > 1).any()}


def test_library_holds_whole_mass_free_kidneys_sided_in_patient_coordinates(library, kits23_dataset, tmp_path):
    expected = {(case_id, side) for case_id in SHAPE_CASES for side in _mass_free_kidney_sides(
        sitk.ReadImage(str(kits23_dataset / case_id / "segmentation.nii.gz")))}
    assert {(shape.case_id, shape.side) for shape in library.kidneys} == expected
    assert len(expected) == 3, "case_00137 has masses in both kidneys"
    by_case = {shape.case_id: shape for shape in library.kidneys}
    for shape in library.kidneys:
        assert 100 <= shape.parenchyma.sum() * shape.spacing_mm**3 / 1000 <= 350, "a whole adult kidney (ml)"
        sinus = shape.outline & ~shape.parenchyma
        assert sinus.sum() > 0.01 * shape.outline.sum(), "the outline closes over a renal sinus"
        assert not (shape.parenchyma & ~shape.outline).any()
    assert {(m.case_id, m.kits_label) for m in library.masses} >= {("case_00137", 2), ("case_00137", 3)}
    # The same label maps stored in another axis order, flipped: the same sides and voxels.
    stored_otherwise = tmp_path / "dataset"
    for case_id in SHAPE_CASES:
        segmentation = sitk.ReadImage(str(kits23_dataset / case_id / "segmentation.nii.gz"))
        write_image(sitk.DICOMOrient(segmentation, "ARI"), stored_otherwise / case_id / "segmentation.nii.gz")
    again = {shape.case_id: shape for shape in load_kits_shapes(stored_otherwise).kidneys}
    assert again.keys() == by_case.keys()
    for case_id, shape in by_case.items():
        assert again[case_id].side == shape.side
        assert abs(int(again[case_id].parenchyma.sum()) - int(shape.parenchyma.sum())) <= 0.02 * shape.parenchyma.sum()


@pytest.mark.parametrize("direction", [None, PERMUTED_FLIPPED])
def test_placed_shapes_are_the_labelled_kidneys_left_of_the_patient_on_any_grid(library, direction):
    phantom = make_randomised_phantom(3, field_of_view="abdomen", masses_per_kidney=(0, 0), phase="nephrographic",
                                      direction=direction, kits_shapes=library, **SMALL)
    labels = sitk.GetArrayFromImage(phantom.labels)
    kidneys = cc3d.largest_k(labels == 1, k=2, connectivity=26)
    centres = sorted((physical_points_mm(phantom.labels, np.argwhere(kidneys == k)).mean(0) for k in (1, 2)),
                     key=lambda c: c[0])
    right, left = centres
    assert left[0] - right[0] > 80.0, "the left kidney lies at larger LPS x (the patient's left)"
    assert np.linalg.norm(left - phantom.organ_centres_mm["kidney_left"]) < 25.0
    voxel_ml = np.prod(phantom.labels.GetSpacing()) / 1000
    for k in (1, 2):
        assert 60 <= (kidneys == k).sum() * voxel_ml <= 450, "a kidney-sized shape, scaled with the body"
    ct = sitk.GetArrayFromImage(phantom.ct).astype(float)
    inner = sitk.GetArrayFromImage(sitk.BinaryErode(phantom.labels == 1, [1, 1, 1])) > 0
    assert 100 <= np.median(ct[inner]) <= 260, "labelled voxels carry the nephrographic kidney's HU"


def test_each_draw_varies_the_shape_its_side_its_turn_and_size(library):
    placements = [draw_kidney(library, "left", (0.0, 0.0, 0.0), 1.0, np.random.default_rng(seed))
                  for seed in range(12)]
    assert len({p.shape.case_id for p in placements}) == len(library.kidneys), "every shape gets drawn"
    mirrored = [np.linalg.det(np.reshape(p.placement.linear, (3, 3))) < 0 for p in placements]
    assert all(m == (p.shape.side == "right") for m, p in zip(mirrored, placements)), \
        "a right kidney is mirrored to serve as a left one, a left one is not"
    lengths = [max(p.envelope().semi_axes_mm) for p in placements]
    assert np.ptp(lengths) > 5.0, "kidney length varies (mm)"
    axes = [np.reshape(p.envelope().rotation, (3, 3))[:, 2] for p in placements]
    assert min(abs(a @ b) for a in axes for b in axes) < 0.99, "the long axis turns"


def test_placement_maps_the_shape_exactly_and_scales_its_volume(library):
    """The sinus (hilum) lands where the placement's affine sends it; the volume scales by its determinant."""
    geometry = ImageGeometry.from_parts((100, 100, 110), (1.5, 1.5, 1.5), (-75.0, -75.0, -82.5), np.eye(3).ravel())
    for seed in range(6):
        for side in ("right", "left"):
            placed = draw_kidney(library, side, (0.0, 0.0, 0.0), 1.0, np.random.default_rng(seed))
            shape, linear = placed.shape, np.reshape(placed.placement.linear, (3, 3))
            slices, maps = placed.sample(geometry)
            first_xyz = np.array([s.start for s in slices[::-1]])
            placed_mm = lambda mask: geometry.index_to_mm(np.argwhere(mask)[:, ::-1] + first_xyz).mean(0)  # noqa: E731
            source_mm = lambda mask: np.argwhere(mask)[:, ::-1].mean(0) * shape.spacing_mm  # noqa: E731
            sinus, placed_sinus = shape.outline & ~shape.parenchyma, maps["outline"] & ~maps["parenchyma"]
            expected = linear @ (source_mm(sinus) - source_mm(shape.outline))
            assert np.allclose(placed_mm(placed_sinus) - placed_mm(maps["outline"]), expected, atol=1.5), \
                f"the {side} kidney's sinus sits where the affine puts it (mm)"
            volume_ml = shape.parenchyma.sum() * shape.spacing_mm**3 * abs(np.linalg.det(linear)) / 1000
            assert maps["parenchyma"].sum() * 1.5**3 / 1000 == pytest.approx(volume_ml, rel=0.05)


def test_real_masses_keep_their_kind_and_drawn_size(library):
    phantom = make_randomised_phantom(11, field_of_view="abdomen", masses_per_kidney=(2, 2), subtype="angiomyolipoma",
                                      kits_shapes=library, **SMALL)
    ct = sitk.GetArrayFromImage(phantom.ct).astype(float)
    labels = sitk.GetArrayFromImage(phantom.labels)
    tumours, cysts = ct[labels == 2], ct[labels == 3]
    assert tumours.size and (tumours < -30).mean() > 0.05, "AML keeps its macroscopic fat"
    assert cysts.size and -40 <= np.median(cysts) <= 45, "cysts stay water-like"
    voxel_ml = np.prod(phantom.labels.GetSpacing()) / 1000
    drawn_ml = sum(np.pi / 6 * lesion.diameter_mm**3 / 1000 for lesion in phantom.lesions)
    assert 0.5 * drawn_ml <= (labels >= 2).sum() * voxel_ml <= 1.6 * drawn_ml, "masses are painted at their drawn size"


def test_demo_takes_no_shape_from_the_painted_control_cases(kits23_dataset, tmp_path):
    """The painted-KiTS control (``scripts/bench_sim2real.py``) scores the first cases: the demo's
    generator must not have trained on their shapes."""
    from renal_nnunet.pipeline.demo import DemoConfig, demo_kits_shapes
    from renal_nnunet.synthetic.kits_shapes import CONTROL_CASES, control_case_ids

    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for case_id in sorted(p.name for p in kits23_dataset.glob("case_*"))[:CONTROL_CASES + 2]:
        (dataset / case_id).symlink_to(kits23_dataset / case_id)
    shapes = demo_kits_shapes(DemoConfig(kits_shapes=dataset))
    used = {s.case_id for s in shapes.kidneys} | {m.case_id for m in shapes.masses}
    assert used and not used & set(control_case_ids(dataset))
    assert len(control_case_ids(dataset)) == CONTROL_CASES
    assert demo_kits_shapes(DemoConfig(kits_shapes=None)) is None
    assert demo_kits_shapes(DemoConfig(kits_shapes=dataset, generator="ellipsoid")) is None
