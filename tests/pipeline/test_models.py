"""The models folder: manifest validation, export/import round trip, clear errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from renal_nnunet.cli import main as cli_main
from renal_nnunet.io import InputError
from renal_nnunet.pipeline.models import (
    MANIFEST_NAME,
    assemble_models,
    export_models,
    find_classifier_checkpoints,
    import_models,
    load_models,
)


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_import_round_trip_is_byte_identical(tiny_demo, tmp_path, capsys):
    models = tiny_demo[0] / "models"
    assert cli_main(["export-models", "-m", str(models), "-o", str(tmp_path / "models.zip")]) == 0
    assert cli_main(["import-models", "-i", str(tmp_path / "models.zip"), "-m", str(tmp_path / "imported")]) == 0
    assert "imported models (grid 32" in capsys.readouterr().out
    assert _digests(tmp_path / "imported") == _digests(models)
    assert load_models(tmp_path / "imported") == load_models(models)
    with pytest.raises(InputError, match="already exists and is not empty"):
        import_models(tmp_path / "models.zip", tmp_path / "imported")
    import_models(tmp_path / "models.zip", tmp_path / "imported", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imported", "models.zip"]  # no staging left over


def test_import_of_an_incomplete_zip_names_the_missing_checkpoint(tiny_demo, tmp_path):
    models = tiny_demo[0] / "models"
    manifest = load_models(models)
    missing = f"{manifest.kidney.path}/fold_0/checkpoint_final.pth"
    with zipfile.ZipFile(tmp_path / "partial.zip", "w") as archive:
        for path in models.rglob("*"):
            if path.is_file() and path.relative_to(models).as_posix() != missing:
                archive.write(path, path.relative_to(models).as_posix())
    with pytest.raises(InputError, match=r"fold_0/checkpoint_final\.pth: kidney model fold 0 checkpoint is missing"):
        import_models(tmp_path / "partial.zip", tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.zip"]


def test_bad_archives_and_manifests_are_clear_errors(tiny_demo, tmp_path):
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(InputError, match=r"not\.zip: not a valid zip file"):
        import_models(tmp_path / "not.zip", tmp_path / "m1")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("../outside.txt", "x")
    with pytest.raises(InputError, match="unsafe path in zip"):
        import_models(tmp_path / "evil.zip", tmp_path / "m2")
    assert not (tmp_path / "outside.txt").exists()
    with pytest.raises(InputError, match="not a models folder: manifest.json is missing"):
        load_models(tmp_path)
    (tmp_path / "m3").mkdir()
    (tmp_path / "m3" / MANIFEST_NAME).write_text(json.dumps({"format_version": 1, "grid": 32}))
    with pytest.raises(InputError, match=r"manifest\.json: not a valid models manifest \(KeyError"):
        load_models(tmp_path / "m3")
    with pytest.raises(InputError, match=r"nope\.zip: file does not exist"):
        import_models(tmp_path / "nope.zip", tmp_path / "m4")
    with pytest.raises(InputError, match="not a models folder"):
        export_models(tmp_path / "m4", tmp_path / "out.zip")


def _trained_folders(out_dir):
    """The demo's own training outputs: kidney and mass nnU-Net trainer folders and the classifier folder."""
    results = out_dir / "nnunet" / "nnUNet_results"
    kidney, = results.glob("Dataset*_RenalKidney*/*__*__3d_fullres")
    mass, = results.glob("Dataset*_RenalMass*/*__*__3d_fullres")
    return kidney, mass, out_dir / "work" / "classifier"


@pytest.mark.parametrize("link", [False, True], ids=["copied", "linked"])
def test_assembled_models_predict_like_the_demos_own(tiny_demo, tmp_path, capsys, link):
    out_dir, _ = tiny_demo
    kidney, mass, classifier = _trained_folders(out_dir)
    assembled = tmp_path / "assembled"
    args = ["assemble-models", "--kidney", str(kidney), "--mass", str(mass), "--classifier", str(classifier),
            "-o", str(assembled), "--folds", "0"] + (["--link"] if link else [])
    assert cli_main(args) == 0
    assert "assembled models (grid 32, folds [0], 1 classifier checkpoint(s))" in capsys.readouterr().out
    checkpoint = assembled / load_models(assembled).kidney.path / "fold_0" / "checkpoint_final.pth"
    assert checkpoint.is_symlink() == link
    ct, = sorted((out_dir / "test_images").glob("*.nii.gz"))
    assert cli_main(["predict", "-i", str(ct), "-o", str(tmp_path / "pred"), "-m", str(assembled),
                     "--no-cam", "--no-report", "--device", "cpu"]) == 0
    name = ct.name.replace(".nii.gz", "_seg.nii.gz")
    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pred" / name)))
    demos = sitk.GetArrayFromImage(sitk.ReadImage(str(out_dir / "predictions" / name)))
    np.testing.assert_array_equal(ours, demos)
    assert cli_main(["export-models", "-m", str(assembled), "-o", str(tmp_path / "m.zip")]) == 0
    assert cli_main(["import-models", "-i", str(tmp_path / "m.zip"), "-m", str(tmp_path / "imported")]) == 0
    assert _digests(tmp_path / "imported") == _digests(assembled)  # linked files are packed as real files
    assert load_models(tmp_path / "imported").kidney == load_models(assembled).kidney


def _copy_model(source, destination):
    shutil.copytree(source, destination, symlinks=False)
    return destination


def test_assemble_names_each_bad_input(tiny_demo, tmp_path):
    kidney, mass, classifier = _trained_folders(tiny_demo[0])
    checkpoints = find_classifier_checkpoints(classifier)
    with pytest.raises(InputError, match=r"dataset\.json: label table .* is the mass model's; the kidney model needs"):
        assemble_models(tmp_path / "a", mass, kidney, checkpoints, folds=[0])
    with pytest.raises(InputError, match=r"fold_1.checkpoint_final\.pth: kidney model fold\(s\) \[1\] not trained"):
        assemble_models(tmp_path / "b", kidney, mass, checkpoints, folds=[0, 1])
    other_grid = _copy_model(mass, tmp_path / "Dataset9_RenalMass48" / mass.name)
    plans = json.loads((other_grid / "plans.json").read_text())
    plans["configurations"]["3d_fullres"]["median_image_size_in_voxels"] = [48.0, 48.0, 48.0]
    (other_grid / "plans.json").write_text(json.dumps(plans))
    with pytest.raises(InputError, match=r"mass model is on a 48\^3 grid but the kidney model .* on 32\^3"):
        assemble_models(tmp_path / "c", kidney, other_grid, checkpoints, folds=[0])
    no_plans = _copy_model(kidney, tmp_path / "Dataset8_RenalKidney32" / kidney.name)
    (no_plans / "plans.json").unlink()
    with pytest.raises(InputError, match=r"plans\.json: kidney model file is missing"):
        assemble_models(tmp_path / "d", no_plans, mass, checkpoints, folds=[0])
    other_classes = tmp_path / "other_classes.pt"
    payload = torch.load(checkpoints[0], map_location="cpu", weights_only=True)
    torch.save(dict(payload, classes=["benign", "malignant"]), other_classes)
    with pytest.raises(InputError, match=r"other_classes\.pt: classifier classes \['benign', 'malignant'\] differ"):
        assemble_models(tmp_path / "e", kidney, mass, [other_classes], folds=[0])
    with pytest.raises(InputError, match=r"missing\.pt: classifier checkpoint does not exist"):
        assemble_models(tmp_path / "f", kidney, mass, [tmp_path / "missing.pt"], folds=[0])
    with pytest.raises(InputError, match=r"holds no fold_\*/checkpoint_best\.pth"):
        find_classifier_checkpoints(tmp_path)
    assert not any((tmp_path / name).exists() for name in "abcdef")  # checked before anything is written
