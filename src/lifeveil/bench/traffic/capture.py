"""Recording the traces: H.264 re-encoded as a live uploader sends it, and LifeVeil's real
uplink measured on the socket through :class:`~lifeveil.bench.wiretap.WireTap`."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from lifeveil.bench.traffic.traces import (
    TLS13_OVERHEAD,
    TLS_MAX_PLAINTEXT,
    Trace,
    TrafficConfig,
)


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
