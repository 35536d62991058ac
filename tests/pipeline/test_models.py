"""The models folder: manifest validation, export/import round trip, clear errors."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from renal_nnunet.cli import main as cli_main
from renal_nnunet.io import InputError
from renal_nnunet.pipeline.models import MANIFEST_NAME, export_models, import_models, load_models


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
