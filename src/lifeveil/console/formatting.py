"""Jinja filters: sizes, times and durations as a person reads them."""

from __future__ import annotations

from datetime import datetime

UNITS = ("B", "kB", "MB", "GB", "TB")


def size(n: float | None) -> str:
    """Bytes in decimal units: ``1234567 -> '1.2 MB'``."""
    if n is None:
        return "-"
    value, unit = float(n), 0
    while value >= 1000 and unit < len(UNITS) - 1:
        value, unit = value / 1000, unit + 1
    return f"{int(value)} B" if unit == 0 else f"{value:.1f} {UNITS[unit]}"


def local_time(seconds: float | None) -> str:
    """Unix seconds as this machine's local time, to the second."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def local_time_us(us: int | None) -> str:
    """Microseconds since the epoch as local time."""
    return "-" if us is None else local_time(us / 1e6)


def local_hour_us(us: int | None) -> str:
    """The start of an hour (microseconds since the epoch) as local ``'YYYY-MM-DD HH:00'``."""
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1e6).astimezone().strftime("%Y-%m-%d %H:00")


def duration(seconds: float | None) -> str:
    """Seconds as ``'12.0 s'``, ``'3 min 5 s'`` or ``'2 h 4 min'``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def bits(value: float | None) -> str:
    """Bits with a readable unit: ``'512 bit'``, ``'12.3 kbit'``."""
    if value is None:
        return "-"
    for unit, scale in (("Gbit", 1e9), ("Mbit", 1e6), ("kbit", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} bit"


FILTERS = {
    "size": size,
    "local_time": local_time,
    "local_time_us": local_time_us,
    "local_hour_us": local_hour_us,
    "duration": duration,
    "bits": bits,
}
