"""The lesion classifier: a MedicalNet-compatible 3D ResNet-10 with the paper's small head.

The backbone is timm-3d's ResNet with one BasicBlock per stage (timm-3d has no ``resnet10``), so
its modules carry MedicalNet's names (``conv1, bn1, layer1..layer4``) and MedicalNet's
``resnet_10`` weights load key for key (see :mod:`renal_nnunet.classification.medicalnet`).
MedicalNet's ResNets are dilated: layer3 and layer4 keep stride 1 and use dilation 2 and 4
(output stride 8: a 128^3 input gives 16^3 features), which is also what Grad-CAM needs for a map
finer than 4^3.

Input: (B, 1, D, H, W) windowed CT crops, (z, y, x) spatial order. Output: logits (B, n_classes)
in the order of :data:`renal_nnunet.anatomy.labels.LESION_CLASSES`.
"""

from __future__ import annotations

from torch import nn

from renal_nnunet.anatomy.labels import LESION_CLASSES
from renal_nnunet.settings import PAPER

__all__ = ["build_classifier", "BACKBONE_FEATURES", "HEAD_HIDDEN", "HEAD_DROPOUT"]

BACKBONE_FEATURES = 512
HEAD_HIDDEN = PAPER.classifier_hidden  # the paper's "hidden layer=128"
HEAD_DROPOUT = PAPER.classifier_dropout  # the paper's "dropout=0.1"


def build_classifier(num_classes: int = len(LESION_CLASSES), dilated: bool = True) -> nn.Module:
    """A 3D ResNet-10 classifier: backbone -> global average pooling -> Linear(512, 128) -> ReLU
    -> Dropout(0.1) -> Linear(128, num_classes).

    Args:
        num_classes: number of output logits.
        dilated: MedicalNet's layout (layer3/layer4 stride 1 with dilation 2/4, output stride 8);
            False gives the plain ResNet-10 (output stride 32). Both take MedicalNet weights.

    Returns:
        A ``timm_3d`` ResNet whose ``fc`` is the paper's head; ``model.layer4`` is the Grad-CAM layer.
    """
    import timm_3d  # heavy import (pulls timm and torchvision); kept local so the CLI starts fast

    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    model = timm_3d.create_model(
        "resnet18", pretrained=False, layers=[1, 1, 1, 1], in_chans=1, num_classes=0,
        output_stride=8 if dilated else 32,
    )
    if dilated:
        # timm gives a stage's first conv the previous stage's dilation; MedicalNet dilates the
        # whole stage (BasicBlock(dilation=d) sets conv1 and conv2 alike).
        _set_dilation(model.layer3[0].conv1, 2)
        _set_dilation(model.layer4[0].conv1, 4)
    model.fc = nn.Sequential(
        nn.Linear(BACKBONE_FEATURES, HEAD_HIDDEN),
        nn.ReLU(inplace=True),
        nn.Dropout(HEAD_DROPOUT),
        nn.Linear(HEAD_HIDDEN, num_classes),
    )
    return model


def _set_dilation(conv: nn.Conv3d, dilation: int) -> None:
    """Dilate a 3x3x3 stride-1 convolution in place, keeping the output size ('same' padding)."""
    conv.dilation = (dilation,) * 3
    conv.padding = (dilation,) * 3

