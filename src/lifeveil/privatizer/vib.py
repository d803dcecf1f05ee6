"""Pure math of the Variational Information Bottleneck (Alemi et al., 2017).

q(z|x) = N(mu, diag(exp(logvar))), prior r(z) = N(0, I). KL(q || r) upper-bounds the rate
I(z; x) on average over x, so it is what LifeVeil reports as "bits disclosed per frame".
"""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in nats, summed over the last dim: shape mu.shape[:-1].

    >>> kl_to_standard_normal(torch.zeros(1, 4), torch.zeros(1, 4)).item()
    0.0
    >>> round(kl_to_standard_normal(torch.ones(1, 2), torch.zeros(1, 2)).item(), 6)
    1.0
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def nats_to_bits(nats: torch.Tensor | float) -> torch.Tensor | float:
    """Convert nats to bits (divide by ln 2).

    >>> round(nats_to_bits(math.log(2.0)), 9)
    1.0
    """
    return nats / LN2


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sample z = mu + sigma * eps with eps ~ N(0, I); differentiable in mu and logvar."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return mu + (0.5 * logvar).exp() * eps


def cosine_utility_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cos(pred, target) per row, in [0, 2]."""
    return 1.0 - torch.nn.functional.cosine_similarity(pred, target, dim=-1)


def mse_utility_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per row between L2-normalised pred and target (scale-free)."""
    p = torch.nn.functional.normalize(pred, dim=-1)
    t = torch.nn.functional.normalize(target, dim=-1)
    return (p - t).pow(2).mean(dim=-1) * p.shape[-1]
