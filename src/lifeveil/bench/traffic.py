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
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from lifeveil.data import ClipInfo, load_action_clips
from lifeveil.errors import InputError
from lifeveil.io import write_json

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

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


# -- features and the attacker (pure) ---------------------------------------------------------
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


# -- H.264 trace and motion label -------------------------------------------------------------
def h264_trace(path: str | Path, config: TrafficConfig) -> tuple[Trace, dict[str, Any]]:
    """Re-encode the first ``max_seconds`` of a clip and return its live-upload trace.

    Also returns facts about the clip: ``motion`` (mean absolute difference of consecutive
    80x60 grey frames, 0..255), frames, encoded bytes and the encode size.
    """
    times, sizes, diffs = [], [], []
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        width = config.h264_width
        height = (
            int(round(stream.codec_context.height * width / stream.codec_context.width / 2)) * 2
        )
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.time_base = Fraction(1, 1000)
        enc.framerate = Fraction(rate).limit_denominator(1001)
        enc.gop_size = max(1, round(rate * config.h264_gop_s))
        enc.options = {"crf": str(config.h264_crf), "preset": "veryfast", "tune": "zerolatency"}
        previous, first_t, frames = None, None, 0
        for i, frame in enumerate(src.decode(stream)):
            t = float(frame.time) if frame.time is not None else i / rate
            first_t = t if first_t is None else first_t
            t -= first_t
            if t >= config.max_seconds:
                break
            grey = frame.reformat(width=80, height=60, format="gray").to_ndarray().astype(float)
            if previous is not None:
                diffs.append(np.abs(grey - previous).mean())
            previous = grey
            image = frame.reformat(width=width, height=height, format="yuv420p")
            image.pts, image.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in enc.encode(image):
                _add_packet(packet, times, sizes)
            frames += 1
        for packet in enc.encode(None):
            _add_packet(packet, times, sizes)
    duration = frames / rate
    trace = Trace(np.array(times), np.array(sizes, dtype=float), duration)
    facts = {
        "motion": float(np.mean(diffs)) if diffs else 0.0,
        "frames": frames,
        "seconds": duration,
        "h264_bytes": int(sum(sizes) - TLS13_OVERHEAD * len(sizes)),
        "h264_size": f"{width}x{height}",
    }
    return trace, facts


def _add_packet(packet: av.Packet, times: list[float], sizes: list[int]) -> None:
    """A frame's bytes go out when it is encoded, as TLS records of at most 16 KiB."""
    t = float(packet.pts) / 1000.0
    remaining = packet.size
    while remaining > 0:
        chunk = min(remaining, TLS_MAX_PLAINTEXT)
        times.append(t)
        sizes.append(chunk + TLS13_OVERHEAD)
        remaining -= chunk


# -- LifeVeil trace ---------------------------------------------------------------------------
class _Released:
    """Uplink ``next_record`` that releases each z at its capture time (like a live camera)."""

    def __init__(self, records: list[Any], offsets: list[float]) -> None:
        self._records, self._offsets = records, offsets
        self._start: float | None = None
        self._next = 0
        self._lock = threading.Lock()
        self.acked: set[int] = set()

    def next_record(self) -> Any:
        with self._lock:
            now = time.monotonic()
            self._start = self._start if self._start is not None else now
            if self._next < len(self._records) and now - self._start >= self._offsets[self._next]:
                self._next += 1
                return self._records[self._next - 1]
            return None

    def on_ack(self, seq: int, _status: Any) -> None:
        self.acked.add(seq)


class LifeVeilTracer:
    """Runs the real uplink for each clip through a wiretap to a local TLS server."""

    def __init__(self, config: TrafficConfig, workdir: Path) -> None:
        from lifeveil.privatizer import Privatizer
        from lifeveil.server.local import LocalServer

        self.config = config
        self.privatizer = Privatizer.load(config.checkpoint)
        self.server = LocalServer(workdir / "server", z_dim=self.privatizer.z_dim)
        self.user_token = self.server.add_tenant("traffic")
        self._count = 0

    def __enter__(self) -> LifeVeilTracer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def trace(self, path: Path, seconds: float) -> tuple[Trace, Trace]:
        """(upstream, downstream) TLS records of the uplink while the clip plays."""
        from lifeveil.bench.wiretap import TLS_APPLICATION_DATA, WireTap
        from lifeveil.transport.client import QueryClient
        from lifeveil.transport.uplink import Uplink, UplinkConfig

        records, offsets = self._z_records(path, seconds)
        wire = self.server.config.wire
        self._count += 1
        with WireTap(self.server.port) as tap:
            base = f"https://127.0.0.1:{tap.port}"
            with QueryClient(base, self.user_token, wire=wire, cafile=self.server.cafile) as c:
                creds = c.register_device(f"clip-{self._count}")
            tap.clear()
            source = _Released(records, offsets)
            uplink_config = UplinkConfig(
                url=creds.uplink_url,
                token=creds.token,
                wire=wire,
                rate_hz=self.config.rate_hz,
                cafile=self.server.cafile,
                drain_s=0.0,
            )
            uplink = Uplink(uplink_config, next_record=source.next_record, on_ack=source.on_ack)
            with uplink:
                time.sleep(self.config.settle_s + seconds + 0.2)
            [conn] = tap.connections()
        start = conn.opened + self.config.settle_s
        window = (start, start + seconds)
        up = _window(conn.records("up", TLS_APPLICATION_DATA), window)
        down = _window(conn.records("down", TLS_APPLICATION_DATA), window)
        if uplink.error is not None:
            raise uplink.error
        return up, down

    def _z_records(self, path: Path, seconds: float) -> tuple[list[Any], list[float]]:
        from lifeveil.ingest.video import iter_video_frames
        from lifeveil.transport.record import ZRecord

        frames = [f for f in iter_video_frames(path, fps=self.config.fps) if f.timestamp < seconds]
        z = self.privatizer.privatize([f.image for f in frames]).z
        records = [ZRecord(i, round(f.timestamp * 1e6), z[i]) for i, f in enumerate(frames)]
        return records, [f.timestamp + self.config.settle_s for f in frames]


def _window(records: list[Any], window: tuple[float, float]) -> Trace:
    start, end = window
    kept = [r for r in records if start <= r.t < end]
    return Trace(
        np.array([r.t - start for r in kept]), np.array([r.size for r in kept], float), end - start
    )


def model_trace(seconds: float, rate_hz: float, record_bytes: float, phase: float) -> Trace:
    """The uplink's schedule: one record of ``record_bytes`` every ``1/rate_hz`` seconds."""
    times = np.arange(phase, seconds, 1.0 / rate_hz)
    return Trace(times, np.full(len(times), float(record_bytes)), seconds)


# -- the whole check --------------------------------------------------------------------------
def run_traffic_analysis(
    root: str | Path,
    out_dir: str | Path,
    config: TrafficConfig | None = None,
    progress: Progress | None = None,
    files: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Record both traces for every clip, attack both, write ``results.json`` and ``traces.png``.

    ``files`` restricts the check to clips whose file name (as in ``labels.csv``) is listed.
    Returns the results dict (also written to ``out_dir/results.json``).
    """
    config = config or TrafficConfig()
    say = progress or (lambda _line: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_action_clips(root)
    if files is not None:
        clips = [c for c in clips if c.path.name in set(files)]
    clips = clips[: config.max_clips]
    if len(clips) < 4:
        raise InputError(f"{root}: need at least 4 clips for a cross-validated attack")
    rng = np.random.default_rng(config.seed)
    h264, facts = [], []
    for clip in clips:
        trace, fact = h264_trace(clip.path, config)
        h264.append(trace)
        facts.append(fact)
    say(f"H.264 traces of {len(clips)} clips recorded (re-encoded at {config.h264_width} px wide)")
    up, down = _lifeveil_traces(clips, facts, config, rng, say)
    labels = motion_labels([f["motion"] for f in facts])
    result = {
        "config": asdict(config),
        "label": "motion (mean abs frame difference above the median) vs still",
        "activity_note": _activity_note(clips),
        "features": list(FEATURE_NAMES),
        "clips": [
            _clip_row(c, f, int(y), t, u)
            for c, f, y, t, u in zip(clips, facts, labels, h264, up, strict=True)
        ],
        "attack": {
            "h264": loo_attack(_features(h264, config), labels),
            "lifeveil": loo_attack(_features(up, config), labels),
        },
        "lifeveil_constancy": {
            "upstream": _pooled_constancy(up),
            "downstream": _pooled_constancy(down),
        },
    }
    write_json(out / "results.json", result)
    plot_traces(out / "traces.png", clips, facts, h264, up, config.bin_s)
    return result


def _lifeveil_traces(
    clips: list[ClipInfo],
    facts: list[dict[str, Any]],
    config: TrafficConfig,
    rng: np.random.Generator,
    say: Progress,
) -> tuple[list[Trace], list[Trace]]:
    with (
        tempfile.TemporaryDirectory(prefix="lifeveil-traffic-") as tmp,
        LifeVeilTracer(config, Path(tmp)) as tracer,
    ):
        if config.lifeveil_trace == "socket":
            pairs = []
            for clip, fact in zip(clips, facts, strict=True):
                pairs.append(tracer.trace(clip.path, fact["seconds"]))
                say(f"LifeVeil uplink measured on the socket for {clip.path.name}")
            return [p[0] for p in pairs], [p[1] for p in pairs]
        up, down = tracer.trace(clips[0].path, min(3.0, facts[0]["seconds"]))  # calibration
    say(f"LifeVeil uplink calibrated on the socket: {int(up.sizes[0])} B records up")
    period = 1.0 / config.rate_hz
    ups = [
        model_trace(f["seconds"], config.rate_hz, up.sizes[0], rng.uniform(0, period))
        for f in facts
    ]
    downs = [
        model_trace(f["seconds"], config.rate_hz, down.sizes[0], rng.uniform(0, period))
        for f in facts
    ]
    return ups, downs


def _features(traces: list[Trace], config: TrafficConfig) -> np.ndarray:
    return np.stack([trace_features(t, config.bin_s) for t in traces])


def _pooled_constancy(traces: list[Trace]) -> dict[str, Any]:
    per_clip = [constancy(t) for t in traces]
    sizes = sorted({s for t in traces for s in np.unique(t.sizes).tolist()})
    return {
        "distinct_sizes_all_clips": sizes,
        "max_interarrival_std_ms": max(c["interarrival_std_ms"] for c in per_clip),
        "max_interarrival_dev_ms": max(c["interarrival_max_dev_ms"] for c in per_clip),
    }


def _clip_row(
    clip: ClipInfo, fact: dict[str, Any], label: int, h264: Trace, up: Trace
) -> dict[str, Any]:
    return {
        "file": clip.path.name,
        "activity": clip.label,
        "motion_score": round(fact["motion"], 3),
        "motion": bool(label),
        "seconds": round(fact["seconds"], 3),
        "h264_bytes": fact["h264_bytes"],
        "h264_bytes_per_s": round(float(h264.sizes.sum() / h264.duration), 1),
        "lifeveil_bytes_per_s": round(float(up.sizes.sum() / up.duration), 1),
        "lifeveil_record_sizes": sorted(set(up.sizes.astype(int).tolist())),
    }


def _activity_note(clips: list[ClipInfo]) -> str:
    distinct = len({c.label for c in clips})
    return (
        f"{len(clips)} clips carry {distinct} distinct activity labels; with about one clip per "
        "activity a cross-validated activity attack is not defined, so the label is motion vs still"
    )


def plot_traces(
    path: Path,
    clips: list[ClipInfo],
    facts: list[dict[str, Any]],
    h264: list[Trace],
    lifeveil: list[Trace],
    bin_s: float,
) -> Path:
    """Bitrate over time of the stillest and the most moving clip, H.264 above LifeVeil."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    motion = [f["motion"] for f in facts]
    pick = {"still": int(np.argmin(motion)), "moving": int(np.argmax(motion))}
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for ax, traces, title in (
        (axes[0], h264, "H.264 upload"),
        (axes[1], lifeveil, "LifeVeil uplink"),
    ):
        for kind, i in pick.items():
            rate = traces[i].bitrate(bin_s) / bin_s / 1000
            t = np.arange(len(rate)) * bin_s
            ax.step(
                t,
                rate,
                where="post",
                label=f"{kind}: {clips[i].path.name[:40]} (motion {motion[i]:.1f})",
            )
        ax.set_title(
            f"{title}: upstream kB/s in {bin_s * 1000:.0f} ms bins, as an eavesdropper sees it"
        )
        ax.set_ylabel("kB/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    axes[1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
