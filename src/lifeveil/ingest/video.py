"""Video decoding with PyAV, sampled at a chosen rate."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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
