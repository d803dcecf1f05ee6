"""k-NN for the PostgreSQL store: HNSW candidates plus the not yet indexed tail, re-ranked.

A mixin of :class:`~lifeveil.server.pg_store.PostgresStore`: the HNSW index lives on
``lifeveil_z_ann``; z ingested since the last move of the background indexer
(``pg_store_indexer``) wait in ``lifeveil_z_tail`` and are scored exactly. Both are read in one
statement, so a row being moved at that moment is counted once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lifeveil.server.ann_search import rerank
from lifeveil.server.pg_store_indexer import TailIndexer, move_tail_batch, tail_size
from lifeveil.server.pg_store_pool import ConnectionPool
from lifeveil.server.store import NeighborHit
from lifeveil.server.store_spaces_sql import record_filter
from lifeveil.transport.record import NO_SPACE

# Candidates fetched from HNSW (and as many from the tail) per k-NN query before the exact
# re-ranking.
KNN_CANDIDATES_MIN, KNN_CANDIDATES_FACTOR = 100, 4
# k-NN candidates: the HNSW index of the ann table and an exact scan of the tail, read in one
# statement (one snapshot: a row being moved is in exactly one of them), then their records.
_KNN_SQL = """
WITH candidates AS (
    (SELECT r.device_id, r.space, r.seq FROM lifeveil_z_ann r {where}
        ORDER BY r.z <=> %s LIMIT %s)
    UNION ALL
    (SELECT r.device_id, r.space, r.seq FROM lifeveil_z_tail r {where}
        ORDER BY r.z <=> %s LIMIT %s)
)
SELECT p.name, r.seq, r.timestamp_us, r.z, r.device_id FROM candidates c
JOIN lifeveil_z_records r ON r.device_id = c.device_id AND r.space = c.space AND r.seq = c.seq
JOIN lifeveil_principals p ON p.id = r.device_id
"""


class PostgresKnn:
    """k-NN and the HNSW tail, over the store's pool and indexer."""

    z_dim: int
    indexer: TailIndexer
    _pool: ConnectionPool
    _knn_pool: ConnectionPool  # connections at query priority (server/priority.py)
    _query: Callable[..., list[tuple]]

    def _migrated_stored(self, tenant_id: int, space: int, keys: np.ndarray, z: np.ndarray) -> None:
        self.indexer.notify()  # the trigger put the migrated rows in the tail

    # -- the HNSW tail ------------------------------------------------------------------------
    def tail_size(self) -> int:
        """z stored but not yet in the HNSW index (k-NN finds them by an exact scan)."""
        return tail_size(self._pool)

    def wait_indexed(self, timeout_s: float = 600.0) -> bool:
        """Wait until every committed z is in the HNSW index; False on timeout (tests,
        benchmarks; the background indexer must be running, or another server's)."""
        return self.indexer.wait_indexed(timeout_s)

    def index_tail(self, limit: int | None = None) -> int:
        """Move up to ``limit`` tail rows (one batch by default) into HNSW now; returns how
        many moved."""
        return move_tail_batch(self._pool, limit or self.indexer.batch)

    def knn(
        self,
        tenant_id: int,
        query: np.ndarray,
        k: int,
        device_id: int | None = None,
        *,
        space: int = NO_SPACE,
    ) -> list[NeighborHit]:
        """HNSW candidates (``max(100, 4k)``) of this tenant's space (the filter is applied
        during the iterative scan) and as many from an exact scan of the not yet indexed
        tail, re-ranked by exact cosine."""
        if k <= 0:
            return []
        where, params = record_filter(tenant_id, space, device_id, None, None, "%s")
        count = max(KNN_CANDIDATES_MIN, KNN_CANDIDATES_FACTOR * k)
        vector = np.ascontiguousarray(query, dtype=np.float32)
        sql, args = _KNN_SQL.format(where=where), [*params, vector, count, *params, vector, count]
        rows = self._knn_pool.run(
            lambda c: c.execute(sql, args, binary=True).fetchall(), transaction=False
        )
        return rerank(rows, query, k, self.z_dim)  # the exact scan's scores and tie order
