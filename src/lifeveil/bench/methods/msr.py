"""``msr``: LifeVeil's privatizer M. The device computes z; nothing else leaves it.

Params: ``ckpt`` (a label, e.g. ``default`` or ``lambda_0.01``), ``path`` (the checkpoint file;
not part of the id, so ids stay stable across machines) and ``mode``: ``mean`` releases
z = mu, ``sample`` releases z ~ N(mu, diag(exp(logvar))) with fresh noise per call.

Repeated releases come from :meth:`Privatizer.draws` (one encoder pass, then fresh posterior
noise per draw) and the attacker's noise-free encoding from :meth:`Privatizer.noise_free`; a
deterministic bottleneck (``mode=mean``, or a quantised code) repeats one z.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lifeveil.bench.methods.base import LedgerCharge, Method
from lifeveil.errors import UnknownNameError
from lifeveil.privatizer.privatizer import Privatizer

MSR_MODES = ("mean", "sample")
FLOAT16_BITS = 16  # a VIB mean on the wire (Method.wire_dtype)


@functools.lru_cache(maxsize=8)
def _load_model(path: str) -> Privatizer:
    return Privatizer.load(path)


class MSR(Method):
    """The privatizer M at one checkpoint (one lambda) and release mode."""

    family = "msr"

    def __init__(self, params: dict | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        if self.mode not in MSR_MODES:
            raise UnknownNameError(
                f"unknown msr mode {self.mode!r}; available: {', '.join(MSR_MODES)}"
            )
        from lifeveil.paths import DEFAULT_CHECKPOINT

        self.path = Path(self.params.get("path") or DEFAULT_CHECKPOINT)
        shared = _load_model(str(self.path))  # weights shared; the noise stream is per method
        self.privatizer = Privatizer(shared.model, seed=seed)
        self._torch_gen = torch.Generator().manual_seed(seed)

    @property
    def mode(self) -> str:
        return str(self.params.get("mode", "mean"))

    @property
    def id(self) -> str:
        """``msr[ckpt=LABEL,mode=MODE]`` (the file path is left out)."""
        label = self.params.get("ckpt", "default")
        return f"{self.family}[ckpt={label},mode={self.mode}]"

    @property
    def stochastic(self) -> bool:
        """``mode=sample`` draws fresh posterior noise per release (not so a deterministic code)."""
        deterministic_code = getattr(self.privatizer.cfg, "bottleneck", "vib") == "fsq"
        return self.mode == "sample" and not deterministic_code

    @property
    def lam(self) -> float:
        """The checkpoint's lambda (weight of the KL term)."""
        return float(self.privatizer.cfg.lam)

    @property
    def z_dim(self) -> int:
        return self.privatizer.z_dim

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, z_dim) float32 z, one per image."""
        return self.privatizer.privatize(images, mode=self.mode).z

    def noise_free(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, z_dim): the posterior mean mu (or the deterministic code) the attacker computes."""
        return self.privatizer.noise_free(images)

    def draws(self, images: Sequence[np.ndarray], n: int) -> np.ndarray:
        """(N, n, z_dim): one encoder pass, then ``n`` releases in this setting's mode."""
        return self.privatizer.draws(images, n, mode=self.mode)

    def features_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        """z from pixels (N, 3, S, S) in [0, 1], resized to the student input (differentiable)."""
        size = self.privatizer.input_size
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(
                pixels, (size, size), mode="bilinear", antialias=True, align_corners=False
            )
        mu, logvar = self.privatizer.model(pixels)
        if self.mode == "mean":
            return mu
        noise = torch.randn(mu.shape, generator=self._torch_gen).to(mu)
        return mu + torch.exp(0.5 * logvar) * noise

    def ledger_charge(self, images: Sequence[np.ndarray]) -> LedgerCharge:
        """What the device's ledger charges per z (``device/ledger.py``'s ``Bound``): the
        code's exact bits (fsq), the mean KL over ``images`` (a sampled VIB) or z_dim x 16
        bits (a VIB mean, sent as float16)."""
        from lifeveil.privatizer.guarantees import fsq_code_bits

        cfg = self.privatizer.cfg
        if cfg.bottleneck == "fsq":
            return LedgerCharge(fsq_code_bits([cfg.fsq_levels] * cfg.z_dim), "fsq-code")
        if self.mode == "sample":
            kl = self.privatizer.privatize(list(images), mode="sample").kl_bits
            return LedgerCharge(float(np.mean(kl)), "vib-kl")
        return LedgerCharge(float(self.z_dim * FLOAT16_BITS), "float-width")

    def device_cost(self) -> dict[str, float]:
        """Student + VIB head at the student input size."""
        from lifeveil.privatizer.metrics import privatizer_cost

        cost = privatizer_cost(self.privatizer)
        return {"params": float(cost.params), "mflops": cost.mflops}

    def describe(self) -> dict:
        """Adds the checkpoint, its bottleneck, lambda, z size and (fsq) exact code bits."""
        from lifeveil.privatizer.fsq import code_bits

        cfg = self.privatizer.cfg
        out = {
            **super().describe(),
            "checkpoint": str(self.path),
            "label": cfg.label,
            "bottleneck": cfg.bottleneck,
            "lam": self.lam,
            "z_dim": self.z_dim,
        }
        if cfg.bottleneck == "fsq":
            out["code_bits"] = code_bits(cfg.z_dim, cfg.fsq_levels)
        return out
