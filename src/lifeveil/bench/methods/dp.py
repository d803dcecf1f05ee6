"""``dp-embedding``: the teacher embedding clipped to L2 norm C plus calibrated Gaussian noise.

Privacy unit and adjacency: one released vector is the output of a mechanism whose input is
one frame. Two inputs are adjacent when the frame is *replaced* by any other frame
(replace-one adjacency). After clipping, ``||clip(f(x)) - clip(f(x'))|| <= 2C``, so the L2
sensitivity is ``2C``. The noise std is ``sigma = m * C``, where the noise multiplier ``m``
is the smallest that makes one Gaussian release (epsilon, delta)-DP, found with
``dp_accounting``'s PLD accountant under its REPLACE_ONE relation (which analyses a Gaussian
event with sensitivity 2 per unit of clip norm, i.e. 2C) and its calibration routine.
The guarantee is per released vector; releasing k frames of the same person composes.

The clip norm C is fixed and data-independent (it must not be tuned on the protected data);
the default is about the median norm of MobileNetV2 embeddings of natural images.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from lifeveil.bench.methods.base import LedgerCharge, Method
from lifeveil.bench.methods.teacher import bench_teacher, embed_cached, teacher_cost

DEFAULT_CLIP_NORM = 25.0
DEFAULT_DELTA = 1e-5


@functools.lru_cache(maxsize=64)
def noise_multiplier(epsilon: float, delta: float) -> float:
    """Noise multiplier m (std / C) making clip-to-C + N(0, (mC)^2 I) (epsilon, delta)-DP.

    Uses dp_accounting's PLD accountant with the REPLACE_ONE neighbouring relation, under
    which a Gaussian event of multiplier m is analysed with sensitivity 2 (a unit-norm
    contribution replaced by another), i.e. sensitivity 2C once scaled by the clip norm C.
    It therefore equals twice the analytic sensitivity-1 Gaussian sigma.

    >>> round(noise_multiplier(1.0, 1e-5), 2)
    7.46
    """
    import dp_accounting
    from dp_accounting.pld import PLDAccountant

    # The analytic Gaussian mechanism (Balle & Wang 2018) for sensitivity 2 brackets the
    # search; the PLD accountant is the authority (a tiny-noise lower end would make its
    # PLD huge).
    guess = 2 * dp_accounting.get_sigma_gaussian(epsilon, delta)

    # The privacy-loss range grows with epsilon; a discretisation proportional to it keeps the
    # PLD small (its pessimistic rounding keeps the bound valid; the error is ~1e-5 relative).
    interval = max(1e-3, 1e-5 * epsilon)

    def fresh() -> PLDAccountant:
        return PLDAccountant(
            dp_accounting.NeighboringRelation.REPLACE_ONE, value_discretization_interval=interval
        )

    return float(
        dp_accounting.calibrate_dp_mechanism(
            fresh,
            dp_accounting.GaussianDpEvent,
            epsilon,
            delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(0.8 * guess, 1.25 * guess),
            tol=1e-4 * guess,
        )
    )


def clip_rows(x: np.ndarray, clip_norm: float) -> np.ndarray:
    """Scale each row down to L2 norm at most ``clip_norm``."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x * np.minimum(1.0, clip_norm / np.maximum(norms, 1e-12))


class DPEmbedding(Method):
    """Clipped teacher embedding + Gaussian noise for (``epsilon``, ``delta``) per vector."""

    family = "dp-embedding"
    stochastic = True

    def __init__(self, params: dict | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        self._rng = np.random.default_rng(seed)
        self._torch_gen = torch.Generator().manual_seed(seed)

    @property
    def clip_norm(self) -> float:
        return float(self.params.get("clip", DEFAULT_CLIP_NORM))

    @property
    def delta(self) -> float:
        return float(self.params.get("delta", DEFAULT_DELTA))

    @property
    def sigma(self) -> float:
        """Noise std per coordinate: noise multiplier x C (the multiplier accounts for 2C)."""
        return noise_multiplier(float(self.params["epsilon"]), self.delta) * self.clip_norm

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 1280) float32: clip(teacher(x), C) + N(0, sigma^2 I), fresh noise per call."""
        clipped = clip_rows(embed_cached(images), self.clip_norm)
        noise = self._rng.normal(0.0, self.sigma, clipped.shape)
        return (clipped + noise).astype(np.float32)

    def noise_free(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 1280) float32: the clipped embedding, without noise (the mean of the releases)."""
        return clip_rows(embed_cached(images), self.clip_norm).astype(np.float32)

    def draws(self, images: Sequence[np.ndarray], n: int) -> np.ndarray:
        """(N, n, 1280) float32: the teacher runs once, then ``n`` fresh noise draws per image."""
        clipped = self.noise_free(images)
        noise = self._rng.normal(0.0, self.sigma, (clipped.shape[0], n, clipped.shape[1]))
        return (clipped[:, None, :] + noise).astype(np.float32)

    def features_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable: teacher, clipping and additive noise are all differentiable."""
        emb = bench_teacher()(pixels)
        norms = emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
        clipped = emb * torch.clamp(self.clip_norm / norms, max=1.0)
        return clipped + self.sigma * torch.randn(clipped.shape, generator=self._torch_gen)

    def ledger_charge(self, images: Sequence[np.ndarray]) -> LedgerCharge:
        """The capacity of the clipped Gaussian channel, per release (docs/GUARANTEES.md, 7):
        at most d/2 log2(1 + C^2 / (d sigma^2)) bits, whatever the frame."""
        from lifeveil.privatizer.guarantees import gaussian_channel_capacity_bits

        dim = int(self.noise_free(list(images[:1])).shape[1])
        bits = gaussian_channel_capacity_bits(self.clip_norm, self.sigma, dim)
        return LedgerCharge(bits, "gaussian-capacity")

    def device_cost(self) -> dict[str, float]:
        """The teacher runs on the device (clipping and noise are negligible)."""
        return teacher_cost()

    def describe(self) -> dict:
        """Adds the calibrated noise and the adjacency used."""
        return {
            **super().describe(),
            "clip_norm": self.clip_norm,
            "delta": self.delta,
            "sensitivity": 2 * self.clip_norm,
            "noise_std": self.sigma,
            "adjacency": "replace-one (one frame replaced by any other), per released vector",
        }
