"""The segment index: one SQLite file (WAL) holding wrapped segment keys and sealed metadata.

Schema (``PRAGMA user_version = 1``)::

    vault(key TEXT PRIMARY KEY, value BLOB)      -- 'vault_id' -> 16 bytes
    segments(id TEXT PRIMARY KEY,                -- 32 lowercase hex chars
             created_at REAL NOT NULL,           -- Unix seconds, in the clear for ordering
             stored_size INTEGER NOT NULL,       -- ciphertext file size in bytes
             wrapped_key BLOB NOT NULL,          -- 60 bytes, see lifeveil.vault.format
             sealed_meta BLOB NOT NULL)          -- AEAD-sealed JSON under the segment key

Only the creation time and the ciphertext size are readable without the master key (both are
visible from file timestamps and sizes anyway); the source name, duration, plaintext size and
SHA-256 are encrypted. ``secure_delete`` makes SQLite overwrite deleted rows with zeros, and
a truncating WAL checkpoint after each delete removes the WAL copies, so a deleted wrapped key
is gone from every file of the vault (flash wear-levelling below the file system is out of
reach of any software; see ``Vault.delete``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
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
"""
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

    def insert(self, row: IndexRow) -> None:
        """Commit a new segment (durable when this returns)."""
        with self._lock:
            self._conn.execute(
                f"INSERT INTO segments ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (row.segment_id, row.created_at, row.stored_size, row.wrapped_key, row.sealed_meta),
            )

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

    def delete(self, segment_id: str) -> bool:
        """Delete a row and scrub it from the database and WAL files; False if absent."""
        with self._lock:
            cursor = self._conn.execute("DELETE FROM segments WHERE id = ?", (segment_id,))
            self._checkpoint()
        return cursor.rowcount > 0

    def _checkpoint(self, attempts: int = 20) -> None:
        # A concurrent reader can hold the WAL open; retry briefly, then leave it to the next
        # checkpoint (the next delete or close) rather than fail a delete that is committed.
        for _ in range(attempts):
            busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.05)


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
