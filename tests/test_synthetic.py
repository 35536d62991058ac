"""Synthetic CT: phantoms, painting real KiTS23 label maps, KiTS layouts, lesion patches.

Anatomy is measured back from the written voxels with the images' geometry (independently of how
the phantom placed it), so the tests catch left/right and orientation mistakes.
"""

from __future__ import annotations

import filecmp
import json

import cc3d
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import ConvexHull

from renal_nnunet.anatomy.geometry import physical_points_mm
from renal_nnunet.io import InputError, check_same_geometry, read_label_map
from renal_nnunet.synthetic import (
    Phantom,
    make_lesion_patch,
    make_phantom,
    paint_ct,
    subsample_inplane,
    write_painted_kits,
    write_synthetic_kits,
)

SMALL = dict(shape_zyx=(40, 64, 64), spacing_zyx_mm=(6.0, 5.0, 5.0))
PERMUTED_FLIPPED = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # index x -> anterior, y -> right, z -> inferior


def _centroid_mm(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    return physical_points_mm(image, np.argwhere(mask)).mean(0)


def _anatomy_mm(ct: sitk.Image, labels: sitk.Image) -> dict[str, np.ndarray]:
    """LPS centroids measured from the voxels: spine (bone), liver (largest 70-140 HU blob), kidneys."""
    hu = sitk.GetArrayFromImage(sitk.Median(ct, [1, 1, 1]))
    label_array = sitk.GetArrayFromImage(labels)
    organ = (hu > 70) & (hu < 140) & (label_array == 0)
    blobs = cc3d.connected_components(organ, connectivity=6)
    largest = np.argmax(np.bincount(blobs.ravel())[1:]) + 1
    kidneys = cc3d.largest_k(label_array > 0, k=2, connectivity=26)
    kidney_centres = sorted((_centroid_mm(labels, kidneys == k) for k in (1, 2)), key=lambda c: c[0])
    return {
        "spine": _centroid_mm(ct, hu > 300),
        "liver": _centroid_mm(ct, blobs == largest),
        "kidney_right": kidney_centres[0],  # smaller LPS x = patient right
        "kidney_left": kidney_centres[1],
    }


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(7, masses_per_kidney=(2, 3), subtype="angiomyolipoma", **SMALL)


def test_phantom_is_deterministic_per_seed(phantom):
    again = make_phantom(7, masses_per_kidney=(2, 3), subtype="angiomyolipoma", **SMALL)
    other = make_phantom(8, masses_per_kidney=(2, 3), subtype="angiomyolipoma", **SMALL)
    assert np.array_equal(sitk.GetArrayFromImage(phantom.ct), sitk.GetArrayFromImage(again.ct))
    assert np.array_equal(sitk.GetArrayFromImage(phantom.labels), sitk.GetArrayFromImage(again.labels))
    assert phantom.lesions == again.lesions
    assert not np.array_equal(sitk.GetArrayFromImage(phantom.ct), sitk.GetArrayFromImage(other.ct))


def test_phantom_labels_types_and_geometry(phantom):
    assert phantom.ct.GetPixelID() == sitk.sitkInt16 and phantom.labels.GetPixelID() == sitk.sitkUInt8
    check_same_geometry(phantom.ct, phantom.labels)
    assert set(np.unique(sitk.GetArrayFromImage(phantom.labels))) == {0, 1, 2, 3}
    assert len(phantom.lesions) >= 4 and {lesion.side for lesion in phantom.lesions} == {"left", "right"}
    assert all(3.0 <= lesion.diameter_mm <= 60.0 for lesion in phantom.lesions)


def test_phantom_anatomy_is_on_the_correct_patient_side(phantom):
    anatomy = _anatomy_mm(phantom.ct, phantom.labels)
    midline_mm = anatomy["spine"][0]
    assert anatomy["kidney_left"][0] > midline_mm + 30 and anatomy["kidney_right"][0] < midline_mm - 30
    assert anatomy["liver"][0] < midline_mm - 20, "the liver must lie on the patient's right (smaller LPS x)"
    assert np.linalg.norm(anatomy["kidney_left"] - phantom.organ_centres_mm["kidney_left"]) < 15
    kidney_mm = physical_points_mm(phantom.labels, np.argwhere(sitk.GetArrayFromImage(phantom.labels) == 1))
    for lesion in phantom.lesions:
        assert (lesion.centre_mm[0] > midline_mm) == (lesion.side == "left")
        # every mass touches its kidney: a kidney voxel lies within the mass radius + 2 voxels
        gap_mm = np.linalg.norm(kidney_mm - np.asarray(lesion.centre_mm), axis=1).min()
        assert gap_mm < lesion.diameter_mm / 2 + 12.0


def test_phantom_sinus_fat_is_unlabelled_inside_the_kidney(phantom):
    hu = sitk.GetArrayFromImage(phantom.ct)
    labels = sitk.GetArrayFromImage(phantom.labels)
    kidneys = cc3d.largest_k(labels == 1, k=2, connectivity=26)
    for k in (1, 2):  # unlabelled voxels inside each kidney's convex hull are the renal sinus
        points = np.argwhere(kidneys == k)
        low, high = points.min(0), points.max(0) + 1
        box = np.argwhere(np.ones(high - low, bool)) + low
        facets = ConvexHull(points).equations  # inside: every facet's plane equation <= 0
        inside_hull = (box @ facets[:, :3].T + facets[:, 3] <= 1e-9).all(1)
        sinus = box[inside_hull & (labels[tuple(box.T)] == 0)]
        assert len(sinus) > 0.05 * len(points)
        assert np.median(hu[tuple(sinus.T)]) < -30, "the sinus is fat and not labelled kidney, as in KiTS"


def _mass_voxels_hu(phantom: Phantom, label: int, min_voxels: int) -> list[np.ndarray]:
    """HU values of each connected mass of one KiTS label with at least ``min_voxels`` voxels."""
    components = cc3d.connected_components(sitk.GetArrayFromImage(phantom.labels) == label, connectivity=26)
    hu = sitk.GetArrayFromImage(phantom.ct)
    return [hu[components == k] for k in range(1, components.max() + 1) if (components == k).sum() >= min_voxels]


@pytest.mark.parametrize("subtype", ["angiomyolipoma", "clear_cell_rcc", "multilocular_cystic_rcc"])
def test_masses_have_the_promised_attenuation(subtype):
    phantoms = [make_phantom(seed, masses_per_kidney=(2, 3), subtype=subtype, **SMALL) for seed in (11, 12)]
    cysts = np.concatenate([v for p in phantoms for v in _mass_voxels_hu(p, 3, 1)])
    tumours = [v for p in phantoms for v in _mass_voxels_hu(p, 2, 20)]
    assert len(cysts) > 20 and len(tumours) >= 2
    assert 0 <= cysts.mean() <= 20 and cysts.std() < 20, "cysts are homogeneous water"
    for tumour in tumours:
        if subtype == "angiomyolipoma":
            assert (tumour < -30).mean() > 0.15, "AML must contain macroscopic fat"
        elif subtype == "clear_cell_rcc":
            assert 40 <= tumour.mean() <= 150 and (tumour < -30).mean() < 0.01
            assert tumour.std() > 1.2 * cysts.std(), "solid tumours enhance heterogeneously"
        else:  # multilocular cystic RCC: water with thin enhancing septa
            assert 0 <= tumour.mean() <= 25 and (tumour < -30).mean() < 0.01


def test_phantom_anatomy_survives_other_orientations(phantom):
    flipped = make_phantom(7, masses_per_kidney=(2, 3), subtype="angiomyolipoma", direction=PERMUTED_FLIPPED, **SMALL)
    assert flipped.lesions == phantom.lesions  # placement is in mm, independent of the grid's axes
    reference = _anatomy_mm(phantom.ct, phantom.labels)
    for image_ct, image_labels in [
        (flipped.ct, flipped.labels),
        (sitk.DICOMOrient(phantom.ct, "RAI"), sitk.DICOMOrient(phantom.labels, "RAI")),
        (sitk.DICOMOrient(phantom.ct, "PIL"), sitk.DICOMOrient(phantom.labels, "PIL")),
    ]:
        measured = _anatomy_mm(image_ct, image_labels)
        for organ, centre in reference.items():
            assert np.linalg.norm(measured[organ] - centre) < 6.0, organ


def test_small_field_of_view_shrinks_the_anatomy_but_keeps_masses_visible():
    tiny = make_phantom(3, shape_zyx=(32, 32, 32), spacing_zyx_mm=(5.0, 5.0, 5.0), masses_per_kidney=(1, 1))
    labels = sitk.GetArrayFromImage(tiny.labels)
    assert len(tiny.lesions) == 2
    assert (labels >= 2).sum() > 0 and cc3d.connected_components(labels > 0).max() >= 2
    assert not (labels[[0, -1]].any() or labels[:, [0, -1]].any() or labels[:, :, [0, -1]].any()), "kidneys fit the field"


@pytest.mark.parametrize(
    "kwargs", [{"masses_per_kidney": (3, 1)}, {"masses_per_kidney": (-1, 2)}, {"shape_zyx": (64, 96)},
               {"spacing_zyx_mm": (5.0, 0.0, 4.0)}],
)
def test_make_phantom_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_phantom(0, **kwargs)


@pytest.mark.parametrize("kind", ["AML", "cystic", "solid"])
def test_lesion_patches_are_separable_by_intensity_pattern(kind):
    for seed in range(3):
        ct, mask = make_lesion_patch(kind, seed, size_zyx=(24, 24, 24), spacing_zyx_mm=(1.5, 1.0, 1.0))
        check_same_geometry(ct, mask)
        hu, inside = sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(mask).astype(bool)
        assert set(np.unique(inside)) == {False, True} and not inside[[0, -1]].any()
        lesion = hu[inside]
        if kind == "AML":
            assert (lesion < -30).mean() > 0.2
        elif kind == "cystic":
            assert 0 <= lesion.mean() <= 20 and lesion.std() < 20
        else:
            assert 40 <= lesion.mean() <= 150 and lesion.std() > 20
        assert np.median(hu[~inside]) > 60  # surrounded by renal parenchyma
    with pytest.raises(ValueError, match="unknown lesion kind"):
        make_lesion_patch("oncocytoma", 0)


PAINT_CASES = {
    "case_00017": "two kidneys, AML",
    "case_00194": "single right kidney",
    "case_00293": "single left kidney",
    "case_00521": "cyst subtype",
}


@pytest.mark.parametrize("case_id", sorted(PAINT_CASES))
def test_painting_a_real_kits23_case(kits23_dataset, case_id):
    original = read_label_map(kits23_dataset / case_id / "segmentation.nii.gz")
    labels = subsample_inplane(original, 4)
    subtype = {r["case_id"]: r["tumor_histologic_subtype"] for r in json.loads((kits23_dataset / "kits23.json").read_text())}[case_id]
    ct = paint_ct(labels, subtype, seed=0)
    check_same_geometry(labels, ct)
    hu, label_array = sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(labels)
    assert 150 <= hu[label_array == 1].mean() <= 250
    assert (hu[label_array > 0] > -500).all(), "every labelled voxel lies inside the body"
    if subtype == "angiomyolipoma":
        assert (hu[label_array == 2] < -30).mean() > 0.15
    if subtype == "cyst":
        assert 0 <= hu[label_array == 2].mean() <= 20
    if (label_array == 3).any():
        assert 0 <= hu[label_array == 3].mean() <= 20
    # the spine is painted medial to every kidney, i.e. in the patient's midline
    spine_x = _centroid_mm(ct, hu > 300)[0]
    kidneys = cc3d.connected_components(label_array > 0, connectivity=26)
    sizes = np.bincount(kidneys.ravel())[1:]
    centres_x = [_centroid_mm(labels, kidneys == k + 1)[0] for k in np.flatnonzero(sizes > 0.2 * sizes.max())]
    assert all(abs(x - spine_x) > 30 for x in centres_x)
    if case_id == "case_00194":  # single right kidney: the midline lies to its left
        assert len(centres_x) == 1 and spine_x > centres_x[0]
    elif case_id == "case_00293":  # single left kidney: the midline lies to its right
        assert len(centres_x) == 1 and spine_x < centres_x[0]
    else:
        assert min(centres_x) < spine_x < max(centres_x)


def test_painting_does_not_depend_on_array_orientation(kits23_dataset):
    labels = subsample_inplane(read_label_map(kits23_dataset / "case_00017" / "segmentation.nii.gz"), 4)
    reoriented = sitk.DICOMOrient(labels, "LPS")  # permutes and flips the array axes, same patient space
    assert sitk.GetArrayViewFromImage(reoriented).shape != sitk.GetArrayViewFromImage(labels).shape
    centres = []
    for label_map in (labels, reoriented):
        hu = sitk.GetArrayFromImage(paint_ct(label_map, "angiomyolipoma", seed=0))
        centres.append([_centroid_mm(label_map, hu > 300), _centroid_mm(label_map, hu < -500)])  # spine, air
    assert np.allclose(centres[0], centres[1], atol=3.0)


def test_subsample_inplane_keeps_physical_positions(kits23_dataset):
    original = read_label_map(kits23_dataset / "case_00017" / "segmentation.nii.gz")
    small = subsample_inplane(original, 3)
    assert small.GetSize()[0] == original.GetSize()[0]  # the slice axis (ITK x here) is untouched
    assert np.allclose(small.GetSpacing()[1:], 3 * np.asarray(original.GetSpacing()[1:]))
    for label in (1, 2):
        before = _centroid_mm(original, sitk.GetArrayViewFromImage(original) == label)
        after = _centroid_mm(small, sitk.GetArrayViewFromImage(small) == label)
        assert np.linalg.norm(before - after) < 2.0


def _nifti_matches(path, image: sitk.Image):
    """nibabel reads the same voxels with the RAS version of the image's LPS affine."""
    nifti = nib.load(str(path))
    lps_affine = np.eye(4)
    lps_affine[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * image.GetSpacing()
    lps_affine[:3, 3] = image.GetOrigin()
    assert np.allclose(nifti.affine, np.diag([-1, -1, 1, 1]) @ lps_affine, atol=1e-4)
    assert np.array_equal(np.asarray(nifti.dataobj).transpose(2, 1, 0), sitk.GetArrayFromImage(image))


@pytest.mark.parametrize("layout", ["kits23", "kits21"])
def test_write_synthetic_kits_layouts(tmp_path, layout):
    src = write_synthetic_kits(tmp_path / "a", 6, layout=layout, seed=2, **SMALL)
    folder, label_name, metadata_name = {"kits23": ("dataset", "segmentation.nii.gz", "kits23.json"),
                                         "kits21": ("data", "aggregated_MAJ_seg.nii.gz", "kits.json")}[layout]
    assert src == tmp_path / "a" / folder
    records = json.loads((src / metadata_name).read_text())
    assert [r["case_id"] for r in records] == [f"case_{i:05d}" for i in range(6)]
    subtypes = {r["tumor_histologic_subtype"] for r in records}
    assert {"angiomyolipoma", "clear_cell_rcc"} <= subtypes
    assert ("papillary" if layout == "kits21" else "papillary_rcc") in subtypes
    assert records[4]["tumor_histologic_subtype"] is None and records[4]["synthetic_lesions"] == []  # mass-free case
    all_labels = set()
    for record in records:
        case = src / record["case_id"]
        assert sorted(p.name for p in case.iterdir()) == sorted(["imaging.nii.gz", label_name])
        ct = sitk.ReadImage(str(case / "imaging.nii.gz"))
        labels = read_label_map(case / label_name, allowed_labels={0, 1, 2, 3}, reference=ct)
        _nifti_matches(case / label_name, labels)
        present = set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist())
        assert 1 in present, "every case has kidneys"
        all_labels |= present
        for kits_label in (2, 3):  # the metadata lists exactly the masses in the label map
            listed = sum(lesion["kits_label"] == kits_label for lesion in record["synthetic_lesions"])
            assert listed == cc3d.connected_components(sitk.GetArrayFromImage(labels) == kits_label).max()
    assert all_labels == {0, 1, 2, 3}, "a small cohort holds tumours and cysts"
    again = write_synthetic_kits(tmp_path / "b", 6, layout=layout, seed=2, **SMALL)
    assert filecmp.cmp(src / "case_00003" / "imaging.nii.gz", again / "case_00003" / "imaging.nii.gz", shallow=False)


def test_write_painted_kits_kits21_layout(tmp_path, kits23_dataset):
    src = write_painted_kits(kits23_dataset, tmp_path, layout="kits21", case_ids=["case_00017", "case_00582"],
                             inplane_downsample=8)
    records = {r["case_id"]: r for r in json.loads((src / "kits.json").read_text())}
    assert src.name == "data" and set(records) == {"case_00017", "case_00582"}
    assert records["case_00017"]["tumor_histologic_subtype"] == "angiomyolipoma"
    for case_id in records:
        original = read_label_map(kits23_dataset / case_id / "segmentation.nii.gz")
        labels = read_label_map(src / case_id / "aggregated_MAJ_seg.nii.gz")
        ct = sitk.ReadImage(str(src / case_id / "imaging.nii.gz"))
        check_same_geometry(labels, ct)
        _nifti_matches(src / case_id / "imaging.nii.gz", ct)
        assert np.array_equal(sitk.GetArrayFromImage(labels), sitk.GetArrayFromImage(subsample_inplane(original, 8)))
    broken = tmp_path / "broken"  # a truncated label map: reported by name, the other case still written
    (broken / "case_00017").mkdir(parents=True)
    (broken / "case_00582").mkdir()
    (broken / "kits23.json").write_text(json.dumps([records["case_00017"], records["case_00582"]]))
    good = (kits23_dataset / "case_00582" / "segmentation.nii.gz").read_bytes()
    (broken / "case_00582" / "segmentation.nii.gz").write_bytes(good)
    (broken / "case_00017" / "segmentation.nii.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="1 of 2 cases.*case_00017/segmentation.nii.gz"):
        write_painted_kits(broken, tmp_path / "partial", inplane_downsample=8)
    assert (tmp_path / "partial" / "dataset" / "case_00582" / "imaging.nii.gz").is_file()
    assert not (tmp_path / "partial" / "dataset" / "case_00017").exists()
    with pytest.raises(InputError, match="no metadata entry"):
        write_painted_kits(kits23_dataset, tmp_path / "x", case_ids=["case_99999"])
    with pytest.raises(ValueError, match="unknown layout"):
        write_painted_kits(kits23_dataset, tmp_path / "x", layout="kits19")


def test_paint_ct_rejects_unusable_label_maps():
    empty = sitk.Image([8, 8, 8], sitk.sitkUInt8)
    with pytest.raises(ValueError, match="no kidney"):
        paint_ct(empty, None, 0)
    bad = sitk.Image([8, 8, 8], sitk.sitkUInt8)
    bad[4, 4, 4] = 5
    with pytest.raises(ValueError, match="label values"):
        paint_ct(bad, None, 0)
