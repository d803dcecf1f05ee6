"""What a privatizer returns, and how it takes frames: shared by the PyTorch and ONNX runtimes.

Nothing here imports PyTorch, so the device's ONNX runtime (:mod:`lifeveil.privatizer.lite`)
starts without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lifeveil.errors import ShapeError
from lifeveil.privatizer.release import code_bits


def as_frame_batch(frames: Sequence[np.ndarray] | np.ndarray) -> Sequence[np.ndarray] | np.ndarray:
    """A single (H, W, 3) frame becomes a batch of one; batches pass through unchanged."""
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        if frames.shape[-1] != 3:
            raise ShapeError(
                f"expected an RGB frame (H, W, 3) or a batch, got shape {frames.shape}"
            )
        return frames[None]
    return frames


@dataclass(frozen=True)
class Representation:
    """The output of :meth:`Privatizer.privatize`.

    z: (N, z_dim) float32, what leaves the device.
    mu, logvar: (N, z_dim) float32, the posterior q(z|x) (never leaves the device).
    kl_bits: (N,) float32, KL(q(z|x) || N(0, I)) in bits per item, the disclosure bound.
    """

    z: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray
    kl_bits: np.ndarray


def code_release(mu: np.ndarray, logvar: np.ndarray, levels: int) -> Representation:
    """An fsq privatizer's release: its code ``mu`` (N, d) as is, with its exact bits per frame."""
    bits = np.full(len(mu), code_bits(mu.shape[1], levels), np.float32)
    return Representation(mu.astype(np.float32), mu, logvar, bits)
