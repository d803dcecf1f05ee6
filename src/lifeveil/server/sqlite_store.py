"""The embedded default store: one SQLite file in WAL mode.

WAL lets the CLI (``add-tenant``, ``train-head``...) read and write while the server runs.
One connection serialised by a lock is plenty for a home server; ``synchronous=FULL`` (the
default) means an ack is only sent once the record would survive a power cut.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from lifeveil.errors import InputError, NameTakenError, UnknownNameError
from lifeveil.io import private_dir, private_file
from lifeveil.server.ann_search import AnnSearch
from lifeveil.server.clock import now_us
from lifeveil.server.config import ServerConfig
from lifeveil.server.knn_process import KnnProcess
from lifeveil.server.sqlite_store_ann import SQLiteAnn
from lifeveil.server.sqlite_store_heads import SQLiteHeads
from lifeveil.server.sqlite_store_records import ACTIVE_PRINCIPAL as _ACTIVE
from lifeveil.server.sqlite_store_records import SQLiteRecords
from lifeveil.server.sqlite_store_schema import (
    AUDIT_SCHEMA,
    MIGRATE_1_TO_2,
    MIGRATE_2_TO_3,
    SCHEMA,
    check_meta,
    stored_version,
)
from lifeveil.server.store import (
    AuditEntry,
    DeviceInfo,
    Principal,
    PrincipalKind,
    Tenant,
    TokenInfo,
    ZStore,
    principal_scopes,
    register_store,
)

_PRINCIPAL_SELECT = (
    "SELECT p.id, p.kind, p.name, p.tenant_id, t.name, p.scopes FROM principals p "
    "LEFT JOIN tenants t ON t.id = p.tenant_id "
)


class SQLiteStore(SQLiteHeads, SQLiteAnn, SQLiteRecords, ZStore):
    """:class:`ZStore` in one SQLite database file (WAL journal).

    Args:
        path: database file; created with its folder if missing.
        z_dim: dimension of stored z; must match the dimension the file was created with.
        synchronous: SQLite ``synchronous`` pragma (``FULL``, ``NORMAL`` or ``EXTRA``).
        ann_min_records: tenants with at least this many records get k-NN from an HNSW index
            kept in ``PATH.ann/`` (exact re-ranking); smaller ones, or all with 0, an exact
            scan.
        knn_process: keep the k-NN indexes in a worker process
            (:class:`~lifeveil.server.knn_process.KnnProcess`) instead of this one.
    """

    def __init__(
        self,
        path: str | Path,
        z_dim: int,
        synchronous: str = "FULL",
        ann_min_records: int = 2_000,
        knn_process: bool = False,
    ) -> None:
        self.path = Path(path)
        self.z_dim = z_dim
        folder = Path(f"{self.path}.ann")
        self._ann = (
            KnnProcess(self.path, folder, z_dim, ann_min_records)
            if knn_process
            else AnnSearch(self, folder, z_dim, ann_min_records)
        )
        private_dir(self.path.parent)
        private_file(self.path)  # SQLite gives -wal and -shm the database file's mode
        self._lock = threading.RLock()
        self._nonce_inserts = 0
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._setup(synchronous)
            # Reads (queries, auth) use their own connection: under WAL they never wait for a
            # write transaction in progress, so ingest and queries do not stall each other.
            self._read_conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._read_conn.execute("PRAGMA busy_timeout=10000")
            self._read_lock = threading.Lock()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: cannot open as a LifeVeil database ({exc})") from exc

    @classmethod
    def from_config(cls, config: ServerConfig) -> SQLiteStore:
        """Open ``config.db_path`` with the configured dimension and durability."""
        return cls(
            config.db_path,
            config.z_dim,
            config.sqlite_synchronous,
            config.ann_min_records,
            knn_process=config.knn_process,
        )

    def _setup(self, synchronous: str) -> None:
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise InputError(f"{self.path}: SQLite refused WAL mode (got {mode}); use a local disk")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            version = stored_version(self._conn)
            for old, script in ((1, MIGRATE_1_TO_2), (2, MIGRATE_2_TO_3)):
                if version is not None and version <= old:
                    self._conn.executescript("BEGIN IMMEDIATE;\n" + script + "COMMIT;")
            self._conn.executescript("BEGIN IMMEDIATE;\n" + SCHEMA + AUDIT_SCHEMA + "\nCOMMIT;")
        with self._transaction() as db:
            check_meta(db, self.path, self.z_dim)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        """Rows of one read, on the read connection (sees every committed write)."""
        with self._read_lock:
            return self._read_conn.execute(sql, params).fetchall()

    # -- tenants and principals ---------------------------------------------------------
    def create_tenant(self, name: str) -> Tenant:
        try:
            with self._transaction() as db:
                cur = db.execute(
                    "INSERT INTO tenants (name, created_us) VALUES (?, ?)", (name, now_us())
                )
        except sqlite3.IntegrityError:
            raise NameTakenError(f"tenant {name!r} already exists") from None
        return Tenant(int(cur.lastrowid or 0), name)

    def get_tenant(self, name: str) -> Tenant | None:
        rows = self._query("SELECT id, name FROM tenants WHERE name = ?", (name,))
        return Tenant(*rows[0]) if rows else None

    def list_tenants(self) -> list[Tenant]:
        return [Tenant(*row) for row in self._query("SELECT id, name FROM tenants ORDER BY name")]

    def add_principal(
        self,
        kind: PrincipalKind,
        name: str,
        token_hash: str,
        tenant_id: int | None,
        scopes: Sequence[str] | None = None,
        expires_us: int | None = None,
    ) -> Principal:
        scope_text = principal_scopes(kind, tenant_id, scopes)
        try:
            with self._transaction() as db:
                cur = db.execute(
                    "INSERT INTO principals (kind, tenant_id, name, token_hash, created_us, "
                    "scopes, expires_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (kind, tenant_id, name, token_hash, now_us(), scope_text, expires_us),
                )
        except sqlite3.IntegrityError:
            raise NameTakenError(f"a {kind} named {name!r} already exists in this tenant") from None
        rows = self._query(_PRINCIPAL_SELECT + "WHERE p.id = ?", (cur.lastrowid,))
        return _principal(rows[0])

    def _active_where(self, where: str, params: Sequence[object]) -> Principal | None:
        rows = self._query(_PRINCIPAL_SELECT + f"WHERE {_ACTIVE} AND {where}", (now_us(), *params))
        return _principal(rows[0]) if rows else None

    def find_principal(self, token_hash: str) -> Principal | None:
        return self._active_where("p.token_hash = ?", (token_hash,))

    def get_principal(
        self, kind: PrincipalKind, name: str, tenant_id: int | None
    ) -> Principal | None:
        return self._active_where(
            "p.kind = ? AND p.tenant_id IS ? AND p.name = ?", (kind, tenant_id, name)
        )

    def list_tokens(self, tenant_id: int | None = None) -> list[TokenInfo]:
        where, params = (
            ("WHERE p.tenant_id = ?", (tenant_id,)) if tenant_id is not None else ("", ())
        )
        rows = self._query(
            "SELECT p.id, p.kind, p.name, t.name, p.scopes, p.created_us, p.last_seen_us, "
            "p.expires_us, p.rotated_us, p.revoked_us FROM principals p "
            f"LEFT JOIN tenants t ON t.id = p.tenant_id {where} "
            "ORDER BY t.name IS NOT NULL, t.name, p.kind, p.name",
            params,
        )
        return [TokenInfo(*r[:4], tuple(r[4].split()), *r[5:]) for r in rows]

    def rotate_principal(
        self, principal_id: int, token_hash: str, expires_us: int | None = None
    ) -> None:
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE principals SET token_hash = ?, rotated_us = ?, expires_us = ? "
                "WHERE id = ? AND revoked = 0",
                (token_hash, now_us(), expires_us, principal_id),
            )
        if cur.rowcount != 1:
            raise UnknownNameError(f"no active principal with id {principal_id}")

    def append_audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO audit (time_us, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (now_us(), actor, action, target, detail),
            )

    def read_audit(self, limit: int | None = None) -> list[AuditEntry]:
        rows = self._query(
            "SELECT id, time_us, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [AuditEntry(*r) for r in reversed(rows)]

    def list_devices(self, tenant_id: int) -> list[DeviceInfo]:
        rows = self._query(
            "SELECT p.name, (SELECT COUNT(*) FROM z_records r WHERE r.device_id = p.id "
            "AND r.origin IS NULL), "
            "p.created_us, p.last_seen_us FROM principals p "
            "WHERE p.kind = 'device' AND p.tenant_id = ? AND p.revoked = 0 ORDER BY p.name",
            (tenant_id,),
        )
        return [DeviceInfo(*row) for row in rows]

    def revoke_principal(self, principal_id: int) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE principals SET revoked = 1, revoked_us = ? WHERE id = ? AND revoked = 0",
                (now_us(), principal_id),
            )

    # -- heads and replay -----------------------------------------------------------------
    def close(self) -> None:
        self._ann.close()
        with self._lock, self._read_lock:
            self._conn.close()
            self._read_conn.close()


def _principal(row: tuple) -> Principal:
    return Principal(*row[:5], scopes=frozenset(row[5].split()))


register_store("sqlite", SQLiteStore.from_config, "one SQLite file in WAL mode (embedded default)")
