"""Shared parts of the reconstruction attacks (RR): face crops, conv decoders, quality, figures.

Reconstructions live in the attack's image space: the teacher's centre square of each face,
grey, at ``CROP_SIZE`` x ``CROP_SIZE`` pixels in [0, 1] (ORL faces are grey 92x112; the square
is what every method's encoder sees).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch import nn

from lifeveil.bench.metrics import psnr, ssim
from lifeveil.teachers.base import resize_center_crop

if TYPE_CHECKING:
    from lifeveil.bench.data import BenchData

CROP_SIZE = 64


def face_crops(images: Sequence[np.ndarray], size: int = CROP_SIZE) -> np.ndarray:
    """RGB uint8 images -> (N, size, size) float32 grey in [0, 1], centre square as the teacher."""
    out = np.empty((len(images), size, size), np.float32)
    for i, img in enumerate(images):
        crop = resize_center_crop(img, size)
        out[i] = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return out


def augment_faces(images: Sequence[np.ndarray], copies: int, seed: int = 0) -> list[np.ndarray]:
    """``copies`` random variants of each image (image-major): mirror, small rotation, scale,
    shift and brightness. The attacker encodes them with the black-box method to enlarge its
    (features, face) training set without new identities.
    """
    rng = np.random.default_rng([seed, 41])
    out: list[np.ndarray] = []
    for img in images:
        h, w = img.shape[:2]
        for _ in range(copies):
            angle = rng.uniform(-8, 8)
            scale = rng.uniform(0.9, 1.1)
            m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
            m[:, 2] += rng.uniform(-0.05, 0.05, size=2) * (w, h)
            moved = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
            if rng.random() < 0.5:
                moved = moved[:, ::-1]
            gain = rng.uniform(0.85, 1.15)
            out.append(np.clip(moved.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    return out


def attacker_portraits(data: BenchData, copies: int, seed: int) -> list[np.ndarray]:
    """The reconstruction attacker's queries: its LFW portraits, then ``copies`` augmented
    variants of each (:func:`augment_faces`)."""
    faces = data.faces_recon_aux.images
    return [*faces, *augment_faces(faces, copies, seed)]


def _up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.LeakyReLU(0.2),
    )


class ConvDecoder(nn.Module):
    """Vector (N, in_dim) -> grey image (N, 1, 64, 64) in (0, 1).

    An MLP to a 4x4 map, three upsample+conv blocks to 32x32, a bilinear x2 to 64x64 and a
    sigmoid around a fixed bias image (the logit of the mean training face), so training
    starts from the average face. Generating at 32x32 keeps CPU training to seconds; ORL faces
    stay recognisable at that size.
    """

    def __init__(
        self, in_dim: int, mean_image: np.ndarray, hidden: int = 512, dropout: float = 0.0
    ):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Linear(hidden, 64 * 4 * 4),
            nn.LeakyReLU(0.2),
        )
        self.up = nn.Sequential(_up_block(64, 48), _up_block(48, 32), _up_block(32, 16))
        self.head = nn.Conv2d(16, 1, 3, padding=1)
        mean = np.clip(np.asarray(mean_image, np.float32), 0.02, 0.98)
        self.register_buffer("bias_image", torch.from_numpy(np.log(mean / (1 - mean)))[None, None])

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        x = self.head(self.up(self.fc(v).view(-1, 64, 4, 4)))
        x = nn.functional.interpolate(
            x, size=self.bias_image.shape[-2:], mode="bilinear", align_corners=False
        )
        return torch.sigmoid(x + self.bias_image)


class ConvEncoder(nn.Module):
    """Grey image (N, 1, 64, 64) -> latent (N, latent_dim); the other half of the autoencoder."""

    def __init__(self, latent_dim: int):
        super().__init__()
        chans = (1, 16, 32, 64, 64)
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Linear(64 * 4 * 4, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


def augment_crops(batch: torch.Tensor, gen: torch.Generator, max_shift: int = 3) -> torch.Tensor:
    """Random mirror, shift (reflect-padded) and brightness of (N, 1, S, S) crops."""
    n, _, s, _ = batch.shape
    flip = torch.rand(n, generator=gen) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    padded = nn.functional.pad(batch, (max_shift,) * 4, mode="reflect")
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=gen).tolist()
    batch = padded[:, :, dy : dy + s, dx : dx + s]
    gain = 0.9 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen)
    return (batch * gain).clamp(0, 1)


@dataclass(frozen=True)
class TrainSchedule:
    """Minibatch training of the attack networks (Adam, constant learning rate)."""

    epochs: int
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block (then restore the thread count).

    The attack networks are small: on a shared CPU, extra intra-op threads mostly wait for
    each other (measured 2-3x slower with 2 threads on 2 busy cores).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """A random permutation of range(n) cut into minibatches."""
    return list(torch.randperm(n, generator=gen).split(batch_size))


def quality(originals: np.ndarray, reconstructions: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of reconstructions against originals, both (N, S, S) in [0, 1]."""
    p = [psnr(o, r) for o, r in zip(originals, reconstructions, strict=True)]
    s = [ssim(o, r) for o, r in zip(originals, reconstructions, strict=True)]
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s))}


def save_recon_grid(
    path: Path, rows: Sequence[np.ndarray], row_names: Sequence[str], title: str
) -> Path:
    """A grid of grey crops: one row per entry of ``rows`` (each (N, S, S)), one column per victim."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.2 * n_cols + 0.8, 1.3 * n_rows + 0.4), squeeze=False
    )
    for r, (imgs, name) in enumerate(zip(rows, row_names, strict=True)):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(imgs):
                ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=1)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
