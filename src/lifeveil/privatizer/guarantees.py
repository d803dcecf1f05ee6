"""Pure math behind the privacy ledger's numbers and ``docs/GUARANTEES.md``.

All information quantities are in bits. The functions are small and exact so that tests can pin
them on known values; the derivations they implement are written out in ``docs/GUARANTEES.md``:

* :func:`fsq_code_bits`: the bits per frame of a quantised code, an upper bound on I(X; Z).
* :func:`composed_bits`: k releases about one person disclose at most
  ``min(H(identity), sum of per-release bits)`` about that person's identity.
* :func:`fano_min_error` / :func:`max_identification_accuracy`: Fano's inequality turns a bits
  bound into a floor on any attacker's identification error (a ceiling on its accuracy).
* :func:`gaussian_channel_capacity_bits`: bits per release of a clipped vector plus Gaussian
  noise (the mutual-information side of a Gaussian mechanism).
* :func:`gaussian_mechanism_epsilon`: the (epsilon, delta)-DP of ``count`` such releases,
  composed exactly (Gaussian DP), checked in the tests against ``dp_accounting``'s PLD
  accountant.

Standard library only: this is device-side code (no torch, and not ``dp_accounting``, which is
a ``bench`` extra the device may not import), so the device CLI's ``ledger`` verb stays light.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from lifeveil.errors import InputError


def fsq_code_bits(levels: Iterable[int]) -> float:
    """Exact bits of a code whose i-th coordinate takes ``levels[i]`` values: sum of log2.

    A deterministic code Z = f(X) with N possible values has I(X; Z) = H(Z) <= log2 N, so this
    is an upper bound on what one frame's code discloses.

    >>> round(fsq_code_bits([5] * 64), 2)  # the shipped fsq_invariant code: 64 x 5 levels
    148.6
    >>> fsq_code_bits([2, 2, 2])
    3.0
    """
    total = 0.0
    for n in levels:
        if n < 1:
            raise InputError(f"a code coordinate needs at least one level, got {n}")
        total += math.log2(n)
    return total


def identity_bits(n_people: int) -> float:
    """H(identity) of a uniform choice among ``n_people``: log2 n.

    >>> identity_bits(32)
    5.0
    """
    if n_people < 1:
        raise InputError(f"n_people must be >= 1, got {n_people}")
    return math.log2(n_people)


def composed_bits(per_release_bits: Iterable[float], prior_entropy_bits: float) -> float:
    """Bound on I(identity; Z_1..Z_k): ``min(H(identity), sum of per-release bits)``.

    Valid when each release Z_i is computed from its own frame X_i (plus noise independent of
    everything else): then I(X_1..X_k; Z_1..Z_k) <= sum_i I(X_i; Z_i), and identity -> frames
    -> releases is a Markov chain, so the data-processing inequality caps the identity part.

    >>> composed_bits([1.5, 1.5], prior_entropy_bits=10.0)
    3.0
    >>> composed_bits([148.6] * 3, prior_entropy_bits=math.log2(30)) == math.log2(30)
    True
    """
    total = 0.0
    for b in per_release_bits:
        if b < 0:
            raise InputError(f"bits per release must be >= 0, got {b}")
        total += b
    return min(prior_entropy_bits, total)


def binary_entropy(p: float) -> float:
    """h(p) = -p log2 p - (1 - p) log2 (1 - p), in bits; h(0) = h(1) = 0.

    >>> binary_entropy(0.5)
    1.0
    """
    if not 0.0 <= p <= 1.0:
        raise InputError(f"a probability must be in [0, 1], got {p}")
    if p in (0.0, 1.0):
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def _fano_rhs(pe: float, n_classes: int) -> float:
    """h(Pe) + Pe log2(M - 1): the most H(Y | Z) can be when the error is Pe (increasing)."""
    return binary_entropy(pe) + pe * math.log2(n_classes - 1)


def fano_min_error(
    info_bits: float, n_classes: int, prior_entropy_bits: float | None = None
) -> float:
    """The least identification error any attacker can have, given I(Y; Z) <= ``info_bits``.

    Fano's inequality: H(Y | Z) <= h(Pe) + Pe log2(M - 1) for any estimator of Y (M values)
    from Z. With H(Y | Z) = H(Y) - I(Y; Z) >= H(Y) - ``info_bits``, Pe is at least the
    smallest p in [0, 1 - 1/M] with h(p) + p log2(M - 1) >= H(Y) - ``info_bits`` (the
    right side increases on that interval from 0 to log2 M). ``prior_entropy_bits`` defaults
    to log2 M (a uniform identity). Found by bisection to 1e-12.

    >>> fano_min_error(0.0, 4)  # nothing disclosed: chance, 1 - 1/4
    0.75
    >>> fano_min_error(2.0, 4)  # all of H(Y) disclosed: no floor
    0.0
    """
    if n_classes < 2:
        raise InputError(f"n_classes must be >= 2, got {n_classes}")
    if info_bits < 0:
        raise InputError(f"info_bits must be >= 0, got {info_bits}")
    prior = identity_bits(n_classes) if prior_entropy_bits is None else prior_entropy_bits
    needed = prior - info_bits  # a lower bound on H(Y | Z)
    if needed <= 0:
        return 0.0
    lo, hi = 0.0, 1.0 - 1.0 / n_classes
    if _fano_rhs(hi, n_classes) <= needed + 1e-12:  # nothing disclosed (up to rounding)
        return hi
    while hi - lo > 1e-12:
        mid = (lo + hi) / 2
        if _fano_rhs(mid, n_classes) >= needed:
            hi = mid
        else:
            lo = mid
    return hi


def max_identification_accuracy(info_bits: float, n_people: int) -> float:
    """The most often any attacker can name the right one of ``n_people`` (uniform) people.

    ``1 - fano_min_error(info_bits, n_people)``: chance (1/n) at 0 bits, 1 from log2 n bits on.

    >>> round(max_identification_accuracy(0.0, 30), 6) == round(1 / 30, 6)
    True
    """
    return 1.0 - fano_min_error(info_bits, n_people)


def gaussian_channel_capacity_bits(clip_norm: float, sigma: float, dim: int) -> float:
    """Most bits one release ``z = v + N(0, sigma^2 I_d)`` can carry when ``||v|| <= clip_norm``.

    The capacity of d parallel Gaussian channels under the total power ``clip_norm^2``, shared
    equally (water-filling with equal noise): ``d/2 log2(1 + C^2 / (d sigma^2))``. It bounds
    I(X; Z) for any encoder v = f(X) clipped to norm C, whatever f is.

    >>> gaussian_channel_capacity_bits(1.0, 1.0, 1) == 0.5 * math.log2(2.0)
    True
    """
    if clip_norm < 0 or sigma <= 0 or dim < 1:
        raise InputError(
            f"need clip_norm >= 0, sigma > 0 and dim >= 1; got {clip_norm}, {sigma}, {dim}"
        )
    return dim / 2 * math.log2(1.0 + clip_norm**2 / (dim * sigma**2))


def gaussian_mechanism_epsilon(noise_multiplier: float, count: int, delta: float) -> float:
    """Epsilon of ``count`` releases of ``clip_C(f(x_i)) + N(0, (m C)^2 I)``, composed, at ``delta``.

    Adjacency: one frame replaced by any other (replace-one), so the L2 sensitivity of one
    release is 2C; ``noise_multiplier`` m is the noise std in units of the clip norm C (the
    convention of the bench's ``dp-embedding`` method and of ``dp_accounting``'s PLD
    accountant under REPLACE_ONE). ``count`` Gaussian releases compose exactly into one
    Gaussian mechanism, mu-GDP with ``mu = sqrt(count) * 2 / m`` (Dong, Roth & Su 2019), whose
    exact privacy profile is ``delta(eps) = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu)``
    (Balle & Wang 2018); this solves it for eps. No dependency: the device side may call it;
    the tests check it against ``dp_accounting``.

    The guarantee is per frame: two streams that differ in one frame. A person seen in g of the
    frames changes g releases (the others are identical under both hypotheses), so the
    person-level epsilon is this function with ``count=g``.

    >>> round(gaussian_mechanism_epsilon(7.46, 1, 1e-5), 2)  # the bench's m for eps = 1
    1.0
    """
    if noise_multiplier <= 0 or count < 1 or not 0 < delta < 1:
        raise InputError(
            f"need noise_multiplier > 0, count >= 1 and 0 < delta < 1; got "
            f"{noise_multiplier}, {count}, {delta}"
        )
    mu = math.sqrt(count) * 2.0 / noise_multiplier
    if gaussian_delta(0.0, mu) <= delta:
        return 0.0
    hi = 1.0
    while gaussian_delta(hi, mu) > delta:
        hi *= 2.0
    lo = 0.0
    while hi - lo > 1e-9 * max(1.0, hi):
        mid = (lo + hi) / 2
        if gaussian_delta(mid, mu) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def gaussian_delta(epsilon: float, mu: float) -> float:
    """The exact delta at ``epsilon`` of a mu-GDP (Gaussian) mechanism, computed stably.

    ``Phi(-t) - e^eps Phi(-t - mu)`` with ``t = eps/mu - mu/2``; the second term is written
    ``phi(t) R(t + mu)`` (R the Mills ratio Phi(-x)/phi(x)), since
    ``e^eps phi(t + mu) = phi(t)``, so that large epsilons do not overflow.

    >>> round(gaussian_delta(0.0, 2.0), 12) == round(math.erf(1 / math.sqrt(2)), 12)  # TV
    True
    """
    t = epsilon / mu - mu / 2
    upper = 0.5 * math.erfc(t / math.sqrt(2.0))
    return max(0.0, upper - _normal_pdf(t) * _mills_ratio(t + mu))


def _normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _mills_ratio(x: float) -> float:
    """R(x) = Phi(-x) / phi(x): erfc where phi does not underflow, else Laplace's continued
    fraction R(x) = 1 / (x + 1 / (x + 2 / (x + 3 / (x + ...)))), accurate for large x."""
    if x < 25.0:
        return 0.5 * math.erfc(x / math.sqrt(2.0)) / _normal_pdf(x)
    fraction = x
    for n in range(60, 0, -1):
        fraction = x + n / fraction
    return 1.0 / fraction
