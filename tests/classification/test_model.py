"""The ResNet-10 classifier, MedicalNet weight loading (exact), and bad checkpoints."""

from __future__ import annotations

import pytest
import torch

from renal_nnunet.classification import build_classifier, load_medicalnet
from renal_nnunet.io import InputError
from tests.classification.medicalnet_reference import (
    ReferenceResNet,
    randomise_batchnorm_statistics,
    save_medicalnet_checkpoint,
)


@pytest.fixture(scope="module")
def medicalnet_resnet10(tmp_path_factory):
    torch.manual_seed(0)
    reference = ReferenceResNet(layers=(1, 1, 1, 1), shortcut_type="B").eval()
    randomise_batchnorm_statistics(reference)
    path = tmp_path_factory.mktemp("medicalnet") / "resnet_10.pth"
    save_medicalnet_checkpoint(reference, path)
    return reference, path


def test_classifier_shapes_names_and_head():
    model = build_classifier(num_classes=3)
    for name in ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"):
        assert hasattr(model, name)
    logits = model.eval()(torch.zeros(2, 1, 32, 32, 32))
    assert logits.shape == (2, 3)
    assert model.forward_features(torch.zeros(1, 1, 32, 32, 32)).shape == (1, 512, 4, 4, 4)  # output stride 8
    plain = build_classifier(num_classes=3, dilated=False).eval()
    assert plain.forward_features(torch.zeros(1, 1, 32, 32, 32)).shape == (1, 512, 1, 1, 1)  # stride 32
    linear_shapes = [tuple(m.weight.shape) for m in model.fc if isinstance(m, torch.nn.Linear)]
    assert linear_shapes == [(128, 512), (3, 128)]
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.1 for m in model.fc)


def test_medicalnet_backbone_reproduces_reference_forward(medicalnet_resnet10):
    reference, path = medicalnet_resnet10
    model = build_classifier(num_classes=3, dilated=True)
    head_before = model.fc[0].weight.detach().clone()
    left_initialised = load_medicalnet(model, path)
    assert left_initialised and all(key.startswith("fc.") for key in left_initialised)
    assert torch.equal(model.fc[0].weight, head_before)
    model.eval()
    volume = torch.randn(2, 1, 24, 32, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference.backbone(volume)
        actual = model.forward_features(volume)
    assert actual.shape == expected.shape == (2, 512, 3, 4, 4)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "layers, shortcut, problem",
    [((2, 2, 2, 2), "B", "unexpected tensors: layer1.1"), ((1, 1, 1, 1), "A", "missing tensors: layer2.0.downsample")],
    ids=["resnet18", "shortcut-A"],
)
def test_checkpoint_of_another_architecture_is_named(tmp_path, layers, shortcut, problem):
    path = tmp_path / "other.pth"
    save_medicalnet_checkpoint(ReferenceResNet(layers=layers, shortcut_type=shortcut), path)
    with pytest.raises(InputError, match=problem) as err:
        load_medicalnet(build_classifier(), path)
    assert str(path) in str(err.value)


def test_checkpoint_with_other_widths_or_format_is_rejected(tmp_path):
    wrong_width = tmp_path / "two_channel.pth"
    reference = ReferenceResNet()
    reference.conv1 = torch.nn.Conv3d(2, 64, 7, stride=2, padding=3, bias=False)
    save_medicalnet_checkpoint(reference, wrong_width)
    with pytest.raises(InputError, match=r"shape mismatches: conv1.weight \(64, 2, 7, 7, 7\)"):
        load_medicalnet(build_classifier(), wrong_width)
    bare = tmp_path / "bare.pth"
    torch.save(ReferenceResNet().state_dict(), bare)
    with pytest.raises(InputError, match="expected {'state_dict'"):
        load_medicalnet(build_classifier(), bare)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot be read"):
        load_medicalnet(build_classifier(), garbage)
    with pytest.raises(InputError, match="does not exist"):
        load_medicalnet(build_classifier(), tmp_path / "missing.pth")
