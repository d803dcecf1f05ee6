"""SQLiteStore on a real file: WAL mode, idempotent ingest, isolation, reopening."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lifeveil.errors import InputError, NameTakenError, ShapeError, UnknownNameError
from lifeveil.server.config import ServerConfig
from lifeveil.server.heads import LinearHead
from lifeveil.server.sqlite_store import SQLiteStore
from lifeveil.server.store import create_store, list_stores
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord

D = 8


def _z(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(D).astype(np.float32)


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "z.db", z_dim=D)
    yield s
    s.close()


def _device(store: SQLiteStore, tenant: str, name: str = "cam"):
    t = store.get_tenant(tenant) or store.create_tenant(tenant)
    return store.add_principal("device", name, f"hash-{tenant}-{name}", t.id)


def test_file_is_sqlite_in_wal_mode(store: SQLiteStore, tmp_path: Path):
    _device(store, "a")
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
    with pytest.raises(UnknownNameError, match="available: sqlite"):
        create_store(ServerConfig(data_dir=tmp_path, z_dim=D, store="postgres"))


def test_put_records_is_idempotent_per_device_and_seq(store: SQLiteStore):
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


def test_tenants_are_isolated(store: SQLiteStore):
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


def test_load_records_time_window_and_order(store: SQLiteStore):
    dev = _device(store, "a")
    store.put_records(dev, [ZRecord(i, 1000 - i * 10, _z(i)) for i in range(10)])
    batch = store.load_records(dev.tenant_id, t_start_us=920, t_end_us=960)  # type: ignore[arg-type]
    assert batch.timestamps_us.tolist() == [920, 930, 940, 950, 960]
    assert batch.seqs.tolist() == [8, 7, 6, 5, 4] and batch.z.shape == (5, D)
    assert len(store.load_records(dev.tenant_id, limit=3)) == 3  # type: ignore[arg-type]


def test_names_and_tokens_are_unique(store: SQLiteStore):
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


def test_heads_round_trip(store: SQLiteStore):
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


def test_nonces(store: SQLiteStore):
    assert store.remember_nonce(1, "n" * 16, expires_us=10, now_us=0)
    assert not store.remember_nonce(1, "n" * 16, expires_us=10, now_us=0)
    assert store.remember_nonce(2, "n" * 16, expires_us=10, now_us=0)


def test_data_survives_reopen_and_dimension_is_fixed(tmp_path: Path):
    path = tmp_path / "z.db"
    s = SQLiteStore(path, z_dim=D)
    dev = _device(s, "a")
    s.put_records(dev, [ZRecord(0, 0, _z(0))])
    s.close()
    s = SQLiteStore(path, z_dim=D)
    assert s.count_records(dev.tenant_id) == 1  # type: ignore[arg-type]
    assert s.put_records(dev, [ZRecord(0, 0, _z(0))]) == [AckStatus.DUPLICATE]
    s.close()
    with pytest.raises(ShapeError, match="dimension 8"):
        SQLiteStore(path, z_dim=D * 2)


def test_not_a_database(tmp_path: Path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(InputError, match="cannot open"):
        SQLiteStore(path, z_dim=D)


def test_second_connection_sees_commits(store: SQLiteStore, tmp_path: Path):
    """WAL: the CLI can read while the server writes."""
    dev = _device(store, "a")
    other = SQLiteStore(tmp_path / "z.db", z_dim=D)
    store.put_records(dev, [ZRecord(0, 0, _z(0))])
    assert other.count_records(dev.tenant_id) == 1  # type: ignore[arg-type]
    other.close()
