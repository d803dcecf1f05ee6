"""Turn media files into z: images, image folders and videos -> z.npy + index.csv."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from lifeveil.errors import InputError
from lifeveil.ingest.images import IMAGE_SUFFIXES, list_images, load_image
from lifeveil.ingest.video import VIDEO_SUFFIXES, iter_video_frames, prefetch
from lifeveil.io import atomic_open, atomic_path

if TYPE_CHECKING:
    from lifeveil.privatizer.lite import LitePrivatizer
    from lifeveil.privatizer.privatizer import Privatizer

INDEX_COLUMNS = ("row", "source", "frame", "timestamp_s", "kl_bits")


@dataclass
class Encoded:
    """z for a set of inputs, with one index row per z."""

    z: list[np.ndarray] = field(default_factory=list)
    rows: list[dict[str, object]] = field(default_factory=list)

    def add(
        self,
        z: np.ndarray,
        kl_bits: np.ndarray,
        source: str,
        frames: Sequence[int],
        times: Sequence[float],
    ) -> None:
        """Append z rows (N, d) from one source."""
        for j in range(len(z)):
            self.rows.append(
                {
                    "row": len(self.rows),
                    "source": source,
                    "frame": int(frames[j]),
                    "timestamp_s": round(float(times[j]), 4),
                    "kl_bits": round(float(kl_bits[j]), 2),
                }
            )
        self.z.append(z)

    def matrix(self) -> np.ndarray:
        """All z stacked, (N, d) float32."""
        return np.concatenate(self.z) if self.z else np.zeros((0, 0), np.float32)


def _expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    if not inputs:
        raise InputError("no inputs: give images, image folders or video files")
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += list_images(p)
        elif not p.exists():
            raise InputError(f"{p}: no such file or folder")
        elif p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            files.append(p)
        else:
            raise InputError(
                f"{p}: unsupported file type (expected an image {IMAGE_SUFFIXES} or video {VIDEO_SUFFIXES})"
            )
    return files


def video_chunks(
    path: Path, fps: float | None, chunk: int, short_side: int | None = None
) -> Iterator[tuple[list[np.ndarray], list[int], list[float]]]:
    """Decoded frames of ``path`` (sampled at ``fps``, all if None) in lists of ``chunk``, with
    their stream indices and times; ``short_side`` lets the decoder scale them."""
    frames, idx, times = [], [], []
    for f in iter_video_frames(path, fps=fps, short_side=short_side):
        frames.append(f.image)
        idx.append(f.index)
        times.append(f.timestamp)
        if len(frames) == chunk:
            yield frames, idx, times
            frames, idx, times = [], [], []
    if frames:
        yield frames, idx, times


def encode_inputs(
    privatizer: Privatizer | LitePrivatizer,
    inputs: Sequence[str | Path],
    fps: float = 2.0,
    mode: str | None = None,
    progress: bool = True,
) -> Encoded:
    """Privatize every image and every sampled video frame (or clip, in clip mode)."""
    out = Encoded()
    files = _expand_inputs(inputs)
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    videos = [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES]
    for start in tqdm(
        range(0, len(images), 64), desc="images", disable=not progress or len(images) < 64
    ):
        batch = images[start : start + 64]
        rep = privatizer.privatize([load_image(p) for p in batch], mode)
        for j, p in enumerate(batch):
            out.add(rep.z[j : j + 1], rep.kl_bits[j : j + 1], str(p), [0], [0.0])
    for video in tqdm(videos, desc="videos", unit="file", disable=not progress or len(videos) < 2):
        _encode_video(privatizer, video, fps, mode, out)
    return out


def _encode_video(
    privatizer: Privatizer | LitePrivatizer, video: Path, fps: float, mode: str | None, out: Encoded
) -> None:
    t = privatizer.cfg.clip_frames
    if t > 1:  # clip mode: one z per window of t sampled frames
        for frames, idx, times in video_chunks(video, fps, t):
            rep = privatizer.privatize_clips([frames], mode)
            out.add(rep.z, rep.kl_bits, str(video), idx[:1], times[:1])
        return
    # The decoder scales frames to the student's input (shorter side = input size; the
    # privatizer crops the centre) in a background thread, overlapping decode and inference.
    chunks = video_chunks(video, fps, 64, short_side=privatizer.input_size)
    for frames, idx, times in prefetch(chunks, maxsize=2):
        rep = privatizer.privatize(frames, mode)
        out.add(rep.z, rep.kl_bits, str(video), idx, times)


def write_encoded(
    encoded: Encoded, out_dir: str | Path, dtype: str = "float16"
) -> tuple[Path, Path]:
    """Write ``z.npy`` (N, d) and ``index.csv`` atomically into ``out_dir``."""
    if dtype not in ("float16", "float32"):
        raise InputError(f"dtype must be float16 or float32, got {dtype!r}")
    out_dir = Path(out_dir)
    z_path, index_path = out_dir / "z.npy", out_dir / "index.csv"
    with atomic_path(z_path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, encoded.matrix().astype(dtype))
    with atomic_open(index_path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(encoded.rows)
    return z_path, index_path
