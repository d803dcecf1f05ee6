"""Representation spaces in the store, on every backend (issue 14): registration, defaults,
ingest of unknown spaces, reads that never mix spaces, heads per space, schema upgrades."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lifeveil.errors import InputError, NameTakenError, ShapeError, UnknownNameError
from lifeveil.server.heads import LinearHead
from lifeveil.server.sqlite_store import SQLiteStore
from lifeveil.server.store import ZStore
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord, space_tag

from .test_server_store import D, _device, _z

V1, V2 = "1111aaaabbbbcccc", "2222aaaabbbbcccc"
V1_TWIN = "1111ffffffffffff"  # same wire tag as V1
T1, T2 = space_tag(V1), space_tag(V2)


def test_register_space_is_idempotent_and_listed(store: ZStore):
    t = store.create_tenant("a")
    assert [s.tag for s in store.list_spaces(t.id)] == [0]  # nothing registered: space 0
    first = store.register_space(t.id, V1, D)
    assert (first.version, first.tag, first.z_dim, first.n_records) == (V1, T1, D, 0)
    assert store.register_space(t.id, V1, D).registered_us == first.registered_us
    store.register_space(t.id, V2, D)
    assert [s.version for s in store.list_spaces(t.id)] == [V1, V2]
    other = store.create_tenant("b")  # spaces are per tenant
    assert store.default_space(other.id) == 0 and store.list_spaces(other.id)[0].version is None


def test_register_space_refusals(store: ZStore):
    t = store.create_tenant("a")
    store.register_space(t.id, V1, D)
    with pytest.raises(NameTakenError, match="already taken by version 1111aaaabbbbcccc"):
        store.register_space(t.id, V1_TWIN, D)
    with pytest.raises(ShapeError, match="a server stores one z_dim"):
        store.register_space(t.id, V2, D + 1)
    with pytest.raises(InputError, match="16 lower-case hex"):
        store.register_space(t.id, "not-a-version", D)
    b = store.create_tenant("b")  # another tenant may hold the twin: tags are per tenant
    assert store.register_space(b.id, V1_TWIN, D).tag == T1


def test_default_space_explicit_else_latest_else_zero(store: ZStore):
    t = store.create_tenant("a")
    assert store.default_space(t.id) == 0
    store.register_space(t.id, V1, D)
    assert store.default_space(t.id) == T1
    store.register_space(t.id, V2, D)
    assert store.default_space(t.id) == T2  # the most recently registered
    assert store.set_default_space(t.id, V1).is_default
    assert store.default_space(t.id) == T1
    assert [s.is_default for s in store.list_spaces(t.id)] == [True, False]
    with pytest.raises(UnknownNameError, match="not registered in your tenant"):
        store.set_default_space(t.id, "3333aaaabbbbcccc")


def test_unknown_space_is_refused_and_the_rest_of_the_batch_stored(store: ZStore):
    dev = _device(store, "a")
    store.register_space(dev.tenant_id, V1, D)  # type: ignore[arg-type]
    batch = [
        ZRecord(0, 0, _z(0), space=T1),
        ZRecord(1, 1, _z(1), space=T2),  # not registered in this tenant
        ZRecord(2, 2, _z(2), space=0),  # undeclared: always accepted
    ]
    assert store.put_records(dev, batch) == [
        AckStatus.STORED,
        AckStatus.UNKNOWN_SPACE,
        AckStatus.STORED,
    ]
    assert store.count_records(dev.tenant_id, space=T1) == 1  # type: ignore[arg-type]
    assert store.count_records(dev.tenant_id, space=T2) == 0  # type: ignore[arg-type]
    assert store.count_records(dev.tenant_id, space=0) == 1  # type: ignore[arg-type]
    other = _device(store, "b")  # a's registration does not let b's devices upload T1
    assert store.put_records(other, [ZRecord(0, 0, _z(0), space=T1)]) == [AckStatus.UNKNOWN_SPACE]


def test_reads_never_mix_spaces(store: ZStore):
    dev = _device(store, "a")
    tenant = dev.tenant_id
    assert tenant is not None
    for version in (V1, V2):
        store.register_space(tenant, version, D)
    old = [ZRecord(i, 100 + i, _z(i), space=T1) for i in range(20)]
    new = [ZRecord(i, 100 + i, _z(500 + i), space=T2) for i in range(5)]  # same seqs
    assert store.put_records(dev, old + new) == [AckStatus.STORED] * 25
    assert store.put_records(dev, new[:1]) == [AckStatus.DUPLICATE]
    assert len(store.load_records(tenant, space=T1)) == 20
    np.testing.assert_array_equal(store.load_records(tenant, space=T2).z[0], new[0].z)
    np.testing.assert_array_equal(store.get_records(tenant, [("cam", 3)], space=T1).z[0], _z(3))
    with pytest.raises(UnknownNameError, match="space"):
        store.get_records(tenant, [("cam", 7)], space=T2)
    hits = store.knn(tenant, _z(3), k=50, space=T2)
    assert len(hits) == 5 and {h.seq for h in hits} == set(range(5))
    assert store.knn(tenant, _z(3), k=1, space=T1)[0].seq == 3
    assert store.knn(tenant, _z(3), k=5, space=0) == []
    counts = {s.version: s.n_records for s in store.list_spaces(tenant)}
    assert counts == {V1: 20, V2: 5}
    assert store.list_devices(tenant)[0].n_records == 25


def test_heads_per_space(store: ZStore):
    t = store.create_tenant("a")
    coef = np.ones((2, D), np.float32)
    for space in (0, T1):
        head = LinearHead("act", ("x", "y"), coef * (space + 1), np.zeros(2, np.float32))
        store.put_head(t.id, LinearHead(**{**head.__dict__, "space": space}))
    got = store.get_head(t.id, "act", space=T1)
    assert got is not None and got.space == T1 and got.coef[0, 0] == T1 + 1
    assert store.get_head(t.id, "act", space=T2) is None
    assert [h.space for h in store.list_heads(t.id)] == [0, T1]
    assert [h.space for h in store.list_heads(t.id, space=T1)] == [T1]


def _v2_sqlite_database(path: Path) -> None:
    """A database as LifeVeil wrote it before spaces (schema version 2), with two z."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2'), ('z_dim', '8');
        CREATE TABLE tenants (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
            created_us INTEGER NOT NULL);
        CREATE TABLE principals (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, tenant_id INTEGER,
            name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, created_us INTEGER NOT NULL,
            last_seen_us INTEGER, revoked INTEGER NOT NULL DEFAULT 0,
            scopes TEXT NOT NULL DEFAULT '', expires_us INTEGER, rotated_us INTEGER,
            revoked_us INTEGER, UNIQUE (tenant_id, kind, name));
        CREATE TABLE z_records (device_id INTEGER NOT NULL, seq INTEGER NOT NULL,
            tenant_id INTEGER NOT NULL, timestamp_us INTEGER NOT NULL, z BLOB NOT NULL,
            received_us INTEGER NOT NULL, PRIMARY KEY (device_id, seq)) WITHOUT ROWID;
        CREATE INDEX z_records_by_time ON z_records (tenant_id, timestamp_us);
        CREATE TABLE heads (tenant_id INTEGER NOT NULL, name TEXT NOT NULL,
            classes TEXT NOT NULL, coef BLOB NOT NULL, intercept BLOB NOT NULL,
            n_train INTEGER NOT NULL, metrics TEXT NOT NULL, created_us INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, name));
        INSERT INTO tenants VALUES (1, 'a', 0);
        INSERT INTO principals (id, kind, tenant_id, name, token_hash, created_us, scopes)
            VALUES (1, 'device', 1, 'cam', 'h', 0, 'upload');
        """
    )
    for seq in range(2):
        db.execute(
            "INSERT INTO z_records VALUES (1, ?, 1, ?, ?, 0)", (seq, 10 * seq, _z(seq).tobytes())
        )
    db.execute(
        "INSERT INTO heads VALUES (1, 'act', '[\"x\", \"y\"]', ?, ?, 2, '{}', 0)",
        (np.ones((2, D), "<f4").tobytes(), np.zeros(2, "<f4").tobytes()),
    )
    db.commit()
    db.close()


def test_a_version_2_sqlite_database_migrates_with_every_row_in_space_0(tmp_path: Path):
    path = tmp_path / "old.db"
    _v2_sqlite_database(path)
    store = SQLiteStore(path, z_dim=D)
    try:
        assert store.count_records(1, space=0) == 2
        np.testing.assert_array_equal(store.get_records(1, [("cam", 1)]).z[0], _z(1))
        head = store.get_head(1, "act")
        assert head is not None and head.space == 0
        dev = store.get_device(1, "cam")
        assert dev is not None
        store.register_space(1, V1, D)  # the new key lets a migrated copy sit beside a row
        assert store.put_records(dev, [ZRecord(1, 10, _z(1), space=T1)]) == [AckStatus.STORED]
    finally:
        store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("3",)
    assert raw.execute("SELECT COUNT(*) FROM z_records WHERE space = 0").fetchone() == (2,)
    raw.close()


def test_a_version_1_postgres_database_migrates(embedded_postgres):  # type: ignore[no-untyped-def]
    import psycopg

    from lifeveil.server.pg_store import PostgresStore
    from lifeveil.server.pg_store_schema import META_TABLE, migration_sql

    dsn = embedded_postgres.new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(META_TABLE)
        conn.execute(migration_sql(0, D))
        conn.execute("INSERT INTO lifeveil_meta VALUES ('schema_version', '1'), ('z_dim', '8')")
        conn.execute("INSERT INTO lifeveil_tenants (id, name, created_us) VALUES (1, 'a', 0)")
        conn.execute(
            "INSERT INTO lifeveil_principals (id, kind, tenant_id, name, token_hash, "
            "created_us, scopes) VALUES (1, 'device', 1, 'cam', 'h', 0, 'upload')"
        )
        for seq in range(2):
            vector = "[" + ",".join(str(float(v)) for v in _z(seq)) + "]"
            conn.execute(
                "INSERT INTO lifeveil_z_records VALUES (1, %s, 1, %s, 0, %s)",
                (seq, 10 * seq, vector),
            )
    store = PostgresStore(dsn, z_dim=D)
    try:
        assert store.count_records(1, space=0) == 2
        np.testing.assert_allclose(store.get_records(1, [("cam", 1)]).z[0], _z(1), rtol=1e-6)
        dev = store.get_device(1, "cam")
        assert dev is not None
        store.register_space(1, V1, D)
        assert store.put_records(dev, [ZRecord(1, 10, _z(1), space=T1)]) == [AckStatus.STORED]
        assert store.count_records(1, space=T1) == 1 and store.count_records(1) == 2
    finally:
        store.close()


def test_knn_within_a_space_matches_its_exact_scan(store: ZStore):
    """The index (PostgreSQL: HNSW filtered by space during the scan) keeps the exact
    answer when another space holds the same z."""
    dev = _device(store, "a")
    tenant = dev.tenant_id
    assert tenant is not None
    for version in (V1, V2):
        store.register_space(tenant, version, D)
    store.put_records(dev, [ZRecord(i, i, _z(i), space=T1) for i in range(300)])
    store.put_records(dev, [ZRecord(10_000 + i, i, _z(i), space=T2) for i in range(300)])
    for q in range(5):
        for space in (T1, T2):
            got = store.knn(tenant, _z(5000 + q), k=10, space=space)
            want = ZStore.knn(store, tenant, _z(5000 + q), k=10, space=space)
            assert [h.seq for h in got] == [h.seq for h in want]
            assert all((h.seq >= 10_000) == (space == T2) for h in got)
