"""k-NN for the SQLite store through HNSW indexes per tenant and representation space (a
mixin of ``SQLiteStore``).

The indexes live in memory and in ``lifeveil.db.ann/`` beside the database; see
:mod:`lifeveil.server.ann_search`. What they return is re-ranked on z read here, inside the
tenant and space, so answers equal the exact scan's up to recall and never mix spaces.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

import numpy as np

from lifeveil.server.ann_search import AnnSearch, Scope
from lifeveil.server.store import NeighborHit, ZStore
from lifeveil.transport.record import NO_SPACE

_BY_KEY = (
    "SELECT p.name, r.seq, r.timestamp_us, r.z, r.device_id FROM z_records r "
    "JOIN principals p ON p.id = r.device_id "
    "WHERE r.device_id = ? AND r.space = ? AND r.seq = ? AND r.tenant_id = ?"
)


class SQLiteAnn(ZStore):
    """``knn`` from :class:`AnnSearch` where it is ready and worth it, else the exact scan."""

    _read_conn: sqlite3.Connection
    _read_lock: threading.Lock
    _ann: AnnSearch

    def knn(
        self,
        tenant_id: int,
        query: np.ndarray,
        k: int,
        device_id: int | None = None,
        *,
        space: int = NO_SPACE,
    ) -> list[NeighborHit]:
        hits = self._ann.knn((tenant_id, space), query, k, device_id)
        if hits is not None:
            return hits
        return super().knn(tenant_id, query, k, device_id, space=space)

    def prepare_knn(
        self, tenant_id: int, timeout_s: float = 3600.0, *, space: int = NO_SPACE
    ) -> None:
        if self._ann.enabled:
            self._ann.wait_ready((tenant_id, space), timeout_s)
            self._ann.wait_idle()

    def tenant_vectors(self, scope: Scope) -> tuple[np.ndarray, np.ndarray]:
        """Keys ``(n, 2)`` (device_id, seq) and z ``(n, d)`` of every record of a tenant's
        space (``scope`` = (tenant_id, space))."""
        with self._read_lock:
            rows = self._read_conn.execute(
                "SELECT device_id, seq, z FROM z_records WHERE tenant_id = ? AND space = ?", scope
            ).fetchall()
        keys = np.array([(r[0], r[1]) for r in rows], dtype=np.int64).reshape(-1, 2)
        z = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").astype(np.float32)
        return keys, z.reshape(len(rows), self.z_dim)

    def records_by_keys(self, scope: Scope, keys: np.ndarray) -> list[tuple]:
        """Rows (name, seq, timestamp_us, z, device_id) of the scope's records in ``keys``.

        One primary-key lookup per key: far faster in SQLite than ``IN (VALUES ...)``.
        """
        tenant_id, space = scope
        rows: list[tuple] = []
        with self._read_lock:
            for device_id, seq in keys.tolist():
                row = self._read_conn.execute(
                    _BY_KEY, (device_id, space, seq, tenant_id)
                ).fetchone()
                if row is not None:
                    rows.append(row)
        return [(n, s, t, np.frombuffer(z, dtype="<f4"), d) for n, s, t, z, d in rows]

    def _ann_stored(
        self, tenant_id: int, space: int, stored: Sequence[tuple[int, int, np.ndarray]]
    ) -> None:
        """Tell the index about records just committed: ``(device_id, seq, z)``."""
        if stored:
            keys = np.array([(d, s) for d, s, _ in stored], dtype=np.int64)
            self._ann.on_stored((tenant_id, space), keys, np.stack([z for _, _, z in stored]))
