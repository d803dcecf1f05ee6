"""Raw video segments: re-encode decoded frames to H.264 and store them in the vault.

Every source -- file, camera or RTSP stream -- is recorded the same way: all decoded frames
(not only the sampled ones) are encoded with libx264 into an in-memory MP4 per segment of
``segment_s`` seconds, and each finished segment is committed to the encrypted vault, from
where ``lifeveil vault export`` gives back a playable file. Segment boundaries lie on a fixed
grid of stream time (``k * segment_s``), and each segment records its source id and
``[start_s, end_s)`` in its (encrypted) metadata, so an agent restarted on the same file
continues after the last committed segment instead of storing footage twice.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

import av

from lifeveil.device.source import CapturedFrame
from lifeveil.vault import SegmentInfo, SegmentMetadata, Vault

SEGMENT_KIND = "lifeveil-device-segment"
H264_OPTIONS = {"preset": "veryfast", "crf": "23"}  # what a camera's hardware encoder would do
PTS_RATE = 1000  # segment timestamps in milliseconds


class _Mp4Encoder:
    """One in-memory H.264/MP4 file being written."""

    def __init__(self, width: int, height: int, rate: float) -> None:
        self.width, self.height = width - width % 2, height - height % 2  # yuv420p needs even
        self._buffer = io.BytesIO()
        self._out = av.open(self._buffer, "w", format="mp4")
        self._stream = self._out.add_stream("libx264", rate=Fraction(rate).limit_denominator(1001))
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = Fraction(1, PTS_RATE)
        self._stream.options = dict(H264_OPTIONS)
        self._last_pts = -1
        self.frames = 0

    def add(self, frame: av.VideoFrame, t: float) -> None:
        """Encode ``frame`` at ``t`` seconds after the segment start."""
        image = frame.reformat(format="yuv420p", width=self.width, height=self.height)
        pts = max(self._last_pts + 1, round(t * PTS_RATE))
        image.pts, image.time_base = pts, Fraction(1, PTS_RATE)
        self._last_pts = pts
        for packet in self._stream.encode(image):
            self._out.mux(packet)
        self.frames += 1

    def finish(self) -> bytes:
        """Flush the encoder and return the complete MP4 file."""
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        return self._buffer.getvalue()

    def discard(self) -> None:
        """Throw the partial file away."""
        self._out.close()


class SegmentRecorder:
    """Feeds frames of one source into H.264 segments and commits each to the vault.

    Args:
        vault: an unlocked vault.
        source_key: stable id of the source (see ``SourceSpec.key``).
        source_name: human name stored (encrypted) with each segment.
        base_us: capture time of stream time 0, microseconds since the epoch.
        rate: nominal frame rate of the source.
        segment_s: seconds per segment.
        resume_s: frames before this stream time are already in the vault and are skipped.
    """

    def __init__(
        self,
        vault: Vault,
        *,
        source_key: str,
        source_name: str,
        base_us: int,
        rate: float,
        segment_s: float = 10.0,
        resume_s: float = 0.0,
    ) -> None:
        self.vault = vault
        self.source_key, self.source_name = source_key, source_name
        self.base_us, self.rate, self.segment_s = base_us, rate, segment_s
        self.resume_s = resume_s
        self.committed: list[SegmentInfo] = []
        self._encoder: _Mp4Encoder | None = None
        self._index = -1  # grid index of the open segment
        self._start_s = 0.0
        self._last_t = 0.0

    def add(self, captured: CapturedFrame) -> SegmentInfo | None:
        """Record one frame; returns the segment committed because this frame began a new one."""
        t = captured.t
        if t < self.resume_s - 1e-6:
            return None
        index = math.floor(t / self.segment_s + 1e-9)
        done = None
        if self._encoder is not None and index != self._index:
            done = self._commit(end_s=index * self.segment_s)
        if self._encoder is None:
            frame = captured.frame
            self._encoder = _Mp4Encoder(frame.width, frame.height, self.rate)
            self._index, self._start_s = index, t
        self._encoder.add(captured.frame, t - self._start_s)
        self._last_t = t
        return done

    def finish(self) -> SegmentInfo | None:
        """Commit the open segment, ending one frame after its last frame."""
        if self._encoder is None:
            return None
        return self._commit(end_s=self._last_t + 1.0 / self.rate)

    def abort(self) -> None:
        """Drop the open segment without storing it."""
        if self._encoder is not None:
            self._encoder.discard()
            self._encoder = None

    def _commit(self, end_s: float) -> SegmentInfo:
        encoder, self._encoder = self._encoder, None
        assert encoder is not None
        data = encoder.finish()
        metadata = SegmentMetadata(
            source_name=self.source_name,
            duration_s=round(end_s - self._start_s, 6),
            created_at=(self.base_us + self._start_s * 1e6) / 1e6,
            extra={
                "kind": SEGMENT_KIND,
                "source_key": self.source_key,
                "start_s": f"{self._start_s:.6f}",
                "end_s": f"{end_s:.6f}",
                "frames": str(encoder.frames),
                "codec": "h264",
                "container": "mp4",
            },
        )
        info = self.vault.ingest_stream([data], metadata)
        self.committed.append(info)
        return info


def recorded_until(vault: Vault, source_key: str) -> float:
    """Stream time up to which source ``source_key`` is already in the vault (0 if never)."""
    ends = [
        float(info.extra["end_s"])
        for info in vault.list()
        if info.extra.get("kind") == SEGMENT_KIND and info.extra.get("source_key") == source_key
    ]
    return max(ends, default=0.0)
