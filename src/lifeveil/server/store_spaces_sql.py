"""Spaces and migrations in SQL, shared by the SQLite and PostgreSQL stores (a mixin).

The statements are written once, with ``?`` placeholders and ``{table}`` names; each backend
says how to run them (:meth:`SQLSpaces._in_transaction`, ``_query``), how to spell a
placeholder and a table, and how z go in and come out (a BLOB in SQLite, a pgvector
``vector`` in PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from lifeveil.errors import NameTakenError, ShapeError, UnknownNameError
from lifeveil.server.clock import now_us
from lifeveil.server.store_spaces import (
    MIGRATION_FAILED,
    MIGRATION_RUNNING,
    MigrationInfo,
    MigrationRows,
    SpaceInfo,
    SpaceStore,
    checked_tag,
)
from lifeveil.transport.record import NO_SPACE

T = TypeVar("T")

_MIGRATION_COLUMNS = (
    "id, tenant_id, old_space, new_space, old_version, new_version, adapter_sha256, "
    "cursor_device, cursor_seq, done, status, message, started_us, finished_us"
)


class SQLSpaces(SpaceStore):
    """:class:`SpaceStore` over the ``spaces``, ``migrations`` and ``z_records`` tables."""

    #: ``"?"`` (SQLite) or ``"%s"`` (psycopg).
    _PARAM = "?"
    #: Prefix of every table name (``lifeveil_`` in PostgreSQL).
    _TABLE_PREFIX = ""
    _query: Callable[[str, Sequence[object]], list[tuple]]

    # -- what a backend provides ---------------------------------------------------------------
    def _in_transaction(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` in one write transaction."""
        raise NotImplementedError

    def _z_param(self, z: np.ndarray) -> object:
        """One z (float32 ``(d,)``) as the database stores it."""
        raise NotImplementedError

    def _z_array(self, value: object) -> np.ndarray:
        """One stored z value as float32 ``(d,)``."""
        raise NotImplementedError

    def _migrated_stored(self, tenant_id: int, space: int, keys: np.ndarray, z: np.ndarray) -> None:
        """Hook: rows a migration just committed (the SQLite store feeds its k-NN index)."""

    def _sql(self, text: str) -> str:
        tables = {name: self._TABLE_PREFIX + name for name in ("spaces", "migrations", "z_records")}
        return text.format(**tables).replace("?", self._PARAM)

    # -- spaces ------------------------------------------------------------------------------
    def register_space(self, tenant_id: int, version: str, z_dim: int) -> SpaceInfo:
        tag = checked_tag(version)
        if int(z_dim) != self.z_dim:
            raise ShapeError(
                f"version {version} makes z of dimension {z_dim} but this server stores "
                f"{self.z_dim}; a server stores one z_dim: run another server (a new data dir) "
                "for this privatizer"
            )

        def work(db: Any) -> str | None:
            db.execute(
                self._sql(
                    "INSERT INTO {spaces} (tenant_id, tag, version, z_dim, registered_us, "
                    "is_default) VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT DO NOTHING"
                ),
                (tenant_id, tag, version, self.z_dim, now_us()),
            )
            row = db.execute(
                self._sql("SELECT version FROM {spaces} WHERE tenant_id = ? AND tag = ?"),
                (tenant_id, tag),
            ).fetchone()
            return row[0] if row else None

        holder = self._in_transaction(work)
        if holder != version:
            raise NameTakenError(
                f"version {version} has wire tag {tag}, already taken by version {holder} in "
                "this tenant; retrain or re-export the new privatizer (any change of its "
                "weights gives a new id) or use another tenant"
            )
        return self.space_of(tenant_id, version)

    def list_spaces(self, tenant_id: int) -> list[SpaceInfo]:
        rows = self._query(
            self._sql(
                "SELECT s.version, s.tag, s.z_dim, s.registered_us, (SELECT COUNT(*) FROM "
                "{z_records} r WHERE r.tenant_id = s.tenant_id AND r.space = s.tag) "
                "FROM {spaces} s WHERE s.tenant_id = ? ORDER BY s.registered_us, s.tag"
            ),
            (tenant_id,),
        )
        default = self.default_space(tenant_id)
        spaces = [
            SpaceInfo(v, int(t), int(d), int(r), int(t) == default, int(n))
            for v, t, d, r, n in rows
        ]
        undeclared = self._query(
            self._sql("SELECT COUNT(*) FROM {z_records} WHERE tenant_id = ? AND space = ?"),
            (tenant_id, NO_SPACE),
        )[0][0]
        if undeclared or not spaces:
            spaces.insert(
                0, SpaceInfo(None, NO_SPACE, self.z_dim, 0, default == NO_SPACE, int(undeclared))
            )
        return spaces

    def set_default_space(self, tenant_id: int, version: str) -> SpaceInfo:
        tag = self.space_of(tenant_id, version).tag
        self._in_transaction(
            lambda db: db.execute(
                self._sql(
                    "UPDATE {spaces} SET is_default = CASE WHEN tag = ? THEN 1 ELSE 0 END "
                    "WHERE tenant_id = ?"
                ),
                (tag, tenant_id),
            )
        )
        return self.space_of(tenant_id, version)

    def default_space(self, tenant_id: int) -> int:
        rows = self._query(
            self._sql(
                "SELECT tag FROM {spaces} WHERE tenant_id = ? "
                "ORDER BY is_default DESC, registered_us DESC, tag DESC LIMIT 1"
            ),
            (tenant_id,),
        )
        return int(rows[0][0]) if rows else NO_SPACE

    # -- migrations ---------------------------------------------------------------------------
    def begin_migration(
        self, tenant_id: int, old_version: str, new_version: str, sha256: str, adapter: bytes
    ) -> MigrationInfo:
        old_tag, new_tag = checked_tag(old_version), checked_tag(new_version)

        def work(db: Any) -> None:
            db.execute(
                self._sql(
                    "INSERT INTO {migrations} (tenant_id, old_space, new_space, old_version, "
                    "new_version, adapter_sha256, adapter, cursor_device, cursor_seq, done, "
                    "status, message, started_us) VALUES (?, ?, ?, ?, ?, ?, ?, -1, -1, 0, ?, "
                    "'', ?) ON CONFLICT DO NOTHING"
                ),
                (
                    tenant_id,
                    old_tag,
                    new_tag,
                    old_version,
                    new_version,
                    sha256,
                    adapter,
                    MIGRATION_RUNNING,
                    now_us(),
                ),
            )
            db.execute(  # a failed run is retried when started again
                self._sql(
                    "UPDATE {migrations} SET status = ?, message = '', finished_us = NULL "
                    "WHERE tenant_id = ? AND adapter_sha256 = ? AND status = ?"
                ),
                (MIGRATION_RUNNING, tenant_id, sha256, MIGRATION_FAILED),
            )

        self._in_transaction(work)
        rows = self._query(
            self._sql(
                f"SELECT {_MIGRATION_COLUMNS} FROM {{migrations}} "
                "WHERE tenant_id = ? AND adapter_sha256 = ?"
            ),
            (tenant_id, sha256),
        )
        return _migration(rows[0])

    def migration_rows(
        self, tenant_id: int, space: int, after: tuple[int, int], limit: int
    ) -> MigrationRows:
        device, seq = after
        rows = self._query(
            self._sql(
                "SELECT device_id, seq, timestamp_us, z FROM {z_records} "
                "WHERE tenant_id = ? AND space = ? AND (device_id > ? OR (device_id = ? AND "
                "seq > ?)) ORDER BY device_id, seq LIMIT ?"
            ),
            (tenant_id, space, device, device, seq, int(limit)),
        )
        z = np.zeros((len(rows), self.z_dim), dtype=np.float32)
        for i, row in enumerate(rows):
            z[i] = self._z_array(row[3])
        return MigrationRows(
            keys=np.array([(r[0], r[1]) for r in rows], dtype=np.int64).reshape(-1, 2),
            timestamps_us=np.array([r[2] for r in rows], dtype=np.int64),
            z=z,
        )

    def write_migrated(self, migration: MigrationInfo, rows: MigrationRows, z: np.ndarray) -> int:
        if z.shape != (len(rows), self.z_dim):
            raise ShapeError(
                f"migrated z has shape {z.shape}; expected ({len(rows)}, {self.z_dim})"
            )
        if not len(rows):
            return 0
        now = now_us()
        params = [
            (int(d), migration.new_tag, int(s), migration.tenant_id, int(t), self._z_param(v), now)
            + (migration.id,)
            for (d, s), t, v in zip(rows.keys.tolist(), rows.timestamps_us, z, strict=True)
        ]
        last_device, last_seq = (int(v) for v in rows.keys[-1])

        def work(db: Any) -> int:
            cur = db.cursor()
            cur.executemany(
                self._sql(
                    "INSERT INTO {z_records} (device_id, space, seq, tenant_id, timestamp_us, z, "
                    "received_us, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                params,
            )
            written = max(int(cur.rowcount), 0)
            db.execute(
                self._sql(
                    "UPDATE {migrations} SET cursor_device = ?, cursor_seq = ?, "
                    "done = done + ? WHERE id = ?"
                ),
                (last_device, last_seq, written, migration.id),
            )
            return written

        written = self._in_transaction(work)
        self._migrated_stored(migration.tenant_id, migration.new_tag, rows.keys, z)
        return written

    def end_migration(self, migration_id: int, status: str, message: str = "") -> None:
        self._in_transaction(
            lambda db: db.execute(
                self._sql(
                    "UPDATE {migrations} SET status = ?, message = ?, finished_us = ? WHERE id = ?"
                ),
                (status, message[:500], now_us(), migration_id),
            )
        )

    def list_migrations(self, tenant_id: int | None = None) -> list[MigrationInfo]:
        where, params = (
            ("WHERE tenant_id = ? ", (tenant_id,)) if tenant_id is not None else ("", ())
        )
        rows = self._query(
            self._sql(f"SELECT {_MIGRATION_COLUMNS} FROM {{migrations}} {where}ORDER BY id DESC"),
            params,
        )
        return [_migration(row) for row in rows]

    def migration_adapter(self, migration_id: int) -> bytes:
        rows = self._query(
            self._sql("SELECT adapter FROM {migrations} WHERE id = ?"), (migration_id,)
        )
        if not rows:
            raise UnknownNameError(f"no migration with id {migration_id}")
        return bytes(rows[0][0])


def _migration(row: tuple) -> MigrationInfo:
    (mid, tenant, old_tag, new_tag, old_v, new_v, sha, c_dev, c_seq, done, status, msg) = row[:12]
    return MigrationInfo(
        id=int(mid),
        tenant_id=int(tenant),
        old_tag=int(old_tag),
        new_tag=int(new_tag),
        old_version=old_v,
        new_version=new_v,
        adapter_sha256=sha,
        cursor=(int(c_dev), int(c_seq)),
        done=int(done),
        status=status,
        message=msg,
        started_us=int(row[12]),
        finished_us=None if row[13] is None else int(row[13]),
    )


def record_filter(
    tenant_id: int,
    space: int,
    device_id: int | None,
    t_start_us: int | None,
    t_end_us: int | None,
    param: str,
) -> tuple[str, list[object]]:
    """``WHERE`` clause over records ``r`` and its parameters (``param``: the backend's
    placeholder): always the tenant and space, then the optional filters."""
    clauses, params = [f"r.tenant_id = {param}", f"r.space = {param}"], [tenant_id, space]
    for clause, value in (
        (f"r.device_id = {param}", device_id),
        (f"r.timestamp_us >= {param}", t_start_us),
        (f"r.timestamp_us <= {param}", t_end_us),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return "WHERE " + " AND ".join(clauses), params
