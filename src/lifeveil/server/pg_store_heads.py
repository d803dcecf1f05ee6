"""The PostgreSQL store's heads, replay nonces and storage summary (a mixin of
:class:`~lifeveil.server.pg_store.PostgresStore`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lifeveil.errors import ShapeError
from lifeveil.server.clock import now_us
from lifeveil.server.heads import LinearHead
from lifeveil.server.pg_store_pool import ConnectionPool
from lifeveil.server.pg_store_schema import TABLES

_HEAD_SELECT = "SELECT name, classes, coef, intercept, n_train, metrics, space FROM lifeveil_heads"


class PostgresHeads:
    """Heads per tenant (``lifeveil_heads``), replay nonces and the storage audit."""

    z_dim: int
    _pool: ConnectionPool
    _nonce_inserts: int
    _query: Callable[[str, Sequence[object]], list[tuple]]
    _write: Callable[[str, Sequence[object]], Any]

    def put_head(self, tenant_id: int, head: LinearHead) -> None:
        if head.z_dim != self.z_dim:
            raise ShapeError(
                f"head {head.name!r} takes d={head.z_dim}; this store has d={self.z_dim}"
            )
        self._write(
            "INSERT INTO lifeveil_heads (tenant_id, name, classes, coef, intercept, n_train, "
            "metrics, created_us, space) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (tenant_id, space, name) DO UPDATE SET classes = EXCLUDED.classes, "
            "coef = EXCLUDED.coef, intercept = EXCLUDED.intercept, n_train = EXCLUDED.n_train, "
            "metrics = EXCLUDED.metrics, created_us = EXCLUDED.created_us",
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
            _HEAD_SELECT + " WHERE tenant_id = %s AND space = %s AND name = %s",
            (tenant_id, space, name),
        )
        return self._head(rows[0]) if rows else None

    def list_heads(self, tenant_id: int, *, space: int | None = None) -> list[LinearHead]:
        where, params = (
            ("", (tenant_id,)) if space is None else (" AND space = %s", (tenant_id, space))
        )
        rows = self._query(
            _HEAD_SELECT + f' WHERE tenant_id = %s{where} ORDER BY name COLLATE "C", space',
            params,
        )
        return [self._head(row) for row in rows]

    def _head(self, row: tuple) -> LinearHead:
        name, classes_json, coef, intercept, n_train, metrics, space = row
        classes = tuple(json.loads(classes_json))
        return LinearHead(
            name=name,
            classes=classes,
            coef=np.frombuffer(bytes(coef), dtype="<f4").reshape(len(classes), self.z_dim).copy(),
            intercept=np.frombuffer(bytes(intercept), dtype="<f4").copy(),
            n_train=int(n_train),
            metrics=json.loads(metrics),
            space=int(space),
        )

    def remember_nonce(self, principal_id: int, nonce: str, expires_us: int, now_us: int) -> bool:
        self._nonce_inserts += 1
        sweep = self._nonce_inserts % 256 == 0

        def work(conn: Any) -> bool:
            if sweep:
                conn.execute("DELETE FROM lifeveil_nonces WHERE expires_us < %s", (now_us,))
            return (
                conn.execute(
                    "INSERT INTO lifeveil_nonces (principal_id, nonce, expires_us) "
                    "VALUES (%s, %s, %s) ON CONFLICT (principal_id, nonce) DO NOTHING",
                    (principal_id, nonce, expires_us),
                ).rowcount
                == 1
            )

        return self._pool.run(work)

    def storage_summary(self) -> dict[str, int]:
        def work(conn: Any) -> dict[str, int]:
            largest = 0
            for table in TABLES:
                columns = conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                    (table,),
                ).fetchall()
                for (column,) in columns:
                    value = conn.execute(
                        f'SELECT MAX(pg_column_size("{column}")) FROM {table}'
                    ).fetchone()[0]
                    largest = max(largest, int(value or 0))
            count, each = conn.execute(
                "SELECT COUNT(*), MAX(pg_column_size(z)) FROM lifeveil_z_records"
            ).fetchone()
            return {
                "z_records": int(count),
                "z_bytes_each": int(each or 0),
                "largest_value": largest,
            }

        return self._pool.run(work, transaction=False)
