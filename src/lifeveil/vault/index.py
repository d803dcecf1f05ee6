"""The segment index: one SQLite file (WAL) holding wrapped segment keys and sealed metadata.

Schema (``PRAGMA user_version = 1``)::

    vault(key TEXT PRIMARY KEY, value BLOB)      -- 'vault_id' -> 16 bytes,
                                                 -- 'state' -> 105 bytes (format.IndexState)
    segments(id TEXT PRIMARY KEY,                -- 32 lowercase hex chars
             created_at REAL NOT NULL,           -- Unix seconds, in the clear for ordering
             stored_size INTEGER NOT NULL,       -- ciphertext file size in bytes
             wrapped_key BLOB NOT NULL,          -- 60 bytes, see lifeveil.vault.format
             sealed_meta BLOB NOT NULL)          -- AEAD-sealed JSON under the segment key
    deleting(id TEXT PRIMARY KEY)                -- segments whose key is destroyed but whose
                                                 -- file may not be removed yet (crash window)

``deleting`` was added without a schema bump (older LifeVeil ignores it); it is created on the
first read-write open of an index that lacks it. Every change to ``segments`` happens in one
transaction (``SegmentIndex.change``) together with the new ``'state'`` record, so the
authenticated state always describes the rows beside it.

Only the creation time and the ciphertext size are readable without the master key (both are
visible from file timestamps and sizes anyway); the source name, duration, plaintext size and
SHA-256 are encrypted. ``secure_delete`` makes SQLite overwrite deleted rows with zeros, and
a truncating WAL checkpoint after each delete removes the WAL copies, so a deleted wrapped key
is gone from every file of the vault (flash wear-levelling below the file system is out of
reach of any software; see ``Vault.delete``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lifeveil.errors import VaultError, VaultIntegrityError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vault (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    stored_size INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL,
    sealed_meta BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS segments_created ON segments (created_at);
CREATE TABLE IF NOT EXISTS deleting (id TEXT PRIMARY KEY);
"""
_DELETING_TABLE = "CREATE TABLE IF NOT EXISTS deleting (id TEXT PRIMARY KEY)"
_COLUMNS = "id, created_at, stored_size, wrapped_key, sealed_meta"


@dataclass(frozen=True)
class IndexRow:
    """One committed segment as stored in the index."""

    segment_id: str
    created_at: float
    stored_size: int
    wrapped_key: bytes
    sealed_meta: bytes


class SegmentIndex:
    """Thread-safe access to ``index.sqlite``; every write is its own durable transaction."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        mode = "rwc" if create else "rw"
        try:
            self._conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode={mode}",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=30.0,
            )
        except sqlite3.DatabaseError as exc:
            raise _unreadable(path, exc) from None
        try:
            self._configure(create)
        except BaseException as exc:
            self._conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise _unreadable(path, exc) from None
            raise
        self._lock = threading.Lock()
        self._closed = False

    def _configure(self, create: bool) -> None:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if create and version == 0:
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise VaultError(
                f"{self.path}: index schema version {version}, this LifeVeil reads "
                f"{SCHEMA_VERSION}: use a LifeVeil release that supports it"
            )
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'deleting'").fetchone()
        if found is None:
            conn.execute(_DELETING_TABLE)

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close; closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._checkpoint()
            self._conn.close()
            self._closed = True

    def bind_vault_id(self, vault_id: bytes) -> None:
        """Record ``vault_id`` on creation; later, refuse an index from another vault."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM vault WHERE key='vault_id'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO vault VALUES ('vault_id', ?)", (vault_id,))
            elif bytes(row[0]) != vault_id:
                raise VaultIntegrityError(
                    f"{self.path} belongs to another vault (id {bytes(row[0]).hex()}, expected "
                    f"{vault_id.hex()}): restore this vault's own index.sqlite"
                )

    @contextlib.contextmanager
    def change(self) -> Iterator[IndexChange]:
        """One write transaction (``BEGIN IMMEDIATE``): committed, durably, when the block
        ends; rolled back if it raises. Concurrent writers in other processes wait."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield IndexChange(self._conn)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def snapshot(self) -> tuple[bytes | None, list[tuple[str, bytes]]]:
        """The ``'state'`` record and every (id, wrapped key), read in one transaction so
        they describe the same moment."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                change = IndexChange(self._conn)
                return change.state(), change.keys()
            finally:
                self._conn.execute("COMMIT")

    def deleting(self) -> set[str]:
        """Ids whose key was destroyed by a delete that may not have removed the file."""
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM deleting")}

    def forget_deleting(self, segment_id: str) -> None:
        """The file of a deleted segment is gone: drop its ``deleting`` mark."""
        with self._lock:
            self._conn.execute("DELETE FROM deleting WHERE id = ?", (segment_id,))

    def checkpoint(self) -> None:
        """Copy the WAL into the main file and truncate it (scrubs deleted keys from it)."""
        with self._lock:
            self._checkpoint()

    def get(self, segment_id: str) -> IndexRow | None:
        """The row of ``segment_id``, or None."""
        with self._lock:
            found = self._conn.execute(
                f"SELECT {_COLUMNS} FROM segments WHERE id = ?", (segment_id,)
            ).fetchone()
        return _row(found) if found else None

    def rows(self) -> list[IndexRow]:
        """All segments, oldest first (ties in insertion order)."""
        with self._lock:
            found = self._conn.execute(
                f"SELECT {_COLUMNS} FROM segments ORDER BY created_at, rowid"
            ).fetchall()
        return [_row(r) for r in found]

    def ids(self) -> set[str]:
        """Ids of all committed segments."""
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT id FROM segments")}

    def _checkpoint(self, attempts: int = 20) -> None:
        # A concurrent reader can hold the WAL open; retry briefly, then leave it to the next
        # checkpoint (the next delete or close) rather than fail a delete that is committed.
        for _ in range(attempts):
            busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.05)


class IndexChange:
    """Reads and writes inside one transaction of ``SegmentIndex.change`` or ``snapshot``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def state(self) -> bytes | None:
        """The authenticated state record (``format.IndexState`` bytes), None before any."""
        row = self._conn.execute("SELECT value FROM vault WHERE key = 'state'").fetchone()
        return bytes(row[0]) if row else None

    def set_state(self, record: bytes) -> None:
        """Store the state record that describes the rows after this transaction."""
        self._conn.execute("INSERT OR REPLACE INTO vault VALUES ('state', ?)", (record,))

    def keys(self) -> list[tuple[str, bytes]]:
        """(id, wrapped key) of every segment: what the state digest covers."""
        found = self._conn.execute("SELECT id, wrapped_key FROM segments").fetchall()
        return [(r[0], bytes(r[1])) for r in found]

    def insert(self, row: IndexRow) -> None:
        """Add a segment."""
        self._conn.execute(
            f"INSERT INTO segments ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
            (row.segment_id, row.created_at, row.stored_size, row.wrapped_key, row.sealed_meta),
        )

    def delete(self, segment_id: str) -> IndexRow | None:
        """Remove a segment and mark it ``deleting`` until its file is gone; returns its
        row, or None if it was not there."""
        found = self._conn.execute(
            f"SELECT {_COLUMNS} FROM segments WHERE id = ?", (segment_id,)
        ).fetchone()
        if found is None:
            return None
        self._conn.execute("DELETE FROM segments WHERE id = ?", (segment_id,))
        self._conn.execute("INSERT OR IGNORE INTO deleting VALUES (?)", (segment_id,))
        return _row(found)


def read_other_index(path: Path, vault_id: bytes) -> dict[str, IndexRow]:
    """Every segment row of another copy of this vault's index (a backup, a sync conflict),
    read without changing it; for ``Vault.adopt``."""
    if not path.is_file():
        raise VaultError(f"{path}: no such index file; give the path of an index.sqlite copy")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        raise _not_an_index(path, exc) from None
    try:
        owner = conn.execute("SELECT value FROM vault WHERE key = 'vault_id'").fetchone()
        found = conn.execute(f"SELECT {_COLUMNS} FROM segments").fetchall()
    except sqlite3.DatabaseError as exc:
        raise _not_an_index(path, exc) from None
    finally:
        conn.close()
    if owner is None or bytes(owner[0]) != vault_id:
        raise VaultError(
            f"{path} is the index of another vault, not of vault {vault_id.hex()}: give a "
            "copy of this vault's own index.sqlite"
        )
    return {r[0]: _row(r) for r in found}


def _not_an_index(path: Path, exc: Exception) -> VaultError:
    return VaultError(
        f"{path}: not a readable LifeVeil index ({exc}); give a copy of this vault's index.sqlite"
    )


def _unreadable(path: Path, exc: Exception) -> VaultIntegrityError:
    return VaultIntegrityError(
        f"{path}: cannot open the segment index ({exc}); it holds every segment key, so no "
        "segment can be decrypted without it: restore it from a backup"
    )


def _row(values: tuple) -> IndexRow:
    segment_id, created_at, stored_size, wrapped_key, sealed_meta = values
    return IndexRow(
        segment_id, float(created_at), int(stored_size), bytes(wrapped_key), bytes(sealed_meta)
    )
