"""Segments laid out on a day-by-day timeline (pure: the vault page draws it as SVG)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lifeveil.vault import SegmentInfo

DAY_S = 86_400.0
MIN_WIDTH = 0.15  # percent of a day: a 10 s segment would be invisible at its true width


@dataclass(frozen=True)
class Bar:
    """One segment on its day: position and width in percent of the day."""

    segment_id: str
    left: float
    width: float
    title: str


@dataclass(frozen=True)
class DayRow:
    """One local calendar day of recordings."""

    day: str  # YYYY-MM-DD, local time
    bars: tuple[Bar, ...]
    seconds: float  # recorded seconds that day


def day_rows(segments: Iterable[SegmentInfo]) -> list[DayRow]:
    """Newest day first; a segment that crosses midnight is drawn on the day it starts."""
    days: dict[str, list[Bar]] = {}
    seconds: dict[str, float] = {}
    for info in sorted(segments, key=lambda i: i.created_at):
        start = datetime.fromtimestamp(info.created_at).astimezone()
        midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
        offset = (start - midnight) / timedelta(seconds=1)
        length = info.duration_s or 0.0
        left = 100.0 * offset / DAY_S
        width = min(max(100.0 * length / DAY_S, MIN_WIDTH), 100.0 - left)
        day = start.date().isoformat()
        title = f"{start:%H:%M:%S} {info.source_name or ''} ({length:.1f} s)".strip()
        days.setdefault(day, []).append(Bar(info.segment_id, left, width, title))
        seconds[day] = seconds.get(day, 0.0) + length
    return [DayRow(d, tuple(days[d]), seconds[d]) for d in sorted(days, reverse=True)]
