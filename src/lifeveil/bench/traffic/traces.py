"""Traces as an eavesdropper sees them, their features, and the attacker (pure functions).

A :class:`Trace` is one direction of one connection: TLS record arrival times and sizes.
:func:`trace_features` turns it into 15 numbers (:data:`FEATURE_NAMES`); :func:`loo_attack`
is the leave-one-out logistic-regression attacker; :func:`constancy` says how constant a
LifeVeil trace is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifeveil.errors import InputError

TLS13_OVERHEAD = 22  # record header 5 + AES-GCM tag 16 + inner content type 1


TLS_MAX_PLAINTEXT = 16384


FEATURE_NAMES = (
    "bitrate_mean",
    "bitrate_std",
    "bitrate_cv",
    "bitrate_p10",
    "bitrate_p50",
    "bitrate_p90",
    "bitrate_peak_to_mean",
    "bitrate_autocorr_lag1",
    "records_per_s",
    "record_size_mean",
    "record_size_std",
    "record_size_p90",
    "interarrival_mean",
    "interarrival_std",
    "interarrival_cv",
)


@dataclass(frozen=True)
class TrafficConfig:
    """Settings of the traffic-analysis check; saved beside its results."""

    max_clips: int | None = None  # use only the first N clips (None: all)
    max_seconds: float = 10.0  # seconds of each clip used (traces and labels)
    h264_width: int = 320  # every clip re-encoded at this width (height keeps the aspect)
    h264_crf: int = 23  # libx264 constant rate factor
    h264_gop_s: float = 2.0  # keyframe interval
    fps: float = 2.0  # LifeVeil sampling rate (z per second)
    rate_hz: float = 10.0  # LifeVeil uplink frames per second
    lifeveil_trace: str = "socket"  # "socket" (measured per clip) or "model" (constant schedule)
    checkpoint: str | None = None  # privatizer (None: the shipped default)
    settle_s: float = 0.5  # uplink trace starts this long after the TCP connection opens
    bin_s: float = 0.1  # bitrate bin of the features
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lifeveil_trace not in ("socket", "model"):
            raise InputError(
                f"lifeveil_trace must be 'socket' or 'model', not {self.lifeveil_trace!r}"
            )


@dataclass(frozen=True)
class Trace:
    """What an observer sees in one direction: record arrival times (s) and sizes (bytes)."""

    times: np.ndarray
    sizes: np.ndarray
    duration: float  # observation window (s)

    def bitrate(self, bin_s: float) -> np.ndarray:
        """Bytes per whole bin of ``bin_s`` seconds in the window (a partial last bin is dropped)."""
        bins = max(1, int(np.floor(self.duration / bin_s + 1e-9)))
        index = np.floor(self.times / bin_s + 1e-9).astype(int)
        keep = index < bins
        return np.bincount(index[keep], weights=self.sizes[keep], minlength=bins)[:bins]


def trace_features(trace: Trace, bin_s: float = 0.1) -> np.ndarray:
    """The 15 features of :data:`FEATURE_NAMES` for one trace (float64).

    >>> t = Trace(np.arange(10) / 10, np.full(10, 190.0), 1.0)
    >>> f = dict(zip(FEATURE_NAMES, trace_features(t)))
    >>> [round(float(f[k]), 6) for k in ("bitrate_mean", "bitrate_cv", "interarrival_std")]
    [1900.0, 0.0, 0.0]
    """
    rate = trace.bitrate(bin_s) / bin_s
    sizes = trace.sizes.astype(float)
    gaps = np.diff(trace.times) if len(trace.times) > 1 else np.zeros(1)
    mean = rate.mean()
    return np.array(
        [
            mean,
            rate.std(),
            _ratio(rate.std(), mean),
            *np.percentile(rate, [10, 50, 90]),
            _ratio(rate.max(), mean),
            _autocorr(rate),
            len(sizes) / trace.duration,
            sizes.mean() if len(sizes) else 0.0,
            sizes.std() if len(sizes) else 0.0,
            np.percentile(sizes, 90) if len(sizes) else 0.0,
            gaps.mean(),
            gaps.std(),
            _ratio(gaps.std(), gaps.mean()),
        ]
    )


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 0.0


def _autocorr(x: np.ndarray, lag: int = 1) -> float:
    if len(x) <= lag:
        return 0.0
    a, b = x[:-lag], x[lag:]
    if a.std() == 0 or b.std() == 0:  # a constant stream has no correlation to speak of
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def motion_labels(scores: Sequence[float]) -> np.ndarray:
    """1 (motion) where a clip's motion score is above the median, else 0 (still).

    >>> motion_labels([1.0, 5.0, 2.0, 9.0]).tolist()
    [0, 1, 0, 1]
    """
    s = np.asarray(scores, dtype=float)
    return (s > np.median(s)).astype(int)


def loo_attack(features: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Leave-one-out accuracy of a standardised logistic regression, against chance.

    ``chance`` is the majority-class rate; ``p_value`` a one-sided binomial test of the
    number of correct predictions against it.
    """
    from scipy.stats import binomtest
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneOut, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    predicted = cross_val_predict(model, features, labels, cv=LeaveOneOut())
    correct = int((predicted == labels).sum())
    n = len(labels)
    chance = float(np.bincount(labels).max() / n)
    p_value = float(binomtest(correct, n, chance, alternative="greater").pvalue)
    return {
        "accuracy": correct / n,
        "chance": chance,
        "correct": correct,
        "n": n,
        "p_value": p_value,
        "predicted": predicted.tolist(),
    }


def constancy(trace: Trace) -> dict[str, float]:
    """How constant a trace is: distinct record sizes and inter-arrival jitter (ms)."""
    gaps = np.diff(trace.times)
    return {
        "records": int(len(trace.sizes)),
        "distinct_sizes": int(len(np.unique(trace.sizes))),
        "size": float(trace.sizes[0]) if len(trace.sizes) else 0.0,
        "interarrival_mean_ms": float(gaps.mean() * 1e3) if len(gaps) else 0.0,
        "interarrival_std_ms": float(gaps.std() * 1e3) if len(gaps) else 0.0,
        "interarrival_max_dev_ms": float(np.abs(gaps - gaps.mean()).max() * 1e3)
        if len(gaps)
        else 0.0,
    }


def model_trace(seconds: float, rate_hz: float, record_bytes: float, phase: float) -> Trace:
    """The uplink's schedule: one record of ``record_bytes`` every ``1/rate_hz`` seconds."""
    times = np.arange(phase, seconds, 1.0 / rate_hz)
    return Trace(times, np.full(len(times), float(record_bytes)), seconds)
