"""The Teacher interface: a frozen pretrained encoder whose embedding is x_semantic.

A teacher owns its input preprocessing (resize, crop, normalisation), so an embedding is
fully defined by the teacher's name. Teachers never train: parameters have no gradients and
``train()`` keeps the module in eval mode (batch-norm statistics stay frozen).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lifeveil.imaging import resize_center_crop

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How a teacher wants its pixels.

    size: side of the square input in pixels.
    resize_ratio: the shorter side is resized to ``size * resize_ratio`` before a centre crop
        of ``size`` (1.0 = crop the central square, as for scenes and faces alike).
    mean, std: per-channel normalisation applied to RGB values in [0, 1].
    """

    size: int = 224
    resize_ratio: float = 1.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def to_float_batch(
    images: Sequence[np.ndarray] | np.ndarray, size: int, ratio: float = 1.0
) -> torch.Tensor:
    """RGB uint8 images of any sizes -> float tensor (N, 3, size, size) in [0, 1].

    Each image's shorter side is resized to ``round(size * ratio)`` (area interpolation when
    shrinking) and the centre ``size`` x ``size`` square is cropped.
    """
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = resize_center_crop(img, size, ratio)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


class Teacher(nn.Module, abc.ABC):
    """A frozen image encoder. Subclasses implement :meth:`encode` on normalised tensors."""

    name: str = "teacher"

    def __init__(self, embed_dim: int, preprocess: Preprocess) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.preprocess_spec = preprocess
        self.register_buffer(
            "_mean", torch.tensor(preprocess.mean).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "_std", torch.tensor(preprocess.std).view(1, 3, 1, 1), persistent=False
        )

    @property
    def input_size(self) -> int:
        """Side of the square input in pixels."""
        return self.preprocess_spec.size

    def freeze(self) -> Teacher:
        """Turn off gradients and switch to eval mode for good."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        return self

    def train(self, mode: bool = True) -> Teacher:  # noqa: ARG002 - a teacher stays in eval
        """Teachers are frozen: this keeps eval mode whatever ``mode`` says."""
        return super().train(False)

    @abc.abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (N, 3, S, S) -> embeddings (N, embed_dim)."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1], (N, 3, H, W) -> embeddings (N, embed_dim). Differentiable in pixels.

        Inputs not at the teacher's size are bilinearly resized (used by attacks that optimise
        images through the teacher).
        """
        size = self.input_size
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
        return self.encode((pixels - self._mean) / self._std)

    def pixels(self, images: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """RGB uint8 images -> pixel tensor (N, 3, S, S) in [0, 1], the teacher's crop."""
        spec = self.preprocess_spec
        return to_float_batch(images, spec.size, spec.resize_ratio)

    @torch.inference_mode()
    def embed(self, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 32) -> np.ndarray:
        """RGB uint8 images (any sizes) -> float32 embeddings (N, embed_dim)."""
        chunks = [
            self(self.pixels(images[i : i + batch_size])).float().numpy()
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.embed_dim), np.float32)
