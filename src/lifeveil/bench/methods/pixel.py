"""Pixel baselines: blur, pixelate or noise the frame on the device, upload it, teacher on the server.

Every operation acts on the teacher's crop (the frame resized and centre-cropped to 224 px
exactly as the teacher's preprocessing does; the server embeds it without further resizing),
so a parameter means the same thing for every source resolution: ``sigma`` and ``block`` are
in pixels of that 224-px frame, noise ``sigma`` in units of the [0, 1] pixel range. Each op has
a NumPy form (what the device runs) and an exactly matching differentiable torch form.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lifeveil.bench.methods.base import Method
from lifeveil.bench.methods.teacher import bench_teacher, embed_cached, embed_crops
from lifeveil.teachers.base import resize_center_crop


def teacher_crops(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each image resized and centre-cropped to the teacher's input size (uint8)."""
    spec = bench_teacher().preprocess_spec
    return [resize_center_crop(img, spec.size, spec.resize_ratio) for img in images]


def gaussian_kernel1d(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian kernel of radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def blur_np(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an RGB uint8 image (reflect borders, as :func:`blur_torch`)."""
    k = gaussian_kernel1d(sigma)
    out = cv2.sepFilter2D(img.astype(np.float32), -1, k, k, borderType=cv2.BORDER_REFLECT_101)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def blur_torch(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """Differentiable Gaussian blur of (N, C, H, W) pixels, reflect-padded."""
    k = torch.from_numpy(gaussian_kernel1d(sigma)).to(pixels)
    r = (k.numel() - 1) // 2
    c = pixels.shape[1]
    x = F.pad(pixels, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def pixelate_np(img: np.ndarray, block: int) -> np.ndarray:
    """Average each ``block`` x ``block`` cell (edge cells may be smaller) and repeat it."""
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    out = pixelate_torch(t, block)[0].permute(1, 2, 0).numpy()
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def pixelate_torch(pixels: torch.Tensor, block: int) -> torch.Tensor:
    """Differentiable pixelation: block means (ceil mode) upsampled by nearest neighbour."""
    h, w = pixels.shape[-2:]
    pooled = F.avg_pool2d(pixels, block, stride=block, ceil_mode=True, count_include_pad=False)
    return F.interpolate(pooled, scale_factor=block, mode="nearest")[..., :h, :w]


class PixelMethod(Method):
    """A frame operation on the device followed by the teacher on the server."""

    uploads_pixels = True

    @abc.abstractmethod
    def apply(self, crop: np.ndarray) -> np.ndarray:
        """The operation on one 224-px uint8 crop."""

    @abc.abstractmethod
    def apply_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        """The operation on (N, 3, S, S) pixels in [0, 1]."""

    def process_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The uploaded frames: the operation applied to each teacher crop (224x224 uint8)."""
        return [self.apply(c) for c in teacher_crops(images)]

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Teacher embeddings (N, 1280) of the processed frames."""
        processed = self.process_images(images)
        if self.deterministic:
            return embed_cached(processed, salt=self.id, crops=True)
        return embed_crops(processed)

    def features_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        """teacher(quantise(op(pixels))), differentiable in ``pixels``.

        The uploaded frame is uint8, and the teacher is sensitive to that rounding on smooth
        (blurred) images, so the value is rounded to 1/255 steps with a straight-through
        gradient: forward matches :meth:`features`, backward is the op's exact gradient.
        """
        processed = self.apply_torch(pixels).clamp(0, 1)
        quantised = processed + (torch.round(processed * 255) / 255 - processed).detach()
        return bench_teacher()(quantised)

    @property
    def deterministic(self) -> bool:
        """Whether the same input always gives the same output (so features can be cached)."""
        return True

    @property
    def stochastic(self) -> bool:
        return not self.deterministic


class Blur(PixelMethod):
    """Gaussian blur of the whole frame, ``sigma`` in pixels of the 224-px frame."""

    family = "blur"

    def apply(self, crop: np.ndarray) -> np.ndarray:
        return blur_np(crop, float(self.params["sigma"]))

    def apply_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        return blur_torch(pixels, float(self.params["sigma"]))

    def device_cost(self) -> dict[str, float]:
        """Separable blur: two passes of 2r+1 multiply-adds per pixel and channel."""
        taps = gaussian_kernel1d(float(self.params["sigma"])).size
        return {"params": 0.0, "mflops": 2 * 2 * taps * 3 * 224 * 224 / 1e6}


class Pixelate(PixelMethod):
    """Block-average pixelation, ``block`` pixels of the 224-px frame per cell side."""

    family = "pixelate"

    def apply(self, crop: np.ndarray) -> np.ndarray:
        return pixelate_np(crop, int(self.params["block"]))

    def apply_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixelate_torch(pixels, int(self.params["block"]))

    def device_cost(self) -> dict[str, float]:
        """About one add per pixel and channel."""
        return {"params": 0.0, "mflops": 3 * 224 * 224 / 1e6}


class Noise(PixelMethod):
    """Additive Gaussian pixel noise of std ``sigma`` (pixel range [0, 1]), clipped to [0, 1].

    Fresh noise on every call; the stream is reproducible from the method's seed.

    Repeated releases: every fresh draw costs a teacher pass on the server side, so
    :meth:`draws` makes at most :data:`MAX_FRESH_DRAWS` fresh draws per image and cycles
    through them (:meth:`fresh_draws` says how many are independent). The noise-free encoding
    is the teacher on the clean frame: the server receives pixels, and averaging many noisy
    frames of a still scene recovers the clean frame (up to the clipping at 0 and 1).
    """

    family = "noise"
    MAX_FRESH_DRAWS = 4

    def __init__(self, params: dict | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        self._rng = np.random.default_rng(seed)
        self._torch_gen = torch.Generator().manual_seed(seed)

    @property
    def deterministic(self) -> bool:
        return False

    def noise_free(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 1280): the teacher on the clean crops (what averaged noisy frames converge to)."""
        return embed_cached(teacher_crops(images), crops=True)

    def draws(self, images: Sequence[np.ndarray], n: int) -> np.ndarray:
        """(N, n, 1280): ``fresh_draws(n)`` fresh noisy releases per image, repeated cyclically."""
        fresh = np.stack([self.features(images) for _ in range(self.fresh_draws(n))], axis=1)
        return fresh[:, np.arange(n) % fresh.shape[1]]

    def fresh_draws(self, n: int) -> int:
        """At most :data:`MAX_FRESH_DRAWS` (a teacher pass each)."""
        return min(n, self.MAX_FRESH_DRAWS)

    def apply(self, crop: np.ndarray) -> np.ndarray:
        noise = self._rng.normal(0.0, float(self.params["sigma"]) * 255.0, crop.shape)
        return np.clip(np.round(crop + noise), 0, 255).astype(np.uint8)

    def apply_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(pixels.shape, generator=self._torch_gen).to(pixels)
        return pixels + float(self.params["sigma"]) * noise

    def device_cost(self) -> dict[str, float]:
        """One random draw and add per pixel and channel (draws counted as 1 FLOP)."""
        return {"params": 0.0, "mflops": 2 * 3 * 224 * 224 / 1e6}
