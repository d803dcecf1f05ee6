"""The PostgreSQL store: pgvector HNSW k-NN, for more z than one SQLite file serves well.

Chosen with ``store = "postgresql"`` and ``store_dsn`` in ``server.toml`` (``lifeveil server
init --store postgresql://USER@HOST/DB``). The schema is created and migrated on start
(``pg_store_schema``). Every read and write names the tenant in its ``WHERE`` clause.

Ingest appends z to ``lifeveil_z_records`` (the source of truth) and, by a trigger in the same
transaction, to the unindexed ``lifeveil_z_tail``; a background thread (``pg_store_indexer``)
moves tail rows into the HNSW-indexed ``lifeveil_z_ann``, so an insert never waits for the
graph. k-NN takes candidates from the HNSW index (iterative scan, so a tenant filter still
yields k) and from an exact scan of the tail, in one statement, and re-ranks them exactly,
the way the brute-force default scores them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from lifeveil.errors import (
    InputError,
    LifeVeilError,
    ShapeError,
    UnknownNameError,
)
from lifeveil.server.clock import now_us
from lifeveil.server.config import ServerConfig
from lifeveil.server.pg_store_heads import PostgresHeads
from lifeveil.server.pg_store_indexer import TailIndexer
from lifeveil.server.pg_store_ingest import create_staging, put_group
from lifeveil.server.pg_store_knn import PostgresKnn
from lifeveil.server.pg_store_pool import (
    ConnectionPool,
    binary_z_loader,
    import_psycopg,
)
from lifeveil.server.pg_store_principals import PostgresPrincipals
from lifeveil.server.pg_store_schema import (
    META_TABLE,
    MIGRATION_LOCK_KEY,
    SCHEMA_VERSION,
    migration_sql,
)
from lifeveil.server.priority import (
    BACKGROUND_NICE,
    POSTGRES_QUERY_NICE,
    lower_backend_priority,
    no_parallel_workers,
)
from lifeveil.server.store import (
    Principal,
    PutResult,
    RecordBatch,
    RecordsOf,
    ZStore,
    register_store,
    stored_z,
)
from lifeveil.server.store_spaces_sql import SQLSpaces, record_filter
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import NO_SPACE, ZRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

_RECORD_SELECT = (
    "SELECT p.name, r.seq, r.timestamp_us, r.z, r.device_id FROM lifeveil_z_records r "
    "JOIN lifeveil_principals p ON p.id = r.device_id "
)


class PostgresStore(PostgresKnn, PostgresPrincipals, PostgresHeads, SQLSpaces, ZStore):
    """:class:`ZStore` in a PostgreSQL database with the pgvector extension.

    Args:
        dsn: libpq connection string or ``postgresql://`` URL; a password may be left out
            and given by ``PGPASSWORD`` or ``~/.pgpass``.
        z_dim: dimension of stored z; must match the dimension the database was created with.
        pool_size: most connections held open at once.
        background_indexer: run the thread moving ingested z into HNSW (off only in tests
            that move them by hand with :meth:`index_tail`; k-NN finds tail rows either way).
    """

    _PARAM, _TABLE_PREFIX = "%s", "lifeveil_"

    def __init__(
        self, dsn: str, z_dim: int, pool_size: int = 4, *, background_indexer: bool = True
    ) -> None:
        self.z_dim = z_dim
        self._psycopg = import_psycopg()
        self._nonce_inserts = 0
        self._pool = ConnectionPool(dsn, pool_size, configure=self._configure_main)
        self._pool.run(self._migrate, transaction=False)
        # The indexer's own connection, its PostgreSQL process at background priority where
        # that is ours to set (server/priority.py): ingest and queries first.
        self._index_pool = ConnectionPool(dsn, 2, configure=self._configure_indexer)
        # k-NN (the costly query: it scans the tail exactly) on connections whose server
        # processes run below ingest (POSTGRES_QUERY_NICE says why so far below).
        self._knn_pool = ConnectionPool(dsn, 2, configure=self._configure_knn)
        self.indexer = TailIndexer(self._index_pool)
        if background_indexer:
            self.indexer.start()

    @classmethod
    def from_config(cls, config: ServerConfig) -> PostgresStore:
        """Open ``config.store_dsn`` with the configured dimension."""
        if not config.store_dsn:
            raise InputError(
                "store = 'postgresql' needs store_dsn in server.toml, e.g. "
                "`lifeveil server init --store postgresql://USER@HOST:5432/DB`"
            )
        return cls(config.store_dsn, config.z_dim)

    # -- connections and schema ---------------------------------------------------------------
    def _configure_main(self, conn: Any) -> None:
        self._configure(conn)
        create_staging(conn, self.z_dim)  # ingest's, once per connection (pg_store_ingest)

    def _configure_indexer(self, conn: Any) -> None:
        self._configure(conn)
        no_parallel_workers(conn)
        lower_backend_priority(conn, BACKGROUND_NICE)

    def _configure_knn(self, conn: Any) -> None:
        self._configure(conn)
        no_parallel_workers(conn)
        lower_backend_priority(conn, POSTGRES_QUERY_NICE)

    def _configure(self, conn: Any) -> None:
        from pgvector.psycopg import register_vector

        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        register_vector(conn)
        oid = self._psycopg.types.TypeInfo.fetch(conn, "vector").oid
        conn.adapters.register_loader(oid, binary_z_loader(self._psycopg))
        conn.execute("SET hnsw.ef_search = 200")
        try:  # pgvector >= 0.8: keep scanning until k rows pass the tenant filter, best first
            conn.execute("SET hnsw.iterative_scan = strict_order")
        except self._psycopg.Error:
            log.warning("pgvector < 0.8: a k-NN query of a small tenant may return fewer than k")

    def _migrate(self, conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            conn.execute(META_TABLE)
            meta = dict(conn.execute("SELECT key, value FROM lifeveil_meta").fetchall())
            version = int(meta.get("schema_version", 0))
            if version > SCHEMA_VERSION:
                raise InputError(
                    f"the database has LifeVeil schema version {version}; this LifeVeil reads "
                    f"up to {SCHEMA_VERSION}; use the matching LifeVeil version"
                )
            if "z_dim" in meta and int(meta["z_dim"]) != self.z_dim:
                raise ShapeError(
                    f"the database stores z of dimension {meta['z_dim']} but the configuration "
                    f"says {self.z_dim}; fix z_dim in server.toml or use another database"
                )
            for step in range(version, SCHEMA_VERSION):
                conn.execute(migration_sql(step, self.z_dim))
            conn.execute(
                "INSERT INTO lifeveil_meta (key, value) VALUES ('schema_version', %s), "
                "('z_dim', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(SCHEMA_VERSION), str(self.z_dim)),
            )

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Rows of one read (binary results: z arrive as float32 arrays, not text)."""
        return self._pool.run(
            lambda c: c.execute(sql, params, binary=True).fetchall(), transaction=False
        )

    def _write(self, sql: str, params: Sequence[object] = ()) -> Any:
        """Run one statement in a transaction; returns its rows (RETURNING) or rowcount."""

        def work(conn: Any) -> Any:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else cur.rowcount

        return self._pool.run(work)

    # SQLSpaces on PostgreSQL: z are pgvector vectors (numpy arrays both ways).
    def _in_transaction(self, work: Callable[[Any], T]) -> T:
        return self._pool.run(work)

    def _z_param(self, z: np.ndarray) -> object:
        return np.ascontiguousarray(z, dtype=np.float32)

    def _z_array(self, value: object) -> np.ndarray:
        return np.asarray(value, dtype=np.float32)

    # -- records --------------------------------------------------------------------------
    def put_records(self, device: Principal, records: Sequence[ZRecord]) -> list[AckStatus]:
        [result] = self.put_records_many([(device, records)])
        if isinstance(result, Exception):
            raise result
        return result

    def put_records_many(self, batches: Sequence[RecordsOf]) -> list[PutResult]:
        """Several devices' records in one transaction (a group commit, ``pg_store_ingest``)."""
        prepared = [self._prepare(device, records) for device, records in batches]
        results = self._pool.run(lambda conn: put_group(conn, batches, prepared, now_us()))
        if any(isinstance(r, list) and AckStatus.STORED in r for r in results):
            self.indexer.notify()
        return results

    def _prepare(
        self, device: Principal, records: Sequence[ZRecord]
    ) -> list[np.ndarray] | LifeVeilError:
        if device.kind != "device" or device.tenant_id is None:
            return InputError(f"only devices store records, not a {device.kind}")
        try:
            return [stored_z(r.z, self.z_dim) for r in records]
        except ShapeError as exc:
            return exc

    def count_records(
        self, tenant_id: int, device_id: int | None = None, *, space: int = NO_SPACE
    ) -> int:
        sql = "SELECT COUNT(*) FROM lifeveil_z_records WHERE tenant_id = %s AND space = %s"
        params: list[object] = [tenant_id, space]
        if device_id is not None:
            sql, params = sql + " AND device_id = %s", [*params, device_id]
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
        where, params = record_filter(tenant_id, space, device_id, t_start_us, t_end_us, "%s")
        sql = _RECORD_SELECT + where + " ORDER BY r.timestamp_us, r.device_id, r.seq LIMIT %s"
        return self._batch(self._query(sql, [*params, limit]))

    def get_records(
        self, tenant_id: int, keys: Sequence[tuple[str, int]], *, space: int = NO_SPACE
    ) -> RecordBatch:
        def work(conn: Any) -> list[tuple]:
            rows = []
            for device, seq in keys:
                row = conn.execute(
                    _RECORD_SELECT + "WHERE r.tenant_id = %s AND p.name = %s "
                    "AND p.kind = 'device' AND r.space = %s AND r.seq = %s",
                    (tenant_id, device, space, int(seq)),
                    binary=True,
                ).fetchone()
                if row is None:
                    raise UnknownNameError(
                        f"no stored record (device={device!r}, seq={seq}) in space {space}"
                    )
                rows.append(row)
            return rows

        return self._batch(self._pool.run(work, transaction=False))

    def _batch(self, rows: list[tuple]) -> RecordBatch:
        z = np.zeros((len(rows), self.z_dim), dtype=np.float32)
        for i, row in enumerate(rows):
            z[i] = row[3]
        return RecordBatch(
            devices=[r[0] for r in rows],
            seqs=np.array([r[1] for r in rows], dtype=np.int64),
            timestamps_us=np.array([r[2] for r in rows], dtype=np.int64),
            z=z,
        )

    # -- heads and replay -----------------------------------------------------------------
    def close(self) -> None:
        self.indexer.stop()
        self._pool.close()  # a batch in progress finishes; no new one starts
        self._index_pool.close()
        self._knn_pool.close()
        self.indexer.close()


register_store(
    "postgresql",
    PostgresStore.from_config,
    "PostgreSQL with pgvector (HNSW k-NN); needs store_dsn and the postgres extra",
)
