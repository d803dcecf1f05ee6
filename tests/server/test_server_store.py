"""The store suite, run on every backend: SQLite on a real file and PostgreSQL + pgvector on
a real embedded server (see ``pg_embedded``): idempotent ingest, isolation, reopening."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lifeveil.errors import AuthError, InputError, NameTakenError, ShapeError, UnknownNameError
from lifeveil.server.config import ServerConfig
from lifeveil.server.heads import LinearHead
from lifeveil.server.sqlite_store import SQLiteStore
from lifeveil.server.store import ZStore, create_store, list_stores
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord

from .server_helpers import STORE_Z_DIM as D
from .server_helpers import Backend


def _z(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(D).astype(np.float32)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "z.db", z_dim=D)
    yield s
    s.close()


def _device(store: ZStore, tenant: str, name: str = "cam"):
    t = store.get_tenant(tenant) or store.create_tenant(tenant)
    return store.add_principal("device", name, f"hash-{tenant}-{name}", t.id)


def test_file_is_sqlite_in_wal_mode(sqlite_store: SQLiteStore, tmp_path: Path):
    _device(sqlite_store, "a")
    raw = sqlite3.connect(tmp_path / "z.db")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tenants", "principals", "z_records", "heads", "nonces", "meta"} <= tables
    raw.close()


def test_registry_lists_and_creates_sqlite(tmp_path: Path):
    assert "sqlite" in list_stores()
    s = create_store(ServerConfig(data_dir=tmp_path, z_dim=D))
    assert isinstance(s, SQLiteStore) and s.path == tmp_path / "lifeveil.db"
    s.close()
    with pytest.raises(UnknownNameError, match="available: postgresql, sqlite"):
        create_store(ServerConfig(data_dir=tmp_path, z_dim=D, store="postgres"))


def test_put_records_is_idempotent_per_device_and_seq(store: ZStore):
    dev = _device(store, "a")
    recs = [ZRecord(i, 100 + i, _z(i)) for i in range(4)]
    assert store.put_records(dev, recs) == [AckStatus.STORED] * 4
    assert store.put_records(dev, recs[2:]) == [AckStatus.DUPLICATE] * 2
    assert store.put_records(dev, [ZRecord(1, 101, _z(50))]) == [AckStatus.CONFLICT]
    assert store.put_records(dev, [ZRecord(1, 999, recs[1].z)]) == [AckStatus.CONFLICT]
    assert store.count_records(dev.tenant_id) == 4  # type: ignore[arg-type]
    other = _device(store, "a", "cam2")  # the same seq on another device is a new record
    assert store.put_records(other, [recs[0]]) == [AckStatus.STORED]
    batch = store.get_records(dev.tenant_id, [("cam", 1)])  # type: ignore[arg-type]
    np.testing.assert_array_equal(batch.z[0], recs[1].z)


def test_tenants_are_isolated(store: ZStore):
    a, b = _device(store, "a"), _device(store, "b")
    store.put_records(a, [ZRecord(i, i, _z(i)) for i in range(3)])
    store.put_records(b, [ZRecord(i, i, _z(10 + i)) for i in range(2)])
    assert len(store.load_records(a.tenant_id)) == 3  # type: ignore[arg-type]
    assert set(store.load_records(b.tenant_id).devices) == {"cam"}  # type: ignore[arg-type]
    assert store.get_device(b.tenant_id, "cam").id == b.id  # type: ignore[arg-type, union-attr]
    with pytest.raises(UnknownNameError):
        store.get_records(b.tenant_id, [("cam", 2)])  # type: ignore[arg-type]
    hits = store.knn(b.tenant_id, _z(0), k=10)  # type: ignore[arg-type]
    assert len(hits) == 2 and all(h.device == "cam" for h in hits)


def test_load_records_time_window_and_order(store: ZStore):
    dev = _device(store, "a")
    store.put_records(dev, [ZRecord(i, 1000 - i * 10, _z(i)) for i in range(10)])
    batch = store.load_records(dev.tenant_id, t_start_us=920, t_end_us=960)  # type: ignore[arg-type]
    assert batch.timestamps_us.tolist() == [920, 930, 940, 950, 960]
    assert batch.seqs.tolist() == [8, 7, 6, 5, 4] and batch.z.shape == (5, D)
    assert len(store.load_records(dev.tenant_id, limit=3)) == 3  # type: ignore[arg-type]


def test_names_and_tokens_are_unique(store: ZStore):
    t = store.create_tenant("a")
    with pytest.raises(NameTakenError):
        store.create_tenant("a")
    store.add_principal("user", "owner", "h1", t.id)
    with pytest.raises(NameTakenError):
        store.add_principal("user", "owner", "h2", t.id)
    with pytest.raises(NameTakenError):
        store.add_principal("device", "other", "h1", t.id)  # token hash reused
    with pytest.raises(InputError):
        store.add_principal("admin", "root", "h3", t.id)
    found = store.find_principal("h1")
    assert found is not None and found.tenant_name == "a" and found.kind == "user"
    store.revoke_principal(found.id)
    assert store.find_principal("h1") is None


def test_heads_round_trip(store: ZStore):
    t = store.create_tenant("a")
    coef = np.arange(3 * D, dtype=np.float32).reshape(3, D)
    head = LinearHead("act", ("a", "b", "c"), coef, np.ones(3, np.float32), 9, {"acc": 1.0})
    store.put_head(t.id, head)
    got = store.get_head(t.id, "act")
    assert got is not None and got.classes == ("a", "b", "c") and got.metrics == {"acc": 1.0}
    np.testing.assert_array_equal(got.coef, coef)
    assert store.get_head(store.create_tenant("b").id, "act") is None
    with pytest.raises(ShapeError):
        store.put_head(t.id, LinearHead("x", ("a", "b"), np.zeros((2, 3), np.float32), np.zeros(2)))


def test_nonces(store: ZStore):
    assert store.remember_nonce(1, "n" * 16, expires_us=10, now_us=0)
    assert not store.remember_nonce(1, "n" * 16, expires_us=10, now_us=0)
    assert store.remember_nonce(2, "n" * 16, expires_us=10, now_us=0)


def test_data_survives_reopen_and_dimension_is_fixed(backend: Backend):
    s = backend.open()
    dev = _device(s, "a")
    s.put_records(dev, [ZRecord(0, 0, _z(0))])
    s.close()
    s = backend.open()
    assert s.count_records(dev.tenant_id) == 1  # type: ignore[arg-type]
    assert s.put_records(dev, [ZRecord(0, 0, _z(0))]) == [AckStatus.DUPLICATE]
    s.close()
    with pytest.raises(ShapeError, match="dimension 8"):
        backend.open(z_dim=D * 2)


def test_not_a_database(tmp_path: Path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(InputError, match="cannot open"):
        SQLiteStore(path, z_dim=D)


def test_second_connection_sees_commits(store: ZStore, backend: Backend):
    """The CLI can read while the server writes (SQLite: WAL)."""
    dev = _device(store, "a")
    other = backend.open()
    store.put_records(dev, [ZRecord(0, 0, _z(0))])
    assert other.count_records(dev.tenant_id) == 1  # type: ignore[arg-type]
    other.close()


def test_knn_matches_the_exact_scan(store: ZStore):
    """Whatever index a backend uses, answers equal the brute-force default's."""
    a, b = _device(store, "a"), _device(store, "b")
    store.put_records(a, [ZRecord(i, i, _z(i)) for i in range(300)])
    store.put_records(b, [ZRecord(i, i, _z(1000 + i)) for i in range(50)])
    for q in range(5):
        got = store.knn(a.tenant_id, _z(5000 + q), k=10)  # type: ignore[arg-type]
        want = ZStore.knn(store, a.tenant_id, _z(5000 + q), k=10)  # type: ignore[arg-type]
        assert [(h.device, h.seq) for h in got] == [(h.device, h.seq) for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-9)
    only = store.knn(a.tenant_id, _z(1), k=5, device_id=a.id)  # type: ignore[arg-type]
    assert only[0].seq == 1 and all(h.device == "cam" for h in only)


def test_batch_with_a_repeated_seq(store: ZStore):
    dev = _device(store, "a")
    batch = [ZRecord(7, 1, _z(1)), ZRecord(7, 1, _z(1)), ZRecord(7, 2, _z(1))]
    assert store.put_records(dev, batch) == [
        AckStatus.STORED,
        AckStatus.DUPLICATE,
        AckStatus.CONFLICT,
    ]
    assert store.count_records(dev.tenant_id) == 1  # type: ignore[arg-type]


def test_revoked_device_stores_nothing(store: ZStore):
    dev = _device(store, "a")
    store.revoke_principal(dev.id)
    with pytest.raises(AuthError, match="revoked"):
        store.put_records(dev, [ZRecord(0, 0, _z(0))])
    assert store.count_records(dev.tenant_id) == 0  # type: ignore[arg-type]


def test_audit_log_and_tokens(store: ZStore):
    t = store.create_tenant("a")
    store.add_principal("admin", "admin", "h0", None)
    store.add_principal("user", "owner", "h1", t.id)
    for i in range(3):
        store.append_audit("cli", "act", f"t{i}")
    assert [e.target for e in store.read_audit()] == ["t0", "t1", "t2"]
    assert [e.target for e in store.read_audit(limit=2)] == ["t1", "t2"]
    assert [(x.kind, x.tenant) for x in store.list_tokens()] == [("admin", None), ("user", "a")]
    summary = store.storage_summary()
    assert summary["z_records"] == 0 and summary["largest_value"] < 1000


def test_put_records_many_is_one_group_with_separate_outcomes(store: ZStore):
    a, b, gone = _device(store, "a"), _device(store, "b"), _device(store, "a", "lost")
    store.revoke_principal(gone.id)
    results = store.put_records_many(
        [
            (a, [ZRecord(0, 0, _z(0)), ZRecord(1, 1, _z(1))]),
            (gone, [ZRecord(0, 0, _z(0))]),
            (b, [ZRecord(0, 0, _z(2))]),  # the same seq on another device: its own record
            (a, [ZRecord(1, 1, _z(1))]),
        ]
    )
    assert results[0] == [AckStatus.STORED] * 2 and isinstance(results[1], AuthError)
    assert results[2] == [AckStatus.STORED] and results[3] == [AckStatus.DUPLICATE]
    assert store.count_records(a.tenant_id) == 2 and store.count_records(b.tenant_id) == 1  # type: ignore[arg-type]
    np.testing.assert_array_equal(store.get_records(b.tenant_id, [("cam", 0)]).z[0], _z(2))  # type: ignore[arg-type]
