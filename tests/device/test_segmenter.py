"""Raw segments: every frame of a real clip lands in the vault once, as playable H.264."""

from __future__ import annotations

from pathlib import Path

from lifeveil.device.segmenter import SegmentRecorder, recorded_until
from lifeveil.device.source import decode_frames, open_container, parse_source, stream_rate
from lifeveil.ingest.video import iter_video_frames, probe_video
from lifeveil.vault import Vault


def record(vault: Vault, clip: Path, resume_s: float = 0.0, stop_after: int | None = None):
    spec = parse_source(str(clip))
    with open_container(spec) as container:
        recorder = SegmentRecorder(
            vault,
            source_key=spec.key(),
            source_name=spec.name,
            base_us=1_700_000_000_000_000,
            rate=stream_rate(container),
            segment_s=1.0,
            resume_s=resume_s,
        )
        for i, frame in enumerate(decode_frames(container)):
            if stop_after is not None and i >= stop_after:
                recorder.abort()  # a crash: the open segment is lost, committed ones stay
                return spec
            recorder.add(frame)
        recorder.finish()
    return spec


def exported_frames(vault: Vault, tmp_path: Path) -> int:
    total = 0
    for info in vault.list():
        out = tmp_path / f"{info.segment_id}.mp4"
        vault.export(info.segment_id, out)
        assert probe_video(out).width == 176
        total += sum(1 for _ in iter_video_frames(out))
    return total


def test_segments_cover_the_clip_once_and_export_as_video(
    vault: Vault, tmp_path: Path, talking_face_clip: Path
):
    spec = record(vault, talking_face_clip)
    infos = sorted(vault.list(), key=lambda i: float(i.extra["start_s"]))
    assert len(infos) == 4  # 4.0 s in 1 s segments
    bounds = [(float(i.extra["start_s"]), float(i.extra["end_s"])) for i in infos]
    assert bounds[0][0] == 0.0
    assert all(end <= nxt for (_, end), (nxt, _) in zip(bounds, bounds[1:], strict=False))
    assert sum(int(i.extra["frames"]) for i in infos) == 120
    assert recorded_until(vault, spec.key()) == bounds[-1][1]
    assert exported_frames(vault, tmp_path) == 120


def test_resume_after_a_crash_records_only_what_is_missing(
    vault: Vault, tmp_path: Path, talking_face_clip: Path
):
    spec = record(vault, talking_face_clip, stop_after=70)  # dies inside the third segment
    done = recorded_until(vault, spec.key())
    assert done == 2.0 and len(vault.list()) == 2
    record(vault, talking_face_clip, resume_s=done)
    assert sum(int(i.extra["frames"]) for i in vault.list()) == 120
    assert exported_frames(vault, tmp_path) == 120
