"""The transparency log: what the device's outbox holds and has sent, read without touching it.

The outbox (:mod:`lifeveil.device.outbox`) is opened read-only (``mode=ro``), so the console
never blocks, changes or races the agent that writes it. Records acked by the server are
deleted from the outbox unless the agent keeps them (``keep_acked``); the persisted counters
(``put``, ``stored``, ...) still count every one, and the page says so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lifeveil.device.outbox import REFUSED
from lifeveil.transport.frame import AckStatus

#: How each ``records.status`` value reads in the log (None: still queued).
STATUS_NAMES: dict[int | None, str] = {
    None: "queued",
    int(AckStatus.STORED): "acked",
    int(AckStatus.DUPLICATE): "acked (duplicate)",
    int(AckStatus.CONFLICT): "conflict (kept)",
    REFUSED: "refused by egress guard",
}
US_PER_HOUR = 3_600_000_000


@dataclass(frozen=True)
class LogEntry:
    """One z record as the log shows it."""

    seq: int  # device sequence number
    timestamp_us: int  # capture time, microseconds since the Unix epoch
    queued_us: int  # when the agent committed it to the outbox
    size: int  # bytes of z (float32 values) as stored on the device
    status: str  # one of STATUS_NAMES' values

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the live view)."""
        return asdict(self)


@dataclass(frozen=True)
class HourTotal:
    """z records captured in one hour and their bytes."""

    hour_us: int  # start of the hour, microseconds since the Unix epoch
    records: int
    bytes: int


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the outbox, or None when there is none (yet)."""
    if not path.is_file():
        yield None
        return
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
    try:
        yield db
    finally:
        db.close()


def read_entries(
    path: Path, *, limit: int = 200, after_seq: int | None = None, before_seq: int | None = None
) -> list[LogEntry]:
    """Records of the outbox at ``path``, newest first.

    ``after_seq`` returns only records above it (the live view's poll); ``before_seq`` pages
    back through older ones. ``limit`` caps the number returned.
    """
    where, params = [], []
    if after_seq is not None:
        where.append("seq > ?")
        params.append(after_seq)
    if before_seq is not None:
        where.append("seq < ?")
        params.append(before_seq)
    sql = "SELECT seq, timestamp_us, queued_us, length(z), status FROM records"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC LIMIT ?"
    with _read_only(path) as db:
        if db is None:
            return []
        try:
            rows = db.execute(sql, (*params, int(limit))).fetchall()
        except sqlite3.OperationalError:  # the agent is creating the schema right now
            return []
    return [_entry(row) for row in rows]


def _entry(row: tuple[int, int, int, int, int | None]) -> LogEntry:
    seq, timestamp_us, queued_us, size, status = row
    name = STATUS_NAMES.get(status, f"status {status}")
    return LogEntry(int(seq), int(timestamp_us), int(queued_us), int(size), name)


def hourly_totals(path: Path, *, hours: int = 48) -> list[HourTotal]:
    """Records and z bytes per hour of capture, the latest ``hours`` hours that have any."""
    sql = (
        "SELECT timestamp_us / ? AS hour, COUNT(*), SUM(length(z)) FROM records "
        "GROUP BY hour ORDER BY hour DESC LIMIT ?"
    )
    with _read_only(path) as db:
        if db is None:
            return []
        try:
            rows = db.execute(sql, (US_PER_HOUR, int(hours))).fetchall()
        except sqlite3.OperationalError:
            return []
    return [HourTotal(int(h) * US_PER_HOUR, int(n), int(b or 0)) for h, n, b in reversed(rows)]


def last_queued_us(path: Path) -> int | None:
    """When the newest record still in the outbox was queued, if any."""
    with _read_only(path) as db:
        if db is None:
            return None
        try:
            row = db.execute("SELECT MAX(queued_us) FROM records").fetchone()
        except sqlite3.OperationalError:
            return None
    return None if row is None or row[0] is None else int(row[0])


def read_states(path: Path, first: int, last: int) -> dict[int, str]:
    """Seq -> state of the records between ``first`` and ``last`` (inclusive) still held.

    A seq in that range that is missing was acked and deleted (the live view marks it so).
    """
    sql = "SELECT seq, status FROM records WHERE seq BETWEEN ? AND ?"
    with _read_only(path) as db:
        if db is None:
            return {}
        try:
            rows = db.execute(sql, (int(first), int(last))).fetchall()
        except sqlite3.OperationalError:
            return {}
    return {int(seq): STATUS_NAMES.get(status, f"status {status}") for seq, status in rows}


def read_record(path: Path, seq: int) -> tuple[LogEntry, list[float]] | None:
    """One record and its z values (what left, or will leave, the device), None if not held."""
    sql = "SELECT seq, timestamp_us, queued_us, length(z), status, z FROM records WHERE seq = ?"
    with _read_only(path) as db:
        if db is None:
            return None
        try:
            row = db.execute(sql, (int(seq),)).fetchone()
        except sqlite3.OperationalError:
            return None
    if row is None:
        return None
    values = np.frombuffer(row[5], "<f4").astype(float).tolist()
    return _entry(row[:5]), values
