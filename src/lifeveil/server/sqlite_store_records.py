"""The SQLite store's z records, by representation space (a mixin of
:class:`~lifeveil.server.sqlite_store.SQLiteStore`), and its spaces and migrations
(:class:`~lifeveil.server.store_spaces_sql.SQLSpaces` run on SQLite)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import numpy as np

from lifeveil.errors import AuthError, InputError, ShapeError, UnknownNameError
from lifeveil.server.clock import now_us
from lifeveil.server.store import Principal, PutResult, RecordBatch, RecordsOf, stored_z
from lifeveil.server.store_spaces_sql import SQLSpaces, record_filter
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import NO_SPACE, ZRecord

T = TypeVar("T")
ACTIVE_PRINCIPAL = "p.revoked = 0 AND (p.expires_us IS NULL OR p.expires_us > ?)"
_RECORD_SELECT = (
    "SELECT p.name, r.seq, r.timestamp_us, r.z FROM z_records r "
    "JOIN principals p ON p.id = r.device_id "
)

#: What ``put_records_many`` hands the k-NN index: (tenant_id, space, device_id, seq, z).
Stored = tuple[int, int, int, int, np.ndarray]


class SQLiteRecords(SQLSpaces):
    """Idempotent ingest per ``(device, space, seq)`` and reads within one space."""

    z_dim: int
    _read_conn: sqlite3.Connection
    _read_lock: threading.Lock
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def _ann_stored(self, tenant_id: int, space: int, stored: Sequence[tuple]) -> None:
        raise NotImplementedError

    # -- SQLSpaces on SQLite ---------------------------------------------------------------------
    def _in_transaction(self, work: Callable[[Any], T]) -> T:
        with self._transaction() as db:
            return work(db)

    def _z_param(self, z: np.ndarray) -> object:
        return np.ascontiguousarray(z, dtype="<f4").tobytes()

    def _z_array(self, value: object) -> np.ndarray:
        assert isinstance(value, bytes)
        return np.frombuffer(value, dtype="<f4")

    def _migrated_stored(self, tenant_id: int, space: int, keys: np.ndarray, z: np.ndarray) -> None:
        self._ann_stored(
            tenant_id, space, [(int(d), int(s), v) for (d, s), v in zip(keys, z, strict=True)]
        )

    # -- ingest ---------------------------------------------------------------------------------
    def put_records(self, device: Principal, records: Sequence[ZRecord]) -> list[AckStatus]:
        [result] = self.put_records_many([(device, records)])
        if isinstance(result, Exception):
            raise result
        return result

    def put_records_many(self, batches: Sequence[RecordsOf]) -> list[PutResult]:
        """Several devices' records in one transaction (one fsync): a group commit."""
        now = now_us()
        results: list[PutResult] = []
        stored: list[Stored] = []
        with self._transaction() as db:
            for device, records in batches:
                results.append(self._put_device(db, device, records, now, stored))
        for scope in {s[:2] for s in stored}:
            self._ann_stored(*scope, [s[2:] for s in stored if s[:2] == scope])
        return results

    def _put_device(
        self,
        db: sqlite3.Connection,
        device: Principal,
        records: Sequence[ZRecord],
        now: int,
        stored: list[Stored],
    ) -> PutResult:
        if device.kind != "device" or device.tenant_id is None:
            return InputError(f"only devices store records, not a {device.kind}")
        try:
            blobs = [stored_z(record.z, self.z_dim).tobytes() for record in records]
        except ShapeError as exc:
            return exc
        active = db.execute(
            "SELECT 1 FROM principals p WHERE p.id = ? AND " + ACTIVE_PRINCIPAL, (device.id, now)
        ).fetchone()
        if not active:
            return AuthError(
                f"device {device.name!r} was revoked or its token expired; nothing stored"
            )
        known = _known_spaces(db, device.tenant_id)
        statuses = []
        for record, blob in zip(records, blobs, strict=True):
            if int(record.space) not in known:
                statuses.append(AckStatus.UNKNOWN_SPACE)
                continue
            statuses.append(self._put_one(db, device, record, blob, now))
            if statuses[-1] is AckStatus.STORED:
                key = (device.tenant_id, int(record.space), device.id, int(record.seq))
                stored.append((*key, record.z))
        db.execute("UPDATE principals SET last_seen_us = ? WHERE id = ?", (now, device.id))
        return statuses

    def _put_one(
        self, db: sqlite3.Connection, device: Principal, record: ZRecord, blob: bytes, now: int
    ) -> AckStatus:
        key = (device.id, int(record.space), int(record.seq))
        cur = db.execute(
            "INSERT INTO z_records (device_id, space, seq, tenant_id, timestamp_us, z, "
            "received_us) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (device_id, space, seq) DO NOTHING",
            (*key, device.tenant_id, int(record.timestamp_us), blob, now),
        )
        if cur.rowcount == 1:
            return AckStatus.STORED
        existing = db.execute(
            "SELECT timestamp_us, z FROM z_records WHERE device_id = ? AND space = ? AND seq = ?",
            key,
        ).fetchone()
        same = existing == (int(record.timestamp_us), blob)
        return AckStatus.DUPLICATE if same else AckStatus.CONFLICT

    # -- reads ----------------------------------------------------------------------------------
    def count_records(
        self, tenant_id: int, device_id: int | None = None, *, space: int = NO_SPACE
    ) -> int:
        sql = "SELECT COUNT(*) FROM z_records WHERE tenant_id = ? AND space = ?"
        params: list[object] = [tenant_id, space]
        if device_id is not None:
            sql, params = sql + " AND device_id = ?", [*params, device_id]
        return int(self._query(sql, params)[0][0])

    def load_records(
        self,
        tenant_id: int,
        *,
        device_id: int | None = None,
        t_start_us: int | None = None,
        t_end_us: int | None = None,
        limit: int | None = None,
        space: int = NO_SPACE,
    ) -> RecordBatch:
        where, params = record_filter(tenant_id, space, device_id, t_start_us, t_end_us, "?")
        sql = _RECORD_SELECT + where + " ORDER BY r.timestamp_us, r.device_id, r.seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._batch(self._query(sql, params))

    def get_records(
        self, tenant_id: int, keys: Sequence[tuple[str, int]], *, space: int = NO_SPACE
    ) -> RecordBatch:
        rows = []
        with self._read_lock:
            for device, seq in keys:
                row = self._read_conn.execute(
                    _RECORD_SELECT + "WHERE r.tenant_id = ? AND p.name = ? AND p.kind = 'device' "
                    "AND r.space = ? AND r.seq = ?",
                    (tenant_id, device, space, int(seq)),
                ).fetchone()
                if row is None:
                    raise UnknownNameError(
                        f"no stored record (device={device!r}, seq={seq}) in space {space}"
                    )
                rows.append(row)
        return self._batch(rows)

    def _batch(self, rows: list[tuple]) -> RecordBatch:
        z = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").astype(np.float32)
        return RecordBatch(
            devices=[r[0] for r in rows],
            seqs=np.array([r[1] for r in rows], dtype=np.int64),
            timestamps_us=np.array([r[2] for r in rows], dtype=np.int64),
            z=z.reshape(len(rows), self.z_dim),
        )


def _known_spaces(db: sqlite3.Connection, tenant_id: int) -> set[int]:
    """Tags a device of this tenant may upload z of: its registered spaces, and 0."""
    rows = db.execute("SELECT tag FROM spaces WHERE tenant_id = ?", (tenant_id,)).fetchall()
    return {NO_SPACE, *(int(r[0]) for r in rows)}
