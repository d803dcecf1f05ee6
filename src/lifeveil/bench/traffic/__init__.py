"""Traffic analysis: can an eavesdropper tell what the camera sees from packet sizes and timings?

The side-channel attack of the position paper (Section II.C): activities of daily living can
be inferred from an *encrypted* video upload "using only transmission spikes". For every
action clip we record two traces of what an on-path observer sees -- TLS record sizes and
arrival times, upstream:

* **H.264**: the clip re-encoded at a fixed setting (libx264, CRF, fixed GOP, zero-latency,
  scaled to a common width) and streamed the way a live uploader does, each encoded frame
  sent when it is produced (at its pts), split into TLS records of at most 16 KiB plus the
  TLS 1.3 record overhead. The sizes are those of the real encoder output.
* **LifeVeil**: the real uplink (:class:`~lifeveil.transport.uplink.Uplink`) sending the
  clip's real z (privatized at ``fps``, released at their capture times) to a real TLS
  server on loopback, measured on the socket by :class:`~lifeveil.bench.wiretap.WireTap`
  (``lifeveil_trace="socket"``); or, to be fast, the constant schedule the uplink follows,
  with the record size and rate taken from one socket measurement (``"model"``).

The label is motion versus still: the clip's mean absolute frame difference above or below
the median over the clips. (Activity labels cannot be cross-validated here: the 23 clips carry
22 distinct activities, one clip each.) The attacker is a standardised logistic regression on
15 trace features (bitrate statistics in 100 ms bins, record sizes, inter-arrival times,
autocorrelation), scored by leave-one-out cross-validation against the majority-class rate,
with a one-sided binomial test.

Modules: :mod:`.traces` (traces, features, the attacker), :mod:`.capture` (recording the
H.264 and LifeVeil traces), :mod:`.analysis` (:func:`run_traffic_analysis`).
"""

from __future__ import annotations

from lifeveil.bench.traffic.analysis import Progress, plot_traces, run_traffic_analysis
from lifeveil.bench.traffic.capture import LifeVeilTracer, h264_trace
from lifeveil.bench.traffic.traces import (
    FEATURE_NAMES,
    TLS13_OVERHEAD,
    TLS_MAX_PLAINTEXT,
    Trace,
    TrafficConfig,
    constancy,
    loo_attack,
    model_trace,
    motion_labels,
    trace_features,
)

__all__ = [
    "FEATURE_NAMES",
    "TLS13_OVERHEAD",
    "TLS_MAX_PLAINTEXT",
    "LifeVeilTracer",
    "Progress",
    "Trace",
    "TrafficConfig",
    "constancy",
    "h264_trace",
    "loo_attack",
    "model_trace",
    "motion_labels",
    "plot_traces",
    "run_traffic_analysis",
    "trace_features",
]
