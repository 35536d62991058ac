"""``renal-nnunet classifier train|predict`` end to end (tiny grid, one epoch)."""

from __future__ import annotations

import json

import SimpleITK as sitk

from renal_nnunet.cli import main
from renal_nnunet.io import write_image
from tests.classification.medicalnet_reference import ReferenceResNet, save_medicalnet_checkpoint


def test_train_help_documents_the_options(capsys):
    try:
        main(["classifier", "train", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    text = capsys.readouterr().out
    for option in ("LESIONS_DIR", "--output", "--fold", "--epochs", "--grid", "--pretrained", "--device"):
        assert option in text


def test_train_then_predict_from_files(synthetic_lesions, held_out_patches, tmp_path, capsys):
    out = tmp_path / "classifier"
    pretrained = tmp_path / "resnet_10.pth"
    save_medicalnet_checkpoint(ReferenceResNet(), pretrained)
    assert main(["classifier", "train", str(synthetic_lesions), "-o", str(out), "--fold", "all",
                 "--epochs", "1", "--grid", "16", "--pretrained", str(pretrained)]) == 0
    checkpoint = out / "fold_all" / "checkpoint_best.pth"
    assert str(checkpoint) in capsys.readouterr().out
    _, ct, mask = held_out_patches[-1]
    write_image(ct, tmp_path / "ct.nii.gz")
    write_image(mask, tmp_path / "lesions.nii.gz")
    assert main(["classifier", "predict", "-i", str(tmp_path / "ct.nii.gz"), "--lesions",
                 str(tmp_path / "lesions.nii.gz"), "-c", str(checkpoint), "-o", str(tmp_path / "pred")]) == 0
    record = json.loads((tmp_path / "pred" / "lesions.json").read_text())["lesions"][0]
    assert record["lesion_id"] == 1 and set(record["probabilities"]) == {"AML", "cystic", "solid"}
    cam = sitk.ReadImage(str(tmp_path / "pred" / record["cam_file"]))
    assert cam.GetSize() == ct.GetSize() and (tmp_path / "pred" / record["cam_png"]).is_file()


def test_bad_options_are_reported_not_raised(synthetic_lesions, tmp_path, capsys):
    assert main(["classifier", "train", str(synthetic_lesions), "-o", str(tmp_path), "--fold", "9"]) == 2
    assert "fold 9 not in" in capsys.readouterr().err
    two_block = tmp_path / "resnet_18.pth"
    save_medicalnet_checkpoint(ReferenceResNet(layers=(2, 2, 2, 2)), two_block)
    assert main(["classifier", "train", str(synthetic_lesions), "-o", str(tmp_path), "--pretrained",
                 str(two_block)]) == 2
    error = capsys.readouterr().err
    assert str(two_block) in error and "is not a MedicalNet ResNet-10 checkpoint" in error
