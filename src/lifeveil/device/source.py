"""Camera and file sources, decoded with PyAV, and the frame sampler.

Three kinds of source are accepted, all through ``av.open``:

* a video file (``clip.mp4``): decoded as fast as the CPU allows, or at capture speed with
  ``realtime=True``; resumable, because its frames have stable stream times;
* a V4L2 camera (``/dev/video0``): opened with ``format="v4l2"``;
* a network stream (``rtsp://``, ``rtsps://``, ``http(s)://``, ``udp://``, ``srt://``):
  RTSP over TCP, with a socket timeout so a dead camera raises instead of hanging.

Live sources (cameras, streams) have no stable position, so a restarted agent starts them
afresh with a new time origin. Only files are exercised by the tests; cameras and RTSP need
hardware and network that the CI machine does not have.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from lifeveil.errors import MediaError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://", "srt://")
SAMPLING_EPS = 1e-6  # frames this close before a sampling instant count as on it
STREAM_TIMEOUT_US = 10_000_000  # give up on a silent network camera after 10 s


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source`` argument.

    Attributes:
        uri: the path or URL as given.
        kind: ``"file"``, ``"v4l2"`` or ``"stream"``.
    """

    uri: str
    kind: str

    @property
    def live(self) -> bool:
        """Cameras and network streams: no stable position to resume from."""
        return self.kind != "file"

    @property
    def name(self) -> str:
        """Short human name: the file name, device path or URL without credentials."""
        if self.kind == "file":
            return Path(self.uri).name
        if self.kind == "stream" and "@" in self.uri:
            scheme, rest = self.uri.split("://", 1)
            return f"{scheme}://{rest.split('@', 1)[1]}"
        return self.uri

    def key(self) -> str:
        """Stable id of a file source (path, size and mtime), so a restart can resume it.

        Live sources get a fresh id per run: a camera stream restarted later is new footage.
        """
        if self.live:
            material = f"{self.kind}:{self.name}:{time.time_ns()}"
        else:
            st = Path(self.uri).stat()
            material = f"file:{Path(self.uri).resolve()}:{st.st_size}:{st.st_mtime_ns}"
        return hashlib.sha256(material.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CapturedFrame:
    """One decoded frame: PyAV frame (for re-encoding), its stream time and index."""

    frame: av.VideoFrame
    t: float  # seconds since the first frame of the stream
    index: int

    def rgb(self) -> np.ndarray:
        """The frame as RGB uint8 (H, W, 3)."""
        return self.frame.to_ndarray(format="rgb24")


def parse_source(text: str) -> SourceSpec:
    """Classify a ``--source`` argument; MediaError if a file or device does not exist."""
    if text.startswith(STREAM_SCHEMES):
        return SourceSpec(text, "stream")
    if text.startswith("/dev/video"):
        if not Path(text).exists():
            raise MediaError(f"{text}: no such camera device (is the camera plugged in?)")
        return SourceSpec(text, "v4l2")
    path = Path(text)
    if not path.is_file():
        raise MediaError(
            f"{text}: no such video file; expected a file, /dev/videoN or an rtsp:// URL"
        )
    return SourceSpec(str(path), "file")


def open_container(spec: SourceSpec) -> av.container.InputContainer:
    """Open the source with PyAV; MediaError with the reason if it cannot be opened."""
    options: dict[str, str] = {}
    fmt: str | None = None
    if spec.kind == "v4l2":
        fmt = "v4l2"
    elif spec.kind == "stream":
        options = {"timeout": str(STREAM_TIMEOUT_US)}
        if spec.uri.startswith(("rtsp://", "rtsps://")):
            options["rtsp_transport"] = "tcp"
    try:
        container = av.open(spec.uri, format=fmt, options=options, timeout=30.0)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{spec.name}: cannot open as video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{spec.name}: no video stream")
    return container


def stream_rate(container: av.container.InputContainer) -> float:
    """Nominal frame rate of the first video stream (25 if unknown)."""
    stream = container.streams.video[0]
    return float(stream.average_rate or stream.guessed_rate or 25)


def decode_frames(
    container: av.container.InputContainer, *, realtime: bool = False
) -> Iterator[CapturedFrame]:
    """Every frame of the first video stream with its time since the first frame.

    ``realtime=True`` paces the frames at stream speed (a file then behaves like a camera).
    A corrupt stream ends the iteration after the last good frame; MediaError if none.
    """
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream_rate(container)
    first: float | None = None
    start = time.monotonic()
    index = -1
    try:
        for index, frame in enumerate(container.decode(stream)):  # noqa: B007
            raw_t = float(frame.time) if frame.time is not None else index / rate
            first = raw_t if first is None else first
            t = max(0.0, raw_t - first)
            if realtime:
                delay = start + t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield CapturedFrame(frame, t, index)
    except av.error.FFmpegError as exc:
        if index < 0:
            raise MediaError(f"corrupt or unreadable video ({exc})") from None
    if index < 0:
        raise MediaError("the source produced no decodable frame")


def sampling_bin(t: float, fps: float) -> int:
    """Index of the sampling interval that stream time ``t`` (s) falls in at ``fps``.

    The sampler keeps the first frame of every interval ``[k/fps, (k+1)/fps)``, so the kept
    frames depend only on their times: a resumed stream samples the same frames.

    >>> [sampling_bin(t, 2.0) for t in (0.0, 0.49, 0.4999999, 0.5, 1.2)]
    [0, 0, 1, 1, 2]
    """
    return math.floor(t * fps + SAMPLING_EPS * fps)


class Sampler:
    """Keeps the first frame of every ``1/fps`` interval after a resume point."""

    def __init__(self, fps: float, after_s: float | None = None) -> None:
        if fps <= 0:
            raise MediaError(f"sampling rate must be positive, got fps={fps}")
        self.fps = fps
        self._last_bin = -1 if after_s is None else sampling_bin(after_s, fps)

    def keep(self, t: float) -> bool:
        """True if the frame at stream time ``t`` is sampled."""
        b = sampling_bin(t, self.fps)
        if b <= self._last_bin:
            return False
        self._last_bin = b
        return True
