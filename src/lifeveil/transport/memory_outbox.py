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

    An ``UNKNOWN_SPACE`` ack (the server knows no privatizer version with the record's space
    tag) keeps the record and *holds* its tag: no record of it is handed out until
    :meth:`release_space` (the version is registered) or :meth:`rewind`.
    """

    def __init__(self, records: list[ZRecord] | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: deque[ZRecord] = deque(records or [])
        self._handed_out: dict[int, ZRecord] = {}
        self._kept: dict[int, ZRecord] = {}  # answered UNKNOWN_SPACE: not stored, not lost
        self.held: set[int] = set()  # space tags whose records are not handed out
        self.acked: dict[int, AckStatus] = {}
        self.ack_times: dict[int, float] = {}

    def put(self, record: ZRecord) -> None:
        """Queue one record for sending."""
        with self._lock:
            self._queue.append(record)

    def next_record(self) -> ZRecord | None:
        """Uplink callback: the next unsent record whose tag is not held, or None."""
        with self._lock:
            for i, record in enumerate(self._queue):
                if record.space not in self.held:
                    del self._queue[i]
                    self._handed_out[record.seq] = record
                    return record
            return None

    def on_ack(self, seq: int, status: AckStatus) -> None:
        """Uplink callback: forget ``seq`` (keep it after UNKNOWN_SPACE); remember the status."""
        with self._lock:
            record = self._handed_out.pop(seq, None)
            if status is AckStatus.UNKNOWN_SPACE:
                if record is not None:
                    self._kept[seq] = record
                    self.held.add(record.space)
                return
            self.acked[seq] = status
            self.ack_times[seq] = time.monotonic()

    def release_space(self, space: int) -> None:
        """The version of tag ``space`` is registered: queue its kept records again, first."""
        with self._lock:
            self.held.discard(space)
            self._requeue([r for r in self._kept.values() if r.space == space])

    def rewind(self) -> None:
        """Queue every handed-out, unacked record again (call before a new Uplink)."""
        with self._lock:
            self.held.clear()
            self._requeue([*self._handed_out.values(), *self._kept.values()])

    def _requeue(self, records: list[ZRecord]) -> None:
        for record in records:
            self._handed_out.pop(record.seq, None)
            self._kept.pop(record.seq, None)
        self._queue.extendleft(sorted(records, key=lambda r: -r.seq))

    def unacked(self) -> int:
        """Records queued, handed out or kept after UNKNOWN_SPACE, and not yet acked."""
        with self._lock:
            return len(self._queue) + len(self._handed_out) + len(self._kept)
