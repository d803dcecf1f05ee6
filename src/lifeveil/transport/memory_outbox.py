"""An in-memory record source for the uplink: tests, notebooks and demos."""

from __future__ import annotations

import threading
import time
from collections import deque

from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord


class MemoryOutbox:
    """Thread-safe in-memory record source for :class:`Uplink` (tests, notebooks, demos).

    Not durable: a process crash loses unacked records. The device agent keeps its outbox in
    SQLite with the same contract: hand out records once per Uplink session, delete on ack,
    and hand out every unacked record again after a restart (:meth:`rewind`).
    """

    def __init__(self, records: list[ZRecord] | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: deque[ZRecord] = deque(records or [])
        self._handed_out: dict[int, ZRecord] = {}
        self.acked: dict[int, AckStatus] = {}
        self.ack_times: dict[int, float] = {}

    def put(self, record: ZRecord) -> None:
        """Queue one record for sending."""
        with self._lock:
            self._queue.append(record)

    def next_record(self) -> ZRecord | None:
        """Uplink callback: the next unsent record, or None."""
        with self._lock:
            if not self._queue:
                return None
            record = self._queue.popleft()
            self._handed_out[record.seq] = record
            return record

    def on_ack(self, seq: int, status: AckStatus) -> None:
        """Uplink callback: forget ``seq``; remember the status for inspection."""
        with self._lock:
            self._handed_out.pop(seq, None)
            self.acked[seq] = status
            self.ack_times[seq] = time.monotonic()

    def rewind(self) -> None:
        """Queue every handed-out, unacked record again (call before a new Uplink)."""
        with self._lock:
            self._queue.extendleft(sorted(self._handed_out.values(), key=lambda r: -r.seq))
            self._handed_out.clear()

    def unacked(self) -> int:
        """Records queued or handed out and not yet acked."""
        with self._lock:
            return len(self._queue) + len(self._handed_out)
