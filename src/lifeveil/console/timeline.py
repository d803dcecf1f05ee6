"""Segments laid out on a day-by-day timeline (pure: the vault page draws it as SVG)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lifeveil.vault import SegmentInfo

DAY_S = 86_400.0
MIN_WIDTH = 0.3  # percent of a day: a 10 s recording would be invisible at its true width
JOIN_GAP_S = 30.0  # segments less than this apart are one recording (one bar)
MIN_SPAN_S = MIN_WIDTH / 100.0 * DAY_S  # the time the narrowest bar covers


@dataclass(frozen=True)
class Bar:
    """One recording (a run of back-to-back segments) on its day, in percent of the day."""

    segment_id: str  # the run's first segment: where a click on the bar leads
    left: float
    width: float
    title: str
    segments: int = 1


@dataclass(frozen=True)
class DayRow:
    """One local calendar day of recordings."""

    day: str  # YYYY-MM-DD, local time
    bars: tuple[Bar, ...]
    seconds: float  # recorded seconds that day


def day_rows(segments: Iterable[SegmentInfo]) -> list[DayRow]:
    """Newest day first; back-to-back segments form one bar (as do recordings closer than
    the narrowest bar), and a recording that crosses midnight is drawn on the day it starts."""
    days: dict[str, list[list[SegmentInfo]]] = {}
    seconds: dict[str, float] = {}
    for info in sorted(segments, key=lambda i: i.created_at):
        day = _local(info.created_at).date().isoformat()
        runs = days.setdefault(day, [])
        if runs and info.created_at <= _drawn_end(runs[-1]) + JOIN_GAP_S:
            runs[-1].append(info)
        else:
            runs.append([info])
        seconds[day] = seconds.get(day, 0.0) + (info.duration_s or 0.0)
    return [
        DayRow(d, tuple(_bar(run) for run in days[d]), seconds[d])
        for d in sorted(days, reverse=True)
    ]


def _local(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds).astimezone()


def _end(info: SegmentInfo) -> float:
    return info.created_at + (info.duration_s or 0.0)


def _drawn_end(run: list[SegmentInfo]) -> float:
    """Where a run's bar ends on the drawing (a short run is drawn wider than it is), so
    that bars never overlap."""
    return max(_end(run[-1]), run[0].created_at + MIN_SPAN_S)


def _bar(run: list[SegmentInfo]) -> Bar:
    start, end = _local(run[0].created_at), _local(_end(run[-1]))
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    left = 100.0 * ((start - midnight) / timedelta(seconds=1)) / DAY_S
    width = 100.0 * (end - start) / timedelta(seconds=1) / DAY_S
    width = min(max(width, MIN_WIDTH), 100.0 - left)
    count = f"{len(run)} segments" if len(run) > 1 else "1 segment"
    title = f"{start:%H:%M:%S}-{end:%H:%M:%S}, {count}, {run[0].source_name or ''}".rstrip(", ")
    return Bar(run[0].segment_id, left, width, title, len(run))
