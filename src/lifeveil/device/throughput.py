"""Device throughput on one clip: decode only (the floor), the privatizer end to end in each
runtime (decode thread + batched inference of every frame), and deface on the same clip when
it is installed. All measured in the same process, one after the other."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lifeveil.ingest.video import iter_video_frames, prefetch


@dataclass(frozen=True)
class Throughput:
    """Frames processed and wall seconds of one way of processing a clip."""

    name: str
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        """Frames per second."""
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, fps included."""
        return {**asdict(self), "fps": round(self.fps, 1)}


def decode_only(clip: Path, short_side: int | None) -> Throughput:
    """Decode every frame (scaled by the decoder like the privatizer's input) and drop it."""
    t0 = time.perf_counter()
    n = sum(1 for _ in iter_video_frames(clip, short_side=short_side))
    return Throughput("decode only", n, time.perf_counter() - t0)


def privatize_clip(privatizer, clip: Path, runtime: str, batch: int = 32) -> Throughput:  # noqa: ANN001
    """Privatize every frame of ``clip``: decoding in a thread, inference in batches."""
    t0 = time.perf_counter()
    n = 0
    for frames in prefetch(_batches(clip, privatizer.input_size, batch), maxsize=2):
        n += len(privatizer.privatize(frames).z)
    return Throughput(f"privatizer ({runtime})", n, time.perf_counter() - t0)


def _batches(clip: Path, short_side: int, batch: int):  # noqa: ANN202  (an iterator of lists)
    from lifeveil.privatizer.encode import video_chunks

    return (frames for frames, _, _ in video_chunks(clip, None, batch, short_side))


def deface_clip(clip: Path, frames: int) -> Throughput | None:
    """``deface`` (detect, blur and re-encode every frame) on the clip; None if not installed."""
    # The deface script sits beside this Python in a virtual environment that is not on PATH.
    exe = shutil.which("deface") or shutil.which("deface", path=str(Path(sys.executable).parent))
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"anon{clip.suffix}"
        t0 = time.perf_counter()
        subprocess.run([exe, str(clip), "-o", str(out)], check=True, capture_output=True)
        return Throughput("deface", frames, time.perf_counter() - t0)


def device_benchmark(
    clip: str | Path,
    checkpoint: str | Path | None = None,
    runtimes: Sequence[str] = ("onnx", "torch"),
    threads: int = 2,
    batch: int = 32,
    with_deface: bool = True,
) -> dict[str, object]:
    """Every measurement on ``clip`` and the ratios a device maker asks for."""
    from lifeveil.privatizer.runtime import load_privatizer

    clip = Path(clip)
    rows = []
    first = None
    for runtime in runtimes:
        privatizer = load_privatizer(checkpoint, runtime, threads=threads)
        privatizer.privatize(next(_batches(clip, privatizer.input_size, 2)))  # warm-up
        first = first or privatizer
        rows.append(privatize_clip(privatizer, clip, runtime, batch))
    floor = decode_only(clip, first.input_size if first else None)
    rows.insert(0, floor)
    deface = deface_clip(clip, floor.frames) if with_deface else None
    if deface is not None:
        rows.append(deface)
    report: dict[str, object] = {"clip": str(clip), "threads": threads, "batch": batch}
    report["rows"] = [r.as_dict() for r in rows]
    if deface is not None:
        report["vs_deface"] = {r.name: round(r.fps / deface.fps, 2) for r in rows[1:-1]}
    return report
