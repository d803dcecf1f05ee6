"""The SQLite store's linear heads (a mixin of :class:`~lifeveil.server.sqlite_store.SQLiteStore`)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import numpy as np

from lifeveil.errors import ShapeError
from lifeveil.server.heads import LinearHead

_HEAD_SELECT = "SELECT name, classes, coef, intercept, n_train, metrics FROM heads"


def _now_us() -> int:
    return time.time_ns() // 1000


class SQLiteHeads:
    """``put_head``/``get_head``/``list_heads`` on the ``heads`` table, per tenant."""

    z_dim: int
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
                "n_train, metrics, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tenant_id,
                    head.name,
                    json.dumps(list(head.classes)),
                    head.coef.astype("<f4").tobytes(),
                    head.intercept.astype("<f4").tobytes(),
                    head.n_train,
                    json.dumps(head.metrics, sort_keys=True),
                    _now_us(),
                ),
            )

    def get_head(self, tenant_id: int, name: str) -> LinearHead | None:
        rows = self._query(_HEAD_SELECT + " WHERE tenant_id = ? AND name = ?", (tenant_id, name))
        return self._head(rows[0]) if rows else None

    def list_heads(self, tenant_id: int) -> list[LinearHead]:
        rows = self._query(_HEAD_SELECT + " WHERE tenant_id = ? ORDER BY name", (tenant_id,))
        return [self._head(row) for row in rows]

    def _head(self, row: tuple) -> LinearHead:
        name, classes_json, coef, intercept, n_train, metrics = row
        classes = tuple(json.loads(classes_json))
        return LinearHead(
            name=name,
            classes=classes,
            coef=np.frombuffer(coef, dtype="<f4").reshape(len(classes), self.z_dim).copy(),
            intercept=np.frombuffer(intercept, dtype="<f4").copy(),
            n_train=int(n_train),
            metrics=json.loads(metrics),
        )
