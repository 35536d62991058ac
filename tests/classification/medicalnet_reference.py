"""An independent, compact re-implementation of MedicalNet's 3D ResNet (Tencent/MedicalNet,
``models/resnet.py``): BasicBlock with ``dilation`` on both convs, shortcut type A (zero-padded
identity) or B (1x1 conv + BN), layer3/layer4 stride 1 with dilation 2/4, and the ``conv_seg``
decoder. Used only to check that our classifier reproduces MedicalNet's backbone exactly."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3(in_planes: int, planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class _ShortcutA(nn.Module):
    """MedicalNet's ``downsample_basic_block``: strided identity padded with zero channels."""

    def __init__(self, planes: int, stride: int):
        super().__init__()
        self.planes, self.stride = planes, stride

    def forward(self, x):
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        pad = out.new_zeros(out.shape[0], self.planes - out.shape[1], *out.shape[2:])
        return torch.cat([out, pad], dim=1)


class ReferenceBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = _conv3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class ReferenceResNet(nn.Module):
    def __init__(self, layers=(1, 1, 1, 1), shortcut_type="B", num_seg_classes=2):
        super().__init__()
        self.inplanes = 64
        self.shortcut_type = shortcut_type
        self.conv1 = nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=1, dilation=2)
        self.layer4 = self._make_layer(512, layers[3], stride=1, dilation=4)
        self.conv_seg = nn.Sequential(
            nn.ConvTranspose3d(512, 32, 2, stride=2), nn.BatchNorm3d(32), nn.ReLU(inplace=True),
            nn.Conv3d(32, 32, 3, padding=1, bias=False), nn.BatchNorm3d(32), nn.ReLU(inplace=True),
            nn.Conv3d(32, num_seg_classes, 1, bias=False),
        )

    def _make_layer(self, planes, blocks, stride=1, dilation=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if self.shortcut_type == "A":
                downsample = _ShortcutA(planes, stride)
            else:
                downsample = nn.Sequential(nn.Conv3d(self.inplanes, planes, 1, stride=stride, bias=False),
                                           nn.BatchNorm3d(planes))
        layers = [ReferenceBasicBlock(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes
        layers += [ReferenceBasicBlock(planes, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def backbone(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        return self.conv_seg(self.backbone(x))


def randomise_batchnorm_statistics(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial affine parameters and running statistics, so an eval-mode
    comparison exercises them (fresh BN is the identity)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            n = module.num_features
            module.weight.data = 0.5 + torch.rand(n, generator=generator)
            module.bias.data = 0.2 * torch.randn(n, generator=generator)
            module.running_mean = 0.1 * torch.randn(n, generator=generator)
            module.running_var = 0.5 + torch.rand(n, generator=generator)


def save_medicalnet_checkpoint(model: nn.Module, path) -> None:
    """Save in MedicalNet's released format: DataParallel keys under 'state_dict'."""
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, path)
