"""The PostgreSQL store's background indexer: moves z from the unindexed tail into HNSW.

Ingest only appends to ``lifeveil_z_tail`` (a trigger on ``lifeveil_z_records``, schema
version 3), so it never waits for the HNSW graph. One daemon thread per store moves tail rows
into ``lifeveil_z_ann`` (the HNSW-indexed table) in batches, each batch one transaction that
deletes the rows from the tail and inserts them into the ann table: a k-NN query, which reads
both tables in one statement (one snapshot), sees every row exactly once, before or after
its move. Rows are picked ``FOR UPDATE SKIP LOCKED``, so the indexers of several server
processes on one database share the work without waiting on or duplicating each other.
The indexer also keeps the tail vacuumed and the k-NN tables' planner statistics fresh
(``ANALYZE`` as the moved count doubles).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from lifeveil.server.pg_store_pool import ConnectionPool, first_line, import_psycopg

log = logging.getLogger(__name__)

# Rows moved per transaction: ~0.2 s of HNSW inserts (m 16, ef_construction 128: 1,200-1,500
# z/s on one core of the development machine), so a batch's locks are short and a stop waits
# little, while commits stay rare.
MOVE_BATCH = 256
# Seconds between looks at an empty tail (another server process may have filled it).
IDLE_POLL_S = 1.0
# Moved rows after which the tail is vacuumed even while it is never empty. Each move leaves
# dead rows that every k-NN query's exact tail scan still reads until a VACUUM: an empty tail
# after 90k moves cost 9.5 ms per query, 0.14 ms once vacuumed (59 ms).
VACUUM_EVERY = 20_000
# Back-off after a failed batch (PostgreSQL down...): doubles from the first to the last.
BACKOFF_S = (0.5, 30.0)
# Rows moved before the first ANALYZE of the HNSW and records tables; then each time the moved
# count doubles. Until autovacuum gets to a new table the planner has no statistics: it took
# the tenant filter for one row, scanned a 10k ann table exactly and joined the records by the
# wrong index (16 ms per k-NN instead of 2 ms after an ANALYZE; measured, docs/SERVER.md).
ANALYZE_FIRST = 1_000

_MOVE = """
WITH moved AS (
    DELETE FROM lifeveil_z_tail WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM lifeveil_z_tail LIMIT %s FOR UPDATE SKIP LOCKED))
    RETURNING device_id, space, seq, tenant_id, z
)
INSERT INTO lifeveil_z_ann (device_id, space, seq, tenant_id, z)
    SELECT device_id, space, seq, tenant_id, z FROM moved
    ON CONFLICT (device_id, space, seq) DO NOTHING
"""


def move_tail_batch(pool: ConnectionPool, limit: int = MOVE_BATCH) -> int:
    """Move up to ``limit`` tail rows (not locked by another indexer) into the HNSW table,
    in one transaction; returns how many were taken from the tail."""

    def work(conn: Any) -> int:
        return max(int(conn.execute(_MOVE, (int(limit),)).rowcount), 0)

    return pool.run(work)


def tail_size(pool: ConnectionPool) -> int:
    """Rows waiting in the tail (committed ones, including any being moved right now)."""
    return int(
        pool.run(
            lambda c: c.execute("SELECT COUNT(*) FROM lifeveil_z_tail").fetchone()[0],
            transaction=False,
        )
    )


def vacuum_tail(pool: ConnectionPool) -> None:
    """``VACUUM`` the tail: drop the dead rows that moves leave, so scans of it stay short."""
    pool.run(lambda c: c.execute("VACUUM lifeveil_z_tail"), transaction=False)


def analyze_knn_tables(pool: ConnectionPool, lock_timeout_s: float = 2.0) -> bool:
    """``ANALYZE`` the tables a k-NN query plans over (the HNSW table and the records); False
    if another process (a manual VACUUM, say) held them past ``lock_timeout_s``."""
    locked = import_psycopg().errors.LockNotAvailable

    def work(conn: Any) -> bool:
        conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
        try:
            with conn.transaction():  # a savepoint: a timeout leaves the transaction usable
                conn.execute("ANALYZE lifeveil_z_ann, lifeveil_z_records")
        except locked:
            return False
        return True

    return pool.run(work)


def tail_is_empty(pool: ConnectionPool) -> bool:
    """Whether no committed row waits in the tail (cheaper than counting a large one)."""
    return not pool.run(
        lambda c: c.execute("SELECT EXISTS (SELECT 1 FROM lifeveil_z_tail)").fetchone()[0],
        transaction=False,
    )


class TailIndexer:
    """One daemon thread moving tail batches into HNSW while the tail is non-empty.

    :meth:`notify` (after an ingest commits) wakes it; otherwise it looks every
    ``idle_poll_s`` seconds. A failed batch is logged in one line and retried with back-off;
    nothing is lost, as a batch that fails leaves its rows in the tail.
    """

    def __init__(
        self, pool: ConnectionPool, batch: int = MOVE_BATCH, idle_poll_s: float = IDLE_POLL_S
    ) -> None:
        self._pool, self.batch, self.idle_poll_s = pool, batch, idle_poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.moved = 0  # rows this indexer moved into HNSW since it started
        self.busy_s = 0.0  # seconds spent in batches that moved rows
        self._unvacuumed = 0  # rows moved since the last VACUUM of the tail
        self._analyze_at = ANALYZE_FIRST  # moved count at which to ANALYZE next

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="lifeveil-pg-indexer", daemon=True
            )
            self._thread.start()

    def notify(self) -> None:
        """New rows are in the tail: move them soon."""
        self._wake.set()

    def wait_indexed(self, timeout_s: float = 600.0, poll_s: float = 0.1) -> bool:
        """Wait until the tail is empty (every committed z is in HNSW); False on timeout."""
        deadline = time.monotonic() + timeout_s
        self.notify()
        while not tail_is_empty(self._pool):
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    @property
    def rate_z_per_s(self) -> float:
        """Rows moved into HNSW per second of moving, since start (0 before any)."""
        return self.moved / self.busy_s if self.busy_s > 0 else 0.0

    def stop(self) -> None:
        """Ask the thread to stop after the batch in progress (which commits or rolls back
        whole); :meth:`close` waits for it."""
        self._stop.set()
        self._wake.set()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop and wait for the thread."""
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        delay = BACKOFF_S[0]
        while not self._stop.is_set():
            self._wake.clear()  # a notify from now on ends the idle wait below
            t0 = time.perf_counter()
            try:
                moved = move_tail_batch(self._pool, self.batch)
            except Exception as exc:  # PostgreSQL down, a lock timeout...: rows stay queued
                if self._stop.is_set():
                    return
                log.warning("k-NN indexer: %s; retrying in %.1f s", first_line(exc), delay)
                self._stop.wait(delay)
                delay = min(2 * delay, BACKOFF_S[1])
                continue
            delay = BACKOFF_S[0]
            if moved:
                self.moved += moved
                self.busy_s += time.perf_counter() - t0
                self._unvacuumed += moved
            if self._unvacuumed >= VACUUM_EVERY or (self._unvacuumed and not moved):
                self._vacuum()
            if self.moved >= self._analyze_at:
                self._analyze()
            if not moved:
                self._wake.wait(self.idle_poll_s)

    def _analyze(self) -> None:
        self._analyze_at = 2 * self.moved  # tried once: if it fails, autovacuum does it later
        try:
            if not analyze_knn_tables(self._pool):
                log.info("k-NN indexer: ANALYZE skipped (tables locked); autovacuum will do it")
        except Exception as exc:  # indexing goes on
            log.warning("k-NN indexer: ANALYZE failed: %s", first_line(exc))

    def _vacuum(self) -> None:
        self._unvacuumed = 0  # tried once: if it fails, autovacuum does it later
        try:
            vacuum_tail(self._pool)
        except Exception as exc:  # indexing goes on
            log.warning("k-NN indexer: VACUUM of the tail failed: %s", first_line(exc))
