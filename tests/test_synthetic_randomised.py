"""The domain-randomised generator: what a user relies on when training on it.

Left is left in patient coordinates on any grid orientation, the label map matches the image, each
randomisation really varies from case to case, and scans without kidneys have none (and convert as
negative examples).
"""

from __future__ import annotations

import json

import cc3d
import numpy as np
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import physical_points_mm
from renal_nnunet.dataset_conversion.convert import ConversionConfig, convert_kits
from renal_nnunet.synthetic import write_synthetic_kits
from renal_nnunet.synthetic.randomised import PHASE_HU, PHASES, Tissue, make_randomised_phantom

SMALL = dict(inplane_voxels=(36, 44), slice_spacing_mm=(6.0, 8.0))
PERMUTED_FLIPPED = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)  # index x -> anterior, y -> right, z -> inferior


def _kidney_centroids_mm(phantom) -> list[np.ndarray]:
    """LPS centroids of the two largest kidney components, measured from the written voxels, by x."""
    labels = sitk.GetArrayFromImage(phantom.labels)
    components = cc3d.largest_k(labels > 0, k=2, connectivity=26)
    centres = [physical_points_mm(phantom.labels, np.argwhere(components == k)).mean(0) for k in (1, 2)]
    return sorted(centres, key=lambda c: c[0])


@pytest.mark.parametrize("direction", [None, PERMUTED_FLIPPED])
def test_left_kidney_lies_at_the_patients_left_on_any_grid(direction):
    phantom = make_randomised_phantom(4, field_of_view="abdomen", masses_per_kidney=(0, 0), direction=direction, **SMALL)
    assert {"kidney_left", "kidney_right"} <= phantom.organ_centres_mm.keys()
    right, left = _kidney_centroids_mm(phantom)
    # measured from the voxels through the image's own geometry; the deformation moves tissue <= ~2 cm
    assert np.linalg.norm(left - phantom.organ_centres_mm["kidney_left"]) < 25.0
    assert np.linalg.norm(right - phantom.organ_centres_mm["kidney_right"]) < 25.0
    assert left[0] - right[0] > 80.0, "the left kidney lies at larger LPS x (the patient's left)"


def test_same_seed_same_case_other_seed_other_case():
    first, again, other = (make_randomised_phantom(seed, **SMALL) for seed in (5, 5, 6))
    assert np.array_equal(sitk.GetArrayFromImage(first.ct), sitk.GetArrayFromImage(again.ct))
    assert np.array_equal(sitk.GetArrayFromImage(first.labels), sitk.GetArrayFromImage(again.labels))
    assert first.ct.GetSize() != other.ct.GetSize() or not np.array_equal(
        sitk.GetArrayFromImage(first.ct), sitk.GetArrayFromImage(other.ct))


@pytest.mark.parametrize("phase", PHASES)
def test_label_map_matches_the_image(phase):
    phantom = make_randomised_phantom(11, field_of_view="abdomen", phase=phase, masses_per_kidney=(2, 2),
                                      subtype="angiomyolipoma", **SMALL)
    assert phantom.phase == phase
    ct = sitk.GetArrayFromImage(phantom.ct).astype(float)
    labels = sitk.GetArrayFromImage(phantom.labels)
    kidney = ct[sitk.GetArrayFromImage(sitk.BinaryErode(phantom.labels == 1, [1, 1, 1])) > 0]
    column = PHASES.index(phase)
    low = min(PHASE_HU[Tissue.RENAL_CORTEX][column][0], PHASE_HU[Tissue.RENAL_MEDULLA][column][0])
    high = max(PHASE_HU[Tissue.RENAL_CORTEX][column][1], PHASE_HU[Tissue.RENAL_MEDULLA][column][1])
    assert low - 25 <= np.median(kidney) <= high + 25, "labelled kidney voxels carry the phase's kidney HU"
    outside = ct[(labels == 0) & (ct < -900)]
    assert outside.size > 0 and not (labels[ct < -900] > 0).any(), "no kidney label on air"
    tumours = ct[labels == 2]
    assert tumours.size and (tumours < -30).mean() > 0.05, "AML keeps its macroscopic fat under randomisation"
    cysts = ct[labels == 3]
    assert cysts.size and -40 <= np.median(cysts) <= 45, "cysts stay water-like"


def test_each_randomisation_varies_between_cases():
    phantoms = [make_randomised_phantom(seed, **SMALL) for seed in range(14)]
    assert len({p.phase for p in phantoms}) >= 3
    assert len({p.field_of_view for p in phantoms}) >= 4
    spacings = np.array([p.ct.GetSpacing() for p in phantoms])
    assert np.ptp(spacings[:, 0]) > 1.5 and np.ptp(spacings[:, 2]) > 1.0, "voxel size varies"
    kidney_hu = [np.median(sitk.GetArrayFromImage(p.ct)[sitk.GetArrayFromImage(p.labels) == 1])
                 for p in phantoms if (sitk.GetArrayFromImage(p.labels) == 1).any()]
    assert np.ptp(kidney_hu) > 80, "kidney attenuation is drawn per case"
    noise = [np.std(np.diff(sitk.GetArrayFromImage(p.ct)[:, :, :].astype(float), axis=2)[sitk.GetArrayFromImage(p.ct)[:, :, 1:] < -950])
             for p in phantoms]
    assert np.ptp(noise) > 5, "noise level varies"
    extents = [p.ct.GetSize()[2] * p.ct.GetSpacing()[2] for p in phantoms]
    assert np.ptp(extents) > 150, "scan length (field of view) varies"


@pytest.mark.parametrize("field_of_view", ["chest", "pelvis"])
def test_scans_without_kidneys_have_none(field_of_view):
    for seed in range(3):
        phantom = make_randomised_phantom(seed, field_of_view=field_of_view, masses_per_kidney=(1, 3), **SMALL)
        assert not sitk.GetArrayFromImage(phantom.labels).any()
        assert not phantom.lesions and not {"kidney_left", "kidney_right"} & phantom.organ_centres_mm.keys()


def test_negative_scans_convert_as_kidney_free_cases(tmp_path):
    src = write_synthetic_kits(tmp_path / "kits", 10, seed=0, generator="randomised", **SMALL)
    records = {r["case_id"]: r for r in json.loads((src / "kits23.json").read_text())}
    negatives = [case for case, r in records.items() if not r["kidneys_in_view"]]
    assert negatives, "a 10-case cohort draws chest-only or pelvis-only scans"
    assert all(records[case]["tumor_histologic_subtype"] is None for case in negatives)
    result = convert_kits(src, tmp_path / "raw", ConversionConfig(first_id=701, grid=16))
    assert result.ok, result.failed
    kidney_labels = next((tmp_path / "raw").glob("Dataset701_*")) / "labelsTr"
    for case in negatives:
        assert not sitk.GetArrayFromImage(sitk.ReadImage(str(kidney_labels / f"{case}.nii.gz"))).any()
    mass_images = [p.name for p in next((tmp_path / "raw").glob("Dataset702_*")).glob("imagesTr/*")]
    assert not any(name.startswith(tuple(negatives)) for name in mass_images), "no kidney crop of a kidney-free scan"
