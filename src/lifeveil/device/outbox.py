"""The durable on-device outbox: z records wait here, in SQLite, until the server acks them.

Why SQLite: a record is only worth computing once. ``put`` commits the record (and, in the
same transaction, how far through its source the agent has got) with ``synchronous=FULL``
before returning, so a power cut or a killed process loses nothing that ``put`` returned,
and a restarted agent resumes its source where it stopped instead of queueing the same
frames again under new sequence numbers.

Sequence numbers are per outbox (one device): strictly increasing, never reused, persisted
across restarts even when every record has been acked and deleted. The server deduplicates by
``(device, seq)``, so at-least-once delivery from here becomes exactly-once on the server.

The uplink contract (see :mod:`lifeveil.transport.uplink`): ``next_record`` hands out each
pending record once per uplink session, oldest first; the uplink itself resends its in-flight
records after a reconnect; after a restart of the process (or :meth:`Outbox.rewind`), every
unacked record is handed out again. ``on_ack`` deletes the record (or, with
``keep_acked=True``, marks it, so tests and audits can compare what the server holds with
everything the device ever queued).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifeveil.errors import EgressRefusedError, InputError
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,          -- device-local, strictly increasing, never reused
    timestamp_us INTEGER NOT NULL,    -- capture time, microseconds since the Unix epoch
    z BLOB NOT NULL,                  -- float32 little-endian, z_dim values
    queued_us INTEGER NOT NULL,       -- when put() committed it
    status INTEGER                    -- NULL = pending; else the AckStatus, or -1 = refused
);
CREATE INDEX IF NOT EXISTS records_pending ON records (seq) WHERE status IS NULL;
CREATE TABLE IF NOT EXISTS sources (
    key TEXT PRIMARY KEY,             -- stable id of a source (see lifeveil.device.source)
    base_us INTEGER NOT NULL,         -- capture time of the source's t = 0
    position_s REAL                   -- stream time of the last frame turned into z
);
"""
REFUSED = -1  # status of a record the egress guard refused (never sent, kept for inspection)


@dataclass(frozen=True)
class SourceState:
    """Where the agent is in one source: its time origin and the last frame already in z."""

    key: str
    base_us: int  # capture time (us since epoch) of stream time 0
    position_s: float | None  # stream time (s) of the last frame privatized; None: none yet


@dataclass(frozen=True)
class OutboxStats:
    """Counters of one outbox (persisted)."""

    next_seq: int  # the seq the next put() will get
    pending: int  # queued and not yet acked
    put: int  # records ever queued
    stored: int  # acked as newly stored by the server
    duplicates: int  # acked as already stored (a resend after a lost ack)
    conflicts: int  # the server holds a different record under that seq
    refused: int  # refused by the egress guard (never sent)


class Outbox:
    """SQLite-backed queue of z records for one device; safe to share with the uplink thread.

    Args:
        path: database file (created with its folder if missing).
        z_dim: dimension of z; fixed at creation and checked on every open.
        keep_acked: keep acked records (marked with their ack status) instead of deleting
            them, for audits and tests; :meth:`history` returns them.
    """

    def __init__(self, path: str | Path, z_dim: int, *, keep_acked: bool = False) -> None:
        self.path = Path(path)
        self.z_dim = z_dim
        self.keep_acked = keep_acked
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._configure()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable outbox database ({exc})") from None
        self._cursor = -1  # highest seq handed out in this session

    # -- setup --------------------------------------------------------------------------
    def _configure(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise InputError(
                f"{self.path}: SQLite refused WAL mode; keep the outbox on a local disk"
            )
        self._db.execute("PRAGMA synchronous=FULL")  # put() returning means it survives power loss
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            self._db.executescript("BEGIN IMMEDIATE;\n" + _SCHEMA + "\nCOMMIT;")
            with self._transaction():
                stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
                if not stored:
                    self._set_meta({"schema": SCHEMA_VERSION, "z_dim": self.z_dim, "next_seq": 0})
        if int(stored.get("schema", SCHEMA_VERSION)) > SCHEMA_VERSION:
            raise InputError(f"{self.path}: outbox schema is newer than this LifeVeil; upgrade it")
        if stored and int(stored["z_dim"]) != self.z_dim:
            raise InputError(
                f"{self.path} holds z of dimension {stored['z_dim']} but the privatizer makes "
                f"d={self.z_dim}; drain it with the old model or use a new state folder"
            )

    def _set_meta(self, values: dict[str, object]) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    def _meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity -----------------------------------------------------------------------
    def bind_device(self, name: str) -> None:
        """Tie this outbox to device ``name``; refuse if it already belongs to another.

        Sequence numbers are per device on the server, so one outbox must never feed two
        device identities.
        """
        with self._lock:
            bound = self._meta("device")
            if bound is None:
                self._set_meta({"device": name})
            elif bound != name:
                raise InputError(
                    f"{self.path} belongs to device {bound!r}, not {name!r}; its sequence "
                    "numbers would collide; use a separate --state folder per device"
                )

    @property
    def device(self) -> str | None:
        """The device this outbox is bound to, if any."""
        with self._lock:
            return self._meta("device")

    # -- producer side ------------------------------------------------------------------
    def put(
        self,
        z: np.ndarray,
        timestamp_us: int,
        *,
        source: str | None = None,
        position_s: float | None = None,
    ) -> int:
        """Queue one z durably; returns its seq. See :meth:`put_many`."""
        return self.put_many([(z, timestamp_us)], source=source, position_s=position_s)[0]

    def put_many(
        self,
        items: Sequence[tuple[np.ndarray, int]],
        *,
        source: str | None = None,
        position_s: float | None = None,
    ) -> list[int]:
        """Queue ``(z, timestamp_us)`` items in one transaction; returns their seqs.

        With ``source`` and ``position_s``, the source's position (stream time of the last
        frame these z summarise) is advanced in the same transaction, so that after a crash
        the records and the resume point agree.
        """
        blobs = [(self._blob(z), int(ts)) for z, ts in items]
        now_us = time.time_ns() // 1000
        with self._lock, self._transaction():
            first = int(self._meta("next_seq", "0") or 0)
            seqs = list(range(first, first + len(blobs)))
            self._db.executemany(
                "INSERT INTO records (seq, timestamp_us, z, queued_us) VALUES (?, ?, ?, ?)",
                [(s, ts, blob, now_us) for s, (blob, ts) in zip(seqs, blobs, strict=True)],
            )
            self._bump("put", len(blobs))
            self._set_meta({"next_seq": first + len(blobs)})
            if source is not None and position_s is not None:
                self._db.execute(
                    "UPDATE sources SET position_s = ? WHERE key = ?", (position_s, source)
                )
        return seqs

    def _blob(self, z: np.ndarray) -> bytes:
        z = np.asarray(z)
        if z.shape != (self.z_dim,):
            raise InputError(f"outbox: z has shape {z.shape}, expected ({self.z_dim},)")
        return z.astype("<f4").tobytes()

    # -- sources ------------------------------------------------------------------------
    def begin_source(self, key: str, base_us: int) -> SourceState:
        """The state of source ``key``, registering it with time origin ``base_us`` if new."""
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO sources (key, base_us) VALUES (?, ?)", (key, int(base_us))
            )
            row = self._db.execute(
                "SELECT base_us, position_s FROM sources WHERE key = ?", (key,)
            ).fetchone()
        return SourceState(key, int(row[0]), row[1])

    def source_state(self, key: str) -> SourceState | None:
        """The state of source ``key``, or None if it was never started."""
        with self._lock:
            row = self._db.execute(
                "SELECT base_us, position_s FROM sources WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else SourceState(key, int(row[0]), row[1])

    # -- uplink side --------------------------------------------------------------------
    def next_record(self) -> ZRecord | None:
        """Uplink callback: the oldest pending record not yet handed out this session."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, timestamp_us, z FROM records WHERE status IS NULL AND seq > ? "
                "ORDER BY seq LIMIT 1",
                (self._cursor,),
            ).fetchone()
            if row is None:
                return None
            self._cursor = int(row[0])
        return _record(row)

    def on_ack(self, seq: int, status: AckStatus) -> None:
        """Uplink callback: the server holds ``seq``; forget it (or mark it, if keep_acked)."""
        counter = {AckStatus.STORED: "stored", AckStatus.DUPLICATE: "duplicates"}.get(
            status, "conflicts"
        )
        if status is AckStatus.CONFLICT:
            log.warning("server holds a different record under seq %d; dropping ours", seq)
        self._finish(seq, int(status), counter)

    def on_refused(self, record: object, exc: EgressRefusedError) -> None:
        """Uplink callback: the egress guard refused a record; keep it out of the queue."""
        log.error("outbox: %s", exc)
        seq = getattr(record, "seq", None)
        if isinstance(seq, int):
            with self._lock, self._transaction():
                self._db.execute("UPDATE records SET status = ? WHERE seq = ?", (REFUSED, seq))
                self._bump("refused", 1)

    def _finish(self, seq: int, status: int, counter: str) -> None:
        with self._lock, self._transaction():
            if self.keep_acked:
                cur = self._db.execute(
                    "UPDATE records SET status = ? WHERE seq = ? AND status IS NULL",
                    (status, seq),
                )
            else:
                cur = self._db.execute(
                    "DELETE FROM records WHERE seq = ? AND status IS NULL", (seq,)
                )
            if cur.rowcount:
                self._bump(counter, 1)

    def rewind(self) -> None:
        """Hand out every pending record again (call before starting a new uplink)."""
        with self._lock:
            self._cursor = -1

    # -- inspection ---------------------------------------------------------------------
    def pending(self) -> int:
        """Records queued and not yet acked (or refused)."""
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM records WHERE status IS NULL").fetchone()[0]
            )

    def stats(self) -> OutboxStats:
        """Persisted counters and the queue depth."""
        with self._lock:
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            pending = self._db.execute(
                "SELECT COUNT(*) FROM records WHERE status IS NULL"
            ).fetchone()[0]
        count = {k: int(meta.get(k, 0)) for k in ("put", "stored", "duplicates", "conflicts")}
        return OutboxStats(
            next_seq=int(meta.get("next_seq", 0)),
            pending=int(pending),
            refused=int(meta.get("refused", 0)),
            **count,
        )

    def history(self) -> list[tuple[ZRecord, int | None]]:
        """Every record still in the database with its status (None = pending), by seq.

        With ``keep_acked=True`` this is everything ever queued.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, timestamp_us, z, status FROM records ORDER BY seq"
            ).fetchall()
        return [(_record(r[:3]), r[3]) for r in rows]

    # -- helpers ------------------------------------------------------------------------
    def _bump(self, counter: str, n: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?",
            (counter, str(n), n),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); caller holds the lock."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _record(row: tuple[int, int, bytes]) -> ZRecord:
    seq, timestamp_us, blob = row
    return ZRecord(int(seq), int(timestamp_us), np.frombuffer(blob, "<f4").astype(np.float32))
