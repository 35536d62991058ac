"""``renal-nnunet evaluate`` end to end: matching by case id, sides in patient coordinates, errors
listed while the rest is evaluated, every table and figure written."""

from __future__ import annotations

import math
from pathlib import Path

import cc3d
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from renal_nnunet.anatomy.geometry import patient_left_mm, physical_points_mm
from renal_nnunet.anatomy.labels import LESION_CLASSES, OUTPUT_LABELS
from renal_nnunet.cli import main
from renal_nnunet.evaluation import EvaluationConfig, evaluate_folders
from tests.evaluation.helpers import ball

SHAPE_ZYX = (20, 40, 48)
SPACING_XYZ = (0.8, 0.8, 2.0)
# x index runs towards the patient's RIGHT (flipped x): left/right cannot be read from indices.
DIRECTION = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
ORIGIN = (47 * 0.8 / 2, -16.0, -20.0)
RIGHT, LEFT = OUTPUT_LABELS["kidney_right"], OUTPUT_LABELS["kidney_left"]
AML, CYSTIC, SOLID, SMALL = (OUTPUT_LABELS[n] for n in ("AML", "cystic", "solid", "mass_too_small"))


def to_image(array: np.ndarray, spacing=SPACING_XYZ) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetDirection(DIRECTION)
    image.SetOrigin(ORIGIN)
    return image


def kidneys() -> np.ndarray:
    """Right kidney at high x index (patient right in this geometry), left kidney at low x index."""
    seg = np.zeros(SHAPE_ZYX, np.uint8)
    seg[ball(SHAPE_ZYX, (10, 20, 36), (6, 12, 8))] = RIGHT
    seg[ball(SHAPE_ZYX, (10, 20, 11), (6, 12, 8))] = LEFT
    return seg


def reference(classes: dict[str, int]) -> np.ndarray:
    seg = kidneys()
    seg[ball(SHAPE_ZYX, (10, 14, 36), (2.5, 5, 5))] = classes["right_big"]
    seg[ball(SHAPE_ZYX, (10, 27, 36), (0.6, 1.5, 1.5))] = classes["right_small"]
    seg[ball(SHAPE_ZYX, (10, 15, 11), (2.5, 5, 5))] = classes["left_big"]
    seg[ball(SHAPE_ZYX, (12, 27, 10), (2, 3.5, 3.5))] = classes["left_missed"]
    return seg


def prediction(classes: dict[str, int]) -> np.ndarray:
    seg = kidneys()
    seg[ball(SHAPE_ZYX, (10, 15, 36), (2.5, 5, 5))] = classes["right_big"]
    seg[ball(SHAPE_ZYX, (10, 27, 36), (0.6, 1.5, 1.5))] = SMALL
    seg[ball(SHAPE_ZYX, (10, 15, 12), (2.5, 5, 5))] = classes["left_big"]
    seg[ball(SHAPE_ZYX, (5, 30, 14), (1.5, 2.5, 2.5))] = CYSTIC  # false positive, left kidney
    return seg


CASES = {
    "case_a": {"right_big": AML, "right_small": CYSTIC, "left_big": SOLID, "left_missed": CYSTIC},
    "case_b": {"right_big": CYSTIC, "right_small": AML, "left_big": AML, "left_missed": SOLID},
    "case_c": {"right_big": SOLID, "right_small": CYSTIC, "left_big": CYSTIC, "left_missed": AML},
}


def lesion_csv(seg: sitk.Image, path: Path) -> None:
    """A pipeline-style lesion table with centroids and class probabilities."""
    array = sitk.GetArrayFromImage(seg)
    rows = []
    for label in (AML, CYSTIC, SOLID, SMALL):
        from scipy import ndimage

        components, count = ndimage.label(array == label, structure=np.ones((3, 3, 3)))
        for k in range(1, count + 1):
            centroid = physical_points_mm(seg, np.argwhere(components == k).mean(axis=0)[None])[0]
            probabilities = {c: 0.1 for c in LESION_CLASSES}
            name = {AML: "AML", CYSTIC: "cystic", SOLID: "solid", SMALL: "too_small"}[label]
            if name in probabilities:
                probabilities[name] = 0.8
            rows.append({"lesion_id": len(rows) + 1, "centroid_x_mm": centroid[0], "centroid_y_mm": centroid[1],
                         "centroid_z_mm": centroid[2], "lesion_class": name,
                         **{f"prob_{c}": (p if name != "too_small" else math.nan) for c, p in probabilities.items()}})
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    for case_id, classes in CASES.items():
        sitk.WriteImage(to_image(reference(classes)), str(ref_dir / f"{case_id}.nii.gz"))
        pred = to_image(prediction(classes))
        sitk.WriteImage(pred, str(pred_dir / f"{case_id}_seg.nii.gz"))
        lesion_csv(pred, pred_dir / f"{case_id}_lesions.csv")
    sitk.WriteImage(to_image(kidneys()), str(ref_dir / "case_missing.nii.gz"))
    sitk.WriteImage(to_image(kidneys()), str(pred_dir / "case_extra_seg.nii.gz"))
    sitk.WriteImage(to_image(kidneys()), str(ref_dir / "case_geometry.nii.gz"))
    sitk.WriteImage(to_image(kidneys(), spacing=(0.8, 0.8, 3.0)), str(pred_dir / "case_geometry_seg.nii.gz"))
    bad = kidneys()
    bad[0, 0, 0] = 9
    sitk.WriteImage(to_image(kidneys()), str(ref_dir / "case_badlabel.nii.gz"))
    sitk.WriteImage(to_image(bad), str(pred_dir / "case_badlabel_seg.nii.gz"))
    return pred_dir, ref_dir


def test_cli_writes_every_table_and_figure_and_lists_failing_cases(folders, tmp_path, capsys):
    pred_dir, ref_dir = folders
    out = tmp_path / "report"
    assert main(["evaluate", "--pred", str(pred_dir), "--ref", str(ref_dir), "-o", str(out), "--workers", "2"]) == 0
    assert "evaluated 4 case(s), 4 error(s)" in capsys.readouterr().out  # the missing prediction scored as empty

    errors = pd.read_csv(out / "errors.csv").set_index("case_id")["problem"]
    assert "missing case" in errors["case_missing"] and "extra case" in errors["case_extra"]
    assert "geometry does not match" in errors["case_geometry"] and "unknown label values [9]" in errors["case_badlabel"]

    per_case = pd.read_csv(out / "per_case.csv")
    assert {"case_id", "structure", "dice", "hd_mm", "hd95_mm", "assd_mm"} <= set(per_case.columns)
    assert sorted(per_case.case_id.unique()) == sorted([*CASES, "case_missing"])
    assert set(per_case.structure) == {"kidney_right", "kidney_left", "mass_right", "mass_left", "mass"}
    kidney = per_case[per_case.structure.str.startswith("kidney")]
    predicted = kidney.case_id.isin(CASES)
    assert (kidney[predicted].dice > 0.99).all()  # whole kidneys (masses included) agree apart from the FP/FN masses
    assert (kidney[~predicted].dice == 0).all() and (~predicted).sum() == 2  # no prediction: both kidneys missed

    lesions = pd.read_csv(out / "per_lesion.csv", keep_default_na=False)
    assert {"case_id", "side", "status"} <= set(lesions.columns)
    for case_id in CASES:
        rows = lesions[lesions.case_id == case_id]
        assert sorted(zip(rows.side, rows.status)) == [
            ("left", "FN"), ("left", "FP"), ("left", "TP"), ("right", "TP"), ("right", "TP")]
    assert set(lesions[(lesions.status == "TP") & (pd.to_numeric(lesions.ref_average_diameter_mm) < 5)].pred_class) == {"unknown"}

    summary = pd.read_csv(out / "summary.csv")
    detection = summary[summary.section == "detection"].set_index(["group", "metric"])["value"]
    assert detection[("left", "tp")] == 3 and detection[("left", "fp")] == 3 and detection[("left", "fn")] == 3
    assert detection[("right", "recall")] == 1.0
    accuracy = summary[(summary.section == "classification") & (summary.metric == "accuracy")].set_index("group")["value"]
    assert accuracy[">=5mm"] == 1.0 and accuracy["<5mm"] == 0.0
    markdown = (out / "summary.md").read_text()
    for heading in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "KiTS", "Errors (4)"):
        assert heading in markdown
    for figure in ("fig_dice_by_type_side", "fig_hd_by_type_side", "fig_confusion", "fig_roc"):
        pixels = matplotlib.image.imread(out / f"{figure}.png")
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.std() > 0.01


def flip_storage(image: sitk.Image, itk_axis: int) -> sitk.Image:
    """The same anatomy stored with one array axis reversed (direction and origin updated)."""
    array = np.flip(sitk.GetArrayFromImage(image), axis=2 - itk_axis)
    last = [0, 0, 0]
    last[itk_axis] = image.GetSize()[itk_axis] - 1
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    direction[:, itk_axis] *= -1
    flipped = sitk.GetImageFromArray(np.ascontiguousarray(array))
    flipped.SetSpacing(image.GetSpacing())
    flipped.SetOrigin(image.TransformIndexToPhysicalPoint(last))
    flipped.SetDirection(tuple(direction.ravel()))
    return flipped


def test_kits_references_get_sides_from_patient_coordinates(kits23_dataset, tmp_path):
    """A real KiTS23 map (two kidneys, one tumour), shrunk in-plane, stored as is and with its
    patient-x axis reversed in the array: sides must follow patient coordinates in both. The
    prediction is KiTS's own kidney, so the reference's kidney is too (``ref_kidney="kits"``)."""
    image = sitk.ReadImage(str(kits23_dataset / "case_00038" / "segmentation.nii.gz"))
    array = sitk.GetArrayFromImage(image)[:, ::4, ::4]
    shrunk = sitk.GetImageFromArray(np.ascontiguousarray(array))
    shrunk.SetSpacing([sp * f for sp, f in zip(image.GetSpacing(), (1, 4, 4))])
    shrunk.SetOrigin(image.GetOrigin())
    shrunk.SetDirection(image.GetDirection())
    # The truth, from geometry: of the two kidney components, the one further to +x (LPS) is left.
    components, count = cc3d.connected_components(array > 0, connectivity=26, return_N=True)
    assert count == 2
    x_mm = [patient_left_mm(shrunk, np.argwhere(components == k)).mean() for k in (1, 2)]
    truth = np.zeros_like(array)
    for k, x in zip((1, 2), x_mm):
        truth[components == k] = LEFT if x == max(x_mm) else RIGHT
    truth[array >= 2] = SOLID
    lr_axis = int(np.argmax(np.abs(np.asarray(image.GetDirection()).reshape(3, 3)[0])))
    for name, flip in (("as_is", False), ("flipped", True)):
        ref, pred = (sitk.GetImageFromArray(a) for a in (array, truth))
        for img in (ref, pred):
            img.CopyInformation(shrunk)
        if flip:
            ref, pred = flip_storage(ref, lr_axis), flip_storage(pred, lr_axis)
        (tmp_path / name / "ref").mkdir(parents=True)
        (tmp_path / name / "pred").mkdir()
        sitk.WriteImage(ref, str(tmp_path / name / "ref" / "case_00038.nii.gz"))
        sitk.WriteImage(pred, str(tmp_path / name / "pred" / "case_00038_seg.nii.gz"))
    results = [evaluate_folders(tmp_path / n / "pred", tmp_path / n / "ref", tmp_path / n / "out",
                                EvaluationConfig(ref_format="kits", ref_kidney="kits", figures=False))
               for n in ("as_is", "flipped")]
    for result in results:
        assert result.errors.empty
        dice = result.per_case.set_index("structure")["dice"]
        assert dice["kidney_right"] == 1.0 and dice["kidney_left"] == 1.0 and dice["mass"] == 1.0
        assert list(result.per_lesion.status) == ["TP"]
        assert result.kits.set_index("hec").loc["masses", "surface_dice"] == pytest.approx(1.0)
    volumes = [r.per_case.set_index("structure")["ref_volume_ml"] for r in results]
    pd.testing.assert_series_equal(volumes[0], volumes[1])
    assert volumes[0]["kidney_left"] > 0 and volumes[0]["kidney_right"] > 0


def test_reference_lesion_table_gives_classes_and_a_folder_of_failures_still_reports(tmp_path, capsys):
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    kits = np.zeros(SHAPE_ZYX, np.uint8)
    kits[kidneys() > 0] = 1
    tumour = ball(SHAPE_ZYX, (10, 14, 36), (2.5, 5, 5))
    kits[tumour] = 2
    ref = to_image(kits)
    (ref_dir / "case_k").mkdir()
    sitk.WriteImage(ref, str(ref_dir / "case_k" / "segmentation.nii.gz"))  # KiTS case-folder layout
    pred = reference(CASES["case_a"])  # its right-kidney AML lies where the KiTS tumour is
    sitk.WriteImage(to_image(pred), str(pred_dir / "case_k_seg.nii.gz"))
    centroid = physical_points_mm(ref, np.argwhere(tumour).mean(axis=0)[None])[0]
    table = tmp_path / "lesions.csv"
    pd.DataFrame([{"case_id": "case_k", "side": "right", "lesion_id": 1, "lesion_class": "AML",
                   "centroid_x_mm": centroid[0], "centroid_y_mm": centroid[1], "centroid_z_mm": centroid[2]}]).to_csv(table, index=False)
    result = evaluate_folders(pred_dir, ref_dir, tmp_path / "out",
                              EvaluationConfig(ref_format="kits", lesions_ref=table, figures=False))
    tp = result.per_lesion[result.per_lesion.status == "TP"].set_index("ref_id")
    assert tp.loc[1, "ref_class"] == "AML" and tp.loc[1, "side"] == "right" and tp.loc[1, "pred_class"] == "AML"
    assert result.per_case.set_index("structure").loc["kidney_left", "dice"] > 0.99

    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "case_k_seg.nii.gz").write_bytes(b"not a nifti")
    assert main(["evaluate", "--pred", str(only_bad), "--ref", str(ref_dir), "--ref-format", "kits",
                 "-o", str(tmp_path / "out_bad")]) == 1
    assert "evaluated 0 case(s), 1 error(s)" in capsys.readouterr().out
    assert "cannot be read" in (tmp_path / "out_bad" / "summary.md").read_text()


def test_a_predict_output_folder_is_read_by_its_seg_files_only(tmp_path):
    """Grad-CAM maps and other NIfTIs beside ``<case>_seg.nii.gz`` are not taken for cases."""
    from renal_nnunet.evaluation.evaluate import find_cases

    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    volume = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8))
    for name in ("case_a_seg.nii.gz", "case_a_lesion1_gradcam.nii.gz"):
        sitk.WriteImage(volume, str(pred_dir / name))
    sitk.WriteImage(volume, str(ref_dir / "case_a.nii.gz"))
    pairs, errors = find_cases(pred_dir, ref_dir)
    assert list(pairs) == ["case_a"] and pairs["case_a"][0].name == "case_a_seg.nii.gz"
    assert errors == []
