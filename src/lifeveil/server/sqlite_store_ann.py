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
from lifeveil.server.knn_process import KnnProcess
from lifeveil.server.sqlite_vectors import read_records_by_keys, read_tenant_vectors
from lifeveil.server.store import NeighborHit, ZStore
from lifeveil.transport.record import NO_SPACE


class SQLiteAnn(ZStore):
    """``knn`` from :class:`AnnSearch` where it is ready and worth it, else the exact scan."""

    _read_conn: sqlite3.Connection
    _read_lock: threading.Lock
    _ann: AnnSearch | KnnProcess

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
        """Keys ``(n, 2)`` (device_id, seq) and z ``(n, d)`` of every record of a tenant's space
        (``scope`` = (tenant_id, space))."""
        with self._read_lock:
            return read_tenant_vectors(self._read_conn, scope, self.z_dim)

    def records_by_keys(self, scope: Scope, keys: np.ndarray) -> list[tuple]:
        """Rows (name, seq, timestamp_us, z, device_id) of the scope's records in ``keys``."""
        with self._read_lock:
            return read_records_by_keys(self._read_conn, scope, keys)

    def _ann_stored(
        self, tenant_id: int, space: int, stored: Sequence[tuple[int, int, np.ndarray]]
    ) -> None:
        """Tell the index about records just committed: ``(device_id, seq, z)``."""
        if stored:
            keys = np.array([(d, s) for d, s, _ in stored], dtype=np.int64)
            self._ann.on_stored((tenant_id, space), keys, np.stack([z for _, _, z in stored]))
