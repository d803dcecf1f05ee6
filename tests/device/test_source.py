"""Sources and the sampler: sampling depends only on frame times, so resuming is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifeveil.device.source import (
    Sampler,
    decode_frames,
    open_container,
    parse_source,
    sampling_bin,
)
from lifeveil.errors import MediaError
from lifeveil.ingest.video import iter_video_frames


def test_sampling_bin_known_values():
    assert [sampling_bin(t, 2.0) for t in (0.0, 0.49, 0.5, 0.99, 1.0)] == [0, 0, 1, 1, 2]
    assert sampling_bin(1 / 3 - 1e-9, 3.0) == 1  # float error just below an instant


def test_sampler_matches_the_ingest_sampler_on_a_real_clip(talking_face_clip: Path):
    spec = parse_source(str(talking_face_clip))
    with open_container(spec) as container:
        times = [f.t for f in decode_frames(container)]
    sampler = Sampler(2.0)
    kept = [t for t in times if sampler.keep(t)]
    reference = [f.timestamp for f in iter_video_frames(talking_face_clip, fps=2.0)]
    assert kept == pytest.approx(reference)
    assert len(kept) == 8  # 120 frames at 29.97 fps end at 3.97 s: 0, 0.5, ..., 3.5


def test_resumed_sampler_keeps_exactly_the_remaining_frames(talking_face_clip: Path):
    with open_container(parse_source(str(talking_face_clip))) as container:
        times = [f.t for f in decode_frames(container)]
    full = Sampler(5.0)
    kept = [t for t in times if full.keep(t)]
    for cut in range(len(kept)):
        resumed = Sampler(5.0, after_s=kept[cut])
        assert [t for t in times if resumed.keep(t)] == kept[cut + 1 :]


def test_parse_source_kinds_and_errors(tmp_path: Path, talking_face_clip: Path):
    assert parse_source(str(talking_face_clip)).kind == "file"
    stream = parse_source("rtsp://user:secret@cam.local:554/stream1")
    assert stream.kind == "stream" and stream.live
    assert "secret" not in stream.name
    with pytest.raises(MediaError, match="no such video file"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(MediaError, match="no such camera"):
        parse_source("/dev/video987")


def test_file_key_is_stable_and_live_key_is_fresh(talking_face_clip: Path):
    spec = parse_source(str(talking_face_clip))
    assert spec.key() == spec.key()
    live = parse_source("rtsp://cam.local/stream")
    assert live.key() != live.key()


def test_realtime_paces_a_file_like_a_camera(talking_face_clip: Path):
    import time

    with open_container(parse_source(str(talking_face_clip))) as container:
        start = time.monotonic()
        for frame in decode_frames(container, realtime=True):
            if frame.t >= 0.5:
                break
    assert time.monotonic() - start >= 0.45
