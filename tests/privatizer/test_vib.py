import math

import pytest
import torch

from lifeveil.privatizer.vib import (
    cosine_utility_loss,
    kl_to_standard_normal,
    mse_utility_loss,
    nats_to_bits,
    reparameterize,
)


def test_kl_is_zero_at_the_prior_and_matches_closed_form():
    assert kl_to_standard_normal(torch.zeros(3, 5), torch.zeros(3, 5)).tolist() == [0.0, 0.0, 0.0]
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[math.log(4.0), 0.0]])
    expected = 0.5 * ((1 + 4 - 1 - math.log(4)) + (4 + 1 - 1 - 0))
    assert kl_to_standard_normal(mu, logvar).item() == pytest.approx(expected)


def test_kl_matches_monte_carlo_estimate():
    torch.manual_seed(0)
    mu, logvar = torch.randn(1, 4), torch.randn(1, 4) * 0.5
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4), torch.ones(4))
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean()
    assert kl_to_standard_normal(mu, logvar).item() == pytest.approx(mc.item(), rel=0.03)


def test_bits_conversion():
    assert nats_to_bits(math.log(2) * 8) == pytest.approx(8.0)


def test_reparameterize_is_differentiable_and_has_right_moments():
    mu = torch.full((50_000, 1), 2.0, requires_grad=True)
    logvar = torch.full((50_000, 1), math.log(9.0), requires_grad=True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    assert z.mean().item() == pytest.approx(2.0, abs=0.05)
    assert z.std().item() == pytest.approx(3.0, abs=0.05)
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None


def test_utility_losses():
    a = torch.tensor([[1.0, 0.0]])
    assert cosine_utility_loss(a, a * 5).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_utility_loss(a, -a).item() == pytest.approx(2.0)
    assert mse_utility_loss(a, a * 3).item() == pytest.approx(0.0, abs=1e-6)
    assert mse_utility_loss(a, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(2.0)
