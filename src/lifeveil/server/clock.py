"""The stores' clock: wall time in whole microseconds (what every timestamp column holds)."""

from __future__ import annotations

import time


def now_us() -> int:
    """Microseconds since the Unix epoch, now."""
    return time.time_ns() // 1000
