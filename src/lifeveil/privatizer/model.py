"""The privatizer M: a small student encoder, a VIB head (mu, logvar), and a utility decoder.

Only the student and the VIB head run on the device; the decoder exists to train M (it maps z
into the teacher's embedding space, where the utility loss is measured) and to report how much
of x_semantic z keeps.
"""

from __future__ import annotations

import torch
from torch import nn

from lifeveil.privatizer.config import PrivatizerConfig
from lifeveil.privatizer.fsq import FSQHead
from lifeveil.privatizer.vib import reparameterize
from lifeveil.teachers.base import IMAGENET_MEAN, IMAGENET_STD
from lifeveil.teachers.mobilenet import MobileNetV2, conv_bn_relu, load_imagenet_mobilenet_v2


class StudentEncoder(nn.Module):
    """A truncated MobileNetV2 trunk + 1x1 conv + global average pool: pixels -> features.

    Takes pixels in [0, 1], (N, 3, S, S); normalisation is part of the module so that the
    exported ONNX graph takes plain pixels.
    """

    def __init__(self, cfg: PrivatizerConfig) -> None:
        super().__init__()
        if cfg.student_init == "imagenet" and cfg.student_width == 1.0:
            full = load_imagenet_mobilenet_v2()
        else:
            full = MobileNetV2(width=cfg.student_width)
        self.trunk = nn.Sequential(*list(full.features.children())[: cfg.student_blocks])
        with torch.no_grad():
            trunk_out = self.trunk(torch.zeros(1, 3, 64, 64)).shape[1]
        self.head = conv_bn_relu(trunk_out, cfg.student_channels, kernel=1)
        self.out_dim = cfg.student_channels
        self.frozen_blocks = cfg.frozen_blocks
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def frozen_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Output of the leading ``frozen_blocks`` trunk blocks (not trained; cached in training)."""
        x = (pixels - self.mean) / self.std
        for block in self.trunk[: self.frozen_blocks]:
            x = block(x)
        return x

    def from_frozen(self, h: torch.Tensor) -> torch.Tensor:
        """The trainable rest: remaining trunk blocks, 1x1 head, global average pool."""
        for block in self.trunk[self.frozen_blocks :]:
            h = block(h)
        return self.head(h).mean(dim=(2, 3))

    def frozen_parameters(self) -> list[nn.Parameter]:
        """Parameters of the frozen leading blocks."""
        return [p for b in self.trunk[: self.frozen_blocks] for p in b.parameters()]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.from_frozen(self.frozen_features(pixels))


class VIBHead(nn.Module):
    """Features -> (mu, logvar) of a diagonal Gaussian over z."""

    def __init__(self, in_dim: int, z_dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(in_dim, z_dim)
        self.logvar = nn.Linear(in_dim, z_dim)
        nn.init.constant_(self.logvar.bias, -4.0)  # start informative; KL pressure opens it

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(h), self.logvar(h).clamp(-12.0, 6.0)


class UtilityDecoder(nn.Module):
    """z -> predicted teacher embedding, in the teacher's *standardised* space.

    Teacher embeddings (post-ReLU) share a large mean direction: a constant prediction already
    has cosine ~0.9 with them. The utility loss is therefore measured after subtracting the
    training-set mean and dividing by the per-dimension std (buffers saved with the model), where
    a constant prediction scores cosine 0.
    """

    def __init__(self, z_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
        self.register_buffer("target_mean", torch.zeros(out_dim))
        self.register_buffer("target_std", torch.ones(out_dim))

    def set_target_stats(self, targets: torch.Tensor) -> None:
        """Fix the standardisation from training targets (N, out_dim)."""
        self.target_mean.copy_(targets.mean(0))
        self.target_std.copy_(targets.std(0).clamp_min(1e-3))

    def standardise(self, embedding: torch.Tensor) -> torch.Tensor:
        """Teacher embedding -> standardised space."""
        return (embedding - self.target_mean) / self.target_std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z -> standardised teacher embedding."""
        return self.net(z)

    def to_teacher_space(self, z: torch.Tensor) -> torch.Tensor:
        """z -> teacher embedding in the teacher's own units."""
        return self.net(z) * self.target_std + self.target_mean


# logvar reported for a deterministic (fsq) code: its "posterior" is a point mass.
DETERMINISTIC_LOGVAR = float("-inf")


class PrivatizerModel(nn.Module):
    """Student + bottleneck head (+ decoder). ``forward`` returns (mu, logvar) for frames or clips.

    The bottleneck is a VIB head (Gaussian posterior) or an FSQ head (deterministic code; then
    mu is the code and logvar is -inf). Input: pixels (N, 3, S, S) in per-frame mode, or
    (N, T, 3, S, S) in clip mode, where the T frames' student features are averaged before the
    head (one z per clip).
    """

    def __init__(self, cfg: PrivatizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.student = StudentEncoder(cfg)
        if cfg.bottleneck == "fsq":
            self.fsq = FSQHead(self.student.out_dim, cfg.z_dim, cfg.fsq_levels)
        else:
            self.vib = VIBHead(self.student.out_dim, cfg.z_dim)
        self.decoder = UtilityDecoder(cfg.z_dim, cfg.decoder_hidden, cfg.teacher_dim)

    def head(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Student features -> (mu, logvar); for an fsq code (code, -inf)."""
        if self.cfg.bottleneck == "fsq":
            code = self.fsq(h)
            return code, torch.full_like(code, DETERMINISTIC_LOGVAR)
        return self.vib(h)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Student features, averaged over time for clip input."""
        if pixels.dim() == 5:
            n, t = pixels.shape[:2]
            return self.student(pixels.flatten(0, 1)).view(n, t, -1).mean(dim=1)
        return self.student(pixels)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.features(pixels))

    def sample(
        self, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw z by reparameterisation."""
        return reparameterize(mu, logvar, generator)


class DeployedPrivatizer(nn.Module):
    """What ships to the device: pixels -> z (the mean, a sample with given noise, or the code).

    ``forward(pixels)`` returns mu (or the fsq code); ``forward(pixels, eps)`` returns
    mu + sigma * eps, which keeps the exported graph free of random ops (the runtime supplies
    eps). An fsq code ignores eps: it is deterministic.
    """

    def __init__(self, model: PrivatizerModel) -> None:
        super().__init__()
        self.student = model.student
        self.fsq = getattr(model, "fsq", None)
        self.vib = getattr(model, "vib", None)

    def forward(self, pixels: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        h = self.student(pixels)
        if self.fsq is not None:
            return self.fsq(h)
        mu, logvar = self.vib(h)
        if eps is None:
            return mu
        return mu + (0.5 * logvar).exp() * eps
