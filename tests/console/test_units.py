"""Pure parts of the console: the timeline layout, byte ranges, formatting, download names."""

from __future__ import annotations

from datetime import datetime

import pytest

from lifeveil.console.formatting import bits, duration, size
from lifeveil.console.media import byte_range
from lifeveil.console.timeline import day_rows
from lifeveil.console.vault_access import download_name, media_type
from lifeveil.vault import SegmentInfo


def info(start: float, length: float, name: str = "cam0", **extra: str) -> SegmentInfo:
    return SegmentInfo(
        segment_id=f"{int(start):032x}",
        created_at=start,
        size=10,
        sha256="0" * 64,
        stored_size=20,
        source_name=name,
        duration_s=length,
        extra=extra,
    )


def test_back_to_back_segments_are_one_bar_and_gaps_split_them():
    noon = datetime(2026, 3, 4, 12, 0, 0).astimezone().timestamp()
    run = [info(noon + 10 * i, 10.0) for i in range(6)]  # one minute of 10 s segments
    later = info(noon + 600, 10.0)
    near = info(noon + 120, 5.0)  # closer than the narrowest bar: drawn in the first
    [row] = day_rows([later, near, *run])
    assert row.day == "2026-03-04" and row.seconds == 75.0
    first, second = row.bars
    assert (first.segment_id, first.segments) == (run[0].segment_id, 7)
    assert first.left == pytest.approx(50.0) and first.width == pytest.approx(0.3)  # minimum
    assert second.segment_id == later.segment_id and second.left > first.left + first.width
    assert first.title == "12:00:00-12:02:05, 7 segments, cam0"


def test_days_are_newest_first():
    day1 = datetime(2026, 3, 4, 8).astimezone().timestamp()
    rows = day_rows([info(day1, 5.0), info(day1 + 86_400, 5.0)])
    assert [r.day for r in rows] == ["2026-03-05", "2026-03-04"]


def test_byte_ranges():
    assert byte_range(None, 100) is None
    assert byte_range("bytes=10-19", 100) == (10, 19)
    assert byte_range("bytes=90-", 100) == (90, 99)
    assert byte_range("bytes=-10", 100) == (90, 99)
    assert byte_range("bytes=0-1000", 100) == (0, 99)
    assert byte_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole body
    with pytest.raises(ValueError):
        byte_range("bytes=100-", 100)


def test_formatting():
    assert (size(999), size(1234567), size(None)) == ("999 B", "1.2 MB", "-")
    assert (duration(4.04), duration(185), duration(7440)) == ("4.0 s", "3 min 5 s", "2 h 4 min")
    assert (bits(512), bits(12_300)) == ("512 bit", "12.3 kbit")


def test_media_types_and_download_names():
    agent = info(0, 1.0, "clip one.mp4", container="mp4", kind="lifeveil-device-segment")
    assert media_type(agent) == "video/mp4"
    assert download_name(agent) == f"clip_one_{agent.segment_id[:8]}.mp4"
    plain = info(0, 1.0, "../../etc/holiday.webm")
    assert (media_type(plain), download_name(plain)) == ("video/webm", "holiday.webm")
    unknown = info(0, 1.0, None)
    assert media_type(unknown) == "application/octet-stream"
    assert download_name(unknown) == f"segment_{unknown.segment_id[:12]}.bin"
