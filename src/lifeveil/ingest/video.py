"""Video decoding with PyAV, sampled at a chosen rate."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from lifeveil.errors import MediaError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: RGB uint8 ``image`` (H, W, 3), its index in the stream and time (s)."""

    image: np.ndarray
    index: int
    timestamp: float


@dataclass(frozen=True)
class VideoInfo:
    """Basic stream facts of a video file."""

    width: int
    height: int
    fps: float
    frames: int
    seconds: float


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such video file")
    if p.is_file() and p.stat().st_size == 0:
        raise MediaError(f"{p}: video file is empty")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{p}: cannot open as video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{p}: no video stream (expected a video file such as .mp4/.avi/.mkv)")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """Width, height, frame rate and length of the first video stream."""
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
        if not seconds and container.duration:
            seconds = container.duration / 1e6
        frames = stream.frames or int(round(seconds * fps))
        return VideoInfo(
            stream.codec_context.width, stream.codec_context.height, fps, frames, seconds
        )


def iter_video_frames(
    path: str | Path,
    fps: float | None = None,
    max_frames: int | None = None,
    short_side: int | None = None,
) -> Iterator[Frame]:
    """Decode RGB frames, keeping about ``fps`` frames per second (all frames if None).

    A frame is kept when its timestamp reaches the next sampling instant, so the sampling is
    exact for variable-rate streams too. With ``short_side`` the decoder (libswscale) scales
    each frame so its shorter side has that many pixels, aspect kept: cheaper than converting
    full-size frames and resizing them in Python. Raises MediaError if the file yields no frame.
    """
    if fps is not None and fps <= 0:
        raise MediaError(f"sampling rate must be positive, got fps={fps}")
    kept = 0
    next_t = 0.0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else i / rate
                if fps is not None and t + 1e-6 < next_t:
                    continue
                if fps is not None:
                    next_t += 1.0 / fps
                    while next_t <= t:
                        next_t += 1.0 / fps
                yield Frame(_to_rgb(frame, short_side), i, t)
                kept += 1
                if max_frames is not None and kept >= max_frames:
                    break
        except av.error.FFmpegError as exc:
            if kept == 0:
                raise MediaError(f"{path}: corrupt video ({exc})") from None
    if kept == 0:
        raise MediaError(f"{path}: no decodable frames")


def _to_rgb(frame: av.VideoFrame, short_side: int | None) -> np.ndarray:
    """The frame as RGB uint8, scaled by the decoder so its shorter side is ``short_side``."""
    if short_side is None:
        return frame.to_ndarray(format="rgb24")
    scale = short_side / min(frame.width, frame.height)
    width = max(short_side, round(frame.width * scale))
    height = max(short_side, round(frame.height * scale))
    return frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")


T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], maxsize: int = 4) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``maxsize`` ahead of the consumer.

    Decoding (PyAV releases the GIL) then overlaps with whatever the consumer does with each
    item (e.g. inference). An exception in the producer is re-raised in the consumer; leaving
    the loop early stops the producer.
    """
    q: queue.Queue[object] = queue.Queue(maxsize)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer)
            q.put(exc)

    thread = threading.Thread(target=produce, name="lifeveil-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


@dataclass(frozen=True)
class H264Size:
    """Bytes of a clip re-encoded with libx264 at a given rate and CRF."""

    bytes: int
    frames: int
    fps: float
    crf: int

    @property
    def bytes_per_frame(self) -> float:
        """Average bytes per encoded frame."""
        return self.bytes / max(1, self.frames)

    @property
    def bytes_per_s(self) -> float:
        """Bytes per second of video at ``fps``."""
        return self.bytes_per_frame * self.fps


def encode_h264(frames: Sequence[np.ndarray], fps: float, crf: int = 23) -> int:
    """Bytes of H.264 packets for ``frames`` (RGB uint8, one size) encoded as one stream at
    ``fps`` with libx264 (``crf``, preset medium, yuv420p; odd sides trimmed by a pixel)."""
    h, w = (d - d % 2 for d in frames[0].shape[:2])
    total = 0
    with av.open(io.BytesIO(), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format="rgb24")
            for packet in stream.encode(frame):
                total += packet.size
                out.mux(packet)
        for packet in stream.encode():
            total += packet.size
            out.mux(packet)
    return total


def h264_size(path: str | Path, fps: float | None = None, crf: int = 23) -> H264Size:
    """``path`` re-encoded (sampled at ``fps``, or at its own rate) with :func:`encode_h264`:
    what uploading the video itself would cost."""
    rate = fps or probe_video(path).fps
    frames = [f.image for f in iter_video_frames(path, fps=fps)]
    return H264Size(encode_h264(frames, rate, crf), len(frames), float(rate), crf)
