"""The SQLite store's heads, replay nonces and storage summary (a mixin of
:class:`~lifeveil.server.sqlite_store.SQLiteStore`)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import numpy as np

from lifeveil.errors import ShapeError
from lifeveil.server.clock import now_us
from lifeveil.server.heads import LinearHead

_HEAD_SELECT = "SELECT name, classes, coef, intercept, n_train, metrics, space FROM heads"


class SQLiteHeads:
    """Heads per tenant (``heads`` table), replay nonces and the storage audit."""

    z_dim: int
    _conn: sqlite3.Connection
    _lock: threading.RLock
    _nonce_inserts: int
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _query: Callable[[str, Sequence[object]], list[tuple]]

    def put_head(self, tenant_id: int, head: LinearHead) -> None:
        if head.z_dim != self.z_dim:
            raise ShapeError(
                f"head {head.name!r} takes d={head.z_dim}; this store has d={self.z_dim}"
            )
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO heads (tenant_id, name, classes, coef, intercept, "
                "n_train, metrics, created_us, space) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant_id,
                    head.name,
                    json.dumps(list(head.classes)),
                    head.coef.astype("<f4").tobytes(),
                    head.intercept.astype("<f4").tobytes(),
                    head.n_train,
                    json.dumps(head.metrics, sort_keys=True),
                    now_us(),
                    head.space,
                ),
            )

    def get_head(self, tenant_id: int, name: str, *, space: int = 0) -> LinearHead | None:
        rows = self._query(
            _HEAD_SELECT + " WHERE tenant_id = ? AND space = ? AND name = ?",
            (tenant_id, space, name),
        )
        return self._head(rows[0]) if rows else None

    def list_heads(self, tenant_id: int, *, space: int | None = None) -> list[LinearHead]:
        where, params = (
            ("", (tenant_id,)) if space is None else (" AND space = ?", (tenant_id, space))
        )
        rows = self._query(
            _HEAD_SELECT + f" WHERE tenant_id = ?{where} ORDER BY name, space", params
        )
        return [self._head(row) for row in rows]

    def _head(self, row: tuple) -> LinearHead:
        name, classes_json, coef, intercept, n_train, metrics, space = row
        classes = tuple(json.loads(classes_json))
        return LinearHead(
            name=name,
            classes=classes,
            coef=np.frombuffer(coef, dtype="<f4").reshape(len(classes), self.z_dim).copy(),
            intercept=np.frombuffer(intercept, dtype="<f4").copy(),
            n_train=int(n_train),
            metrics=json.loads(metrics),
            space=int(space),
        )

    def remember_nonce(self, principal_id: int, nonce: str, expires_us: int, now_us: int) -> bool:
        with self._transaction() as db:
            self._nonce_inserts += 1
            if self._nonce_inserts % 256 == 0:
                db.execute("DELETE FROM nonces WHERE expires_us < ?", (now_us,))
            cur = db.execute(
                "INSERT INTO nonces (principal_id, nonce, expires_us) VALUES (?, ?, ?) "
                "ON CONFLICT (principal_id, nonce) DO NOTHING",
                (principal_id, nonce, expires_us),
            )
            return cur.rowcount == 1

    def storage_summary(self) -> dict[str, int]:
        largest = 0
        with self._lock:
            tables = [
                r[0]
                for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                columns = [r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")]
                for column in columns:
                    value = self._conn.execute(
                        f"SELECT MAX(LENGTH({column})) FROM {table}"
                    ).fetchone()[0]
                    largest = max(largest, int(value or 0))
            count, each = self._conn.execute(
                "SELECT COUNT(*), MAX(LENGTH(z)) FROM z_records"
            ).fetchone()
        return {"z_records": int(count), "z_bytes_each": int(each or 0), "largest_value": largest}
