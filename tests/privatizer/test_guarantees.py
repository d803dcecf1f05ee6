"""The guarantee math on known values, and the empirical check: attackers stay under the bound.

The synthetic settings are ones where everything is computable: identities from a small set,
released through a channel whose per-release information is known exactly (a discrete
symmetric channel), or bounded by the ledger's VIB charge (a Gaussian release, whose KL is what
the ledger charges). An attacker that accumulates k releases (the Bayes-optimal one: no attacker
does better) must never name the person more often than Fano's inequality allows for the bits
the ledger has charged.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lifeveil.errors import InputError
from lifeveil.privatizer.guarantees import (
    binary_entropy,
    composed_bits,
    fano_min_error,
    fsq_code_bits,
    gaussian_channel_capacity_bits,
    gaussian_mechanism_epsilon,
    identity_bits,
    max_identification_accuracy,
)


# -- known values ------------------------------------------------------------------------------
def test_fsq_bits_are_the_log_of_the_number_of_codes():
    assert fsq_code_bits([5] * 64) == pytest.approx(64 * math.log2(5))
    assert fsq_code_bits([5] * 64) == pytest.approx(148.603, abs=1e-3)  # the shipped default
    assert fsq_code_bits([2] * 10) == 10.0
    assert fsq_code_bits([3, 5]) == pytest.approx(math.log2(15))
    with pytest.raises(InputError):
        fsq_code_bits([0])


def test_composition_is_the_sum_capped_by_the_identity_entropy():
    assert identity_bits(30) == pytest.approx(4.9069, abs=1e-4)
    assert composed_bits([0.25] * 8, prior_entropy_bits=5.0) == 2.0
    assert composed_bits([148.6], prior_entropy_bits=identity_bits(30)) == identity_bits(30)
    assert composed_bits([], prior_entropy_bits=3.0) == 0.0
    with pytest.raises(InputError):
        composed_bits([-1.0], prior_entropy_bits=3.0)


def test_fano_on_known_values():
    assert binary_entropy(0.11) == pytest.approx(0.4999, abs=1e-3)
    # M = 2: h(Pe) >= 1 - I, so Pe_min = h^-1(1 - I)
    assert fano_min_error(1.0 - binary_entropy(0.11), 2) == pytest.approx(0.11, abs=1e-9)
    assert fano_min_error(0.0, 2) == pytest.approx(0.5)
    assert fano_min_error(0.0, 30) == pytest.approx(29 / 30)  # nothing disclosed: chance
    assert fano_min_error(identity_bits(30), 30) == 0.0  # everything disclosed: no floor
    # weak Fano: Pe >= 1 - (I + 1) / log2 M is implied
    for info in (0.0, 0.5, 1.0, 2.0, 3.0):
        assert fano_min_error(info, 64) >= 1 - (info + 1) / 6 - 1e-12
    # a non-uniform prior with less entropy leaves less to hide
    assert fano_min_error(0.5, 8, prior_entropy_bits=2.0) < fano_min_error(0.5, 8)
    errors = [fano_min_error(b, 16) for b in np.linspace(0, 4, 41)]
    assert all(a >= b for a, b in itertools.pairwise(errors))  # more bits, lower floor


def test_accuracy_ceiling_is_chance_at_zero_bits_and_one_at_full_disclosure():
    assert max_identification_accuracy(0.0, 123) == pytest.approx(1 / 123)
    assert max_identification_accuracy(identity_bits(123), 123) == 1.0
    # the ledger's fsq charge already exceeds H(identity) at one frame: the bound is vacuous
    assert max_identification_accuracy(composed_bits([148.6], identity_bits(30)), 30) == 1.0


def test_gaussian_channel_capacity():
    assert gaussian_channel_capacity_bits(1.0, 1.0, 1) == pytest.approx(0.5)
    assert gaussian_channel_capacity_bits(0.0, 1.0, 64) == 0.0
    # d -> infinity: C^2 / (2 sigma^2 ln 2)
    assert gaussian_channel_capacity_bits(2.0, 1.0, 10**7) == pytest.approx(
        4 / (2 * math.log(2)), rel=1e-5
    )


def pld_epsilon(noise_multiplier: float, count: int, delta: float) -> float:
    """The same epsilon from dp_accounting's PLD accountant (replace-one: sensitivity 2C)."""
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting.pld import PLDAccountant

    accountant = PLDAccountant(
        dp_accounting.NeighboringRelation.REPLACE_ONE, value_discretization_interval=1e-3
    )
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), count)
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize(
    ("m", "count"),
    [(7.46, 1), (7.46, 256), (100.0, 256), (100.0, 172_800), (1000.0, 172_800)],
)
def test_gaussian_mechanism_epsilon_agrees_with_dp_accounting(m: float, count: int):
    exact = gaussian_mechanism_epsilon(m, count, 1e-5)
    pld = pld_epsilon(m, count, 1e-5)
    # the PLD accountant discretises pessimistically: at or a little above the exact value
    assert exact <= pld * (1 + 1e-6) + 1e-6
    assert exact == pytest.approx(pld, rel=2e-3, abs=2e-3)


def test_gaussian_mechanism_epsilon_on_known_values():
    dp_accounting = pytest.importorskip("dp_accounting")
    # one release, replace-one (sensitivity 2C), noise m C: the analytic Gaussian mechanism of
    # sensitivity 1 and noise m / 2 (Balle & Wang 2018)
    for m in (4.0, 7.46, 20.0):
        expected = dp_accounting.get_epsilon_gaussian(m / 2, 1e-5)
        assert gaussian_mechanism_epsilon(m, 1, 1e-5) == pytest.approx(expected, rel=1e-3)
    assert gaussian_mechanism_epsilon(7.46, 1, 1e-5) == pytest.approx(1.0, abs=0.01)  # bench
    # k Gaussian releases compose exactly into one with noise m / sqrt(k)
    assert gaussian_mechanism_epsilon(40.0, 16, 1e-5) == pytest.approx(
        gaussian_mechanism_epsilon(10.0, 1, 1e-5), rel=1e-9
    )
    assert gaussian_mechanism_epsilon(1e6, 1, 0.5) == 0.0  # delta above the TV distance
    with pytest.raises(InputError):
        gaussian_mechanism_epsilon(1.0, 0, 1e-5)


# -- the empirical check: a discrete channel with exactly known information -----------------------
def symmetric_channel_bits(m: int, eps: float) -> float:
    """I(Y; Z) of the m-ary symmetric channel: Z = Y w.p. 1 - eps, else one of the others."""
    return math.log2(m) - binary_entropy(eps) - eps * math.log2(m - 1)


def count_vectors(k: int, m: int):
    """Every (n_0, ..., n_{m-1}) with sum k: the sufficient statistic of k releases."""
    for cuts in itertools.combinations(range(k + m - 1), m - 1):
        bounds = (-1, *cuts, k + m - 1)
        yield tuple(bounds[i + 1] - bounds[i] - 1 for i in range(m))


def exact_accumulation(m: int, eps: float, k: int) -> tuple[float, float]:
    """(I(Y; Z_1..Z_k), Bayes-optimal accuracy) for k releases of one of m people, exactly.

    Given Y = y, the counts of each released value are multinomial; the posterior of y is
    proportional to r ** n_y with r = (1 - eps)(m - 1) / eps, so the Bayes attacker names the
    most frequent value (ties split evenly). By symmetry, condition on Y = 0.
    """
    p_right, p_wrong = 1 - eps, eps / (m - 1)
    log_r = math.log(p_right / p_wrong)
    h_posterior, accuracy = 0.0, 0.0
    for n in count_vectors(k, m):
        coef = math.factorial(k) / math.prod(math.factorial(c) for c in n)
        prob = coef * p_right ** n[0] * p_wrong ** (k - n[0])
        logits = np.array(n, float) * log_r
        post = np.exp(logits - logits.max())
        post /= post.sum()
        h_posterior += prob * -np.sum(post * np.log2(np.clip(post, 1e-300, None)))
        top = [i for i, c in enumerate(n) if c == max(n)]
        accuracy += prob * (1 / len(top) if 0 in top else 0.0)
    return math.log2(m) - h_posterior, accuracy


@pytest.mark.parametrize("eps", [0.3, 0.6])
def test_bayes_attacker_accumulating_k_releases_stays_under_the_bound(eps: float):
    m = 4
    per_release = symmetric_channel_bits(m, eps)  # what the ledger would charge per release
    previous = 0.0
    for k in (1, 2, 4, 8, 16, 24):
        info, accuracy = exact_accumulation(m, eps, k)
        charged = composed_bits([per_release] * k, identity_bits(m))
        assert info <= charged + 1e-9, (k, info, charged)  # the composition bound
        fano_exact = max_identification_accuracy(info, m)
        fano_ledger = max_identification_accuracy(charged, m)
        assert accuracy <= fano_exact + 1e-9 <= fano_ledger + 2e-9, (k, accuracy, fano_exact)
        assert accuracy >= previous - 1e-12  # accumulation only helps the attacker
        previous = accuracy
    assert previous > 1 / m + 0.1  # the attacker does learn: the bound is not hollow here


def test_the_bound_is_tight_at_one_release_of_a_noiseless_channel():
    info, accuracy = exact_accumulation(4, 1e-12, 1)
    assert info == pytest.approx(2.0, abs=1e-6) and accuracy == pytest.approx(1.0)
    assert max_identification_accuracy(info, 4) == pytest.approx(1.0, abs=1e-6)


# -- the empirical check: a Gaussian (VIB-like) release charged its KL ----------------------------
def test_gaussian_release_attacker_stays_under_the_kl_bound():
    """Y uniform over 16 people, each a point mu_y; a release is mu_y + N(0, I), so the ledger's
    VIB charge is KL(N(mu_y, I) || N(0, I)) = ||mu_y||^2 / (2 ln 2) bits, whose average over y
    bounds I(Y; Z). The Bayes attacker on k releases: nearest mu_y to their mean."""
    rng = np.random.default_rng(0)
    m, d, trials = 16, 8, 20_000
    means = rng.normal(size=(m, d))
    means *= 0.6 / np.linalg.norm(means, axis=1, keepdims=True)
    kl_bits = float(np.mean(np.sum(means**2, axis=1)) / (2 * math.log(2)))
    for k in (1, 4, 16, 64):
        people = rng.integers(0, m, trials)
        avg = means[people] + rng.normal(size=(trials, d)) / math.sqrt(k)  # mean of k releases
        guess = np.argmin(((avg[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
        accuracy = float(np.mean(guess == people))
        ceiling = max_identification_accuracy(composed_bits([kl_bits] * k, identity_bits(m)), m)
        stderr = math.sqrt(accuracy * (1 - accuracy) / trials)
        assert accuracy <= ceiling + 3 * stderr, (k, accuracy, ceiling)
