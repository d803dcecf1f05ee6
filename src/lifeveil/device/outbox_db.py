"""The outbox's SQLite file: its schema, a durable connection, the ``meta`` table of counters,
transactions, and the conversion between rows and :class:`~lifeveil.transport.record.ZRecord`.

Durability: WAL mode with ``synchronous=FULL``, so a commit that returned survives a power cut
or a killed process. Files: the folder is made 0700 and the database with its ``-wal`` and
``-shm`` files 0600 before SQLite opens them (z is personal data even when privatized).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifeveil.errors import InputError
from lifeveil.io import private_dir, private_file
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import NO_SPACE, ZRecord

SCHEMA_VERSION = 2  # 2: records.space (issue 14); version-1 files are migrated on open
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,          -- device-local, strictly increasing, never reused
    timestamp_us INTEGER NOT NULL,    -- capture time, microseconds since the Unix epoch
    z BLOB NOT NULL,                  -- float32 little-endian, z_dim values
    queued_us INTEGER NOT NULL,       -- when put() committed it
    status INTEGER,                   -- NULL = pending; else the AckStatus, or -1 = refused
    space INTEGER NOT NULL DEFAULT 0  -- space tag of the privatizer version; 0 = undeclared
);
CREATE INDEX IF NOT EXISTS records_pending ON records (seq) WHERE status IS NULL;
CREATE TABLE IF NOT EXISTS sources (
    key TEXT PRIMARY KEY,             -- stable id of a source (see lifeveil.device.source)
    base_us INTEGER NOT NULL,         -- capture time of the source's t = 0
    position_s REAL                   -- stream time of the last frame turned into z
);
"""
SPACE_COLUMN = "ALTER TABLE records ADD COLUMN space INTEGER NOT NULL DEFAULT 0"
REFUSED = -1  # status of a record the egress guard refused (never sent, kept for inspection)
CONFLICTED = int(AckStatus.CONFLICT)  # status of a record kept after a CONFLICT ack
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


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
    conflicts: int  # CONFLICT acks ever: the server holds a different record under that seq
    refused: int  # refused by the egress guard (never sent)
    conflicted: int = 0  # records kept after a CONFLICT ack, waiting for requeue_conflicts()
    unknown_space: int = 0  # UNKNOWN_SPACE acks ever: z kept until its version is registered


def make_private(db_path: Path) -> None:
    """Folder 0700; database and any SQLite side files 0600, before SQLite opens them.

    SQLite creates its -wal and -shm files with the database file's mode, so a 0600 database
    keeps them private too; side files left by an older version are fixed here.
    """
    private_dir(db_path.parent)
    private_file(db_path)
    for suffix in SQLITE_SIDE_FILES:
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            private_file(side)


def connect_durable(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous=FULL``, shareable between threads (the
    caller serialises access). Raises InputError where SQLite refuses WAL."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise InputError(f"{path}: SQLite refused WAL mode; keep the outbox on a local disk")
    db.execute("PRAGMA synchronous=FULL")  # put() returning means it survives power loss
    db.execute("PRAGMA busy_timeout=10000")
    return db


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); caller holds the lock."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def set_meta(db: sqlite3.Connection, values: dict[str, object]) -> None:
    """Insert or replace ``meta`` entries (values stored as text)."""
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [(k, str(v)) for k, v in values.items()],
    )


def get_meta(db: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    """The ``meta`` entry ``key``, or ``default``."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def bump(db: sqlite3.Connection, counter: str, n: int) -> None:
    """Add ``n`` to the integer ``meta`` counter ``counter`` (created at ``n``)."""
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ?",
        (counter, str(n), n),
    )


def count_pending(db: sqlite3.Connection) -> int:
    """Records queued and not yet acked (or refused)."""
    return int(db.execute("SELECT COUNT(*) FROM records WHERE status IS NULL").fetchone()[0])


def read_stats(db: sqlite3.Connection) -> OutboxStats:
    """The persisted counters and the queue depth."""
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    pending = count_pending(db)
    conflicted = db.execute(
        "SELECT COUNT(*) FROM records WHERE status = ?", (CONFLICTED,)
    ).fetchone()[0]
    count = {k: int(meta.get(k, 0)) for k in ("put", "stored", "duplicates", "conflicts")}
    return OutboxStats(
        next_seq=int(meta.get("next_seq", 0)),
        pending=pending,
        refused=int(meta.get("refused", 0)),
        conflicted=int(conflicted),
        unknown_space=int(meta.get("unknown_space", 0)),
        **count,
    )


def z_blob(z: np.ndarray, z_dim: int) -> bytes:
    """``z`` as the stored blob: ``z_dim`` float32 little-endian values."""
    z = np.asarray(z)
    if z.shape != (z_dim,):
        raise InputError(f"outbox: z has shape {z.shape}, expected ({z_dim},)")
    return z.astype("<f4").tobytes()


def migrate(db: sqlite3.Connection) -> bool:
    """Bring a version-1 file up to :data:`SCHEMA_VERSION`; True if it changed anything.

    Version 1 had no ``records.space``: its rows get :data:`NO_SPACE` (undeclared), since the
    privatizer version that made them is not known. Caller holds the lock inside a transaction.
    """
    columns = {row[1] for row in db.execute("PRAGMA table_info(records)")}
    if "space" in columns:
        return False
    db.execute(SPACE_COLUMN)
    set_meta(db, {"schema": SCHEMA_VERSION})
    return True


def record_of(row: tuple[int, int, bytes] | tuple[int, int, bytes, int]) -> ZRecord:
    """The ZRecord of a ``(seq, timestamp_us, z[, space])`` row."""
    seq, timestamp_us, blob = row[:3]
    space = int(row[3]) if len(row) > 3 else NO_SPACE
    z = np.frombuffer(blob, "<f4").astype(np.float32)
    return ZRecord(int(seq), int(timestamp_us), z, space=space)
