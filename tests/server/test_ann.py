"""The SQLite store's HNSW k-NN index: same answers as the exact scan (up to recall), tenant
scoped, persisted beside the database, reloaded, caught up or rebuilt when stale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lifeveil.server import ann_index
from lifeveil.server.sqlite_store import SQLiteStore
from lifeveil.server.store import ZStore
from lifeveil.transport.record import ZRecord

pytest.importorskip("usearch")
D = 16


def _records(start: int, n: int, seed: int = 0) -> list[ZRecord]:
    rng = np.random.default_rng(seed + start)
    centres = rng.standard_normal((20, D))
    z = centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, D))
    return [ZRecord(start + i, 1000 + start + i, z[i].astype(np.float32)) for i in range(n)]


def _open(path: Path) -> SQLiteStore:
    return SQLiteStore(path, z_dim=D, synchronous="NORMAL", ann_min_records=1)


def _device(store: ZStore, tenant: str, name: str = "cam"):
    t = store.get_tenant(tenant) or store.create_tenant(tenant)
    return store.add_principal("device", name, f"h-{tenant}-{name}", t.id)


def _keys(hits) -> list[tuple[str, int]]:
    return [(h.device, h.seq) for h in hits]


def _recall(store: SQLiteStore, tenant_id: int, queries: np.ndarray, k: int = 10) -> float:
    found = 0
    for q in queries:
        got = set(_keys(store.knn(tenant_id, q, k)))
        found += len(got & set(_keys(ZStore.knn(store, tenant_id, q, k))))
    return found / (k * len(queries))


def test_index_answers_like_the_exact_scan_within_the_tenant(tmp_path: Path):
    store = _open(tmp_path / "z.db")
    a, b = _device(store, "a"), _device(store, "b")
    store.put_records(a, _records(0, 1500))
    store.put_records(b, _records(0, 300, seed=7))
    queries = np.stack([r.z for r in _records(0, 30, seed=99)])
    store.knn(a.tenant_id, queries[0], 10)  # the first query starts the build
    assert store._ann.wait_ready(a.tenant_id, 60) and store._ann.wait_ready(b.tenant_id, 60)
    assert _recall(store, a.tenant_id, queries) >= 0.95
    hits = store.knn(a.tenant_id, queries[0], 10)
    exact = {h.seq: h.score for h in ZStore.knn(store, a.tenant_id, queries[0], 10)}
    for h in hits:  # re-ranked exactly: identical scores where the sets agree
        assert h.seq not in exact or h.score == exact[h.seq]
    assert all(h.device == "cam" for h in store.knn(b.tenant_id, queries[0], 50))
    assert {h.seq for h in store.knn(b.tenant_id, queries[0], 400)} == set(range(300))
    store.close()
    saved = sorted(p.name for p in (tmp_path / "z.db.ann").iterdir())
    assert "tenant-1.usearch" in saved and "tenant-1.keys.npy" in saved


def test_new_records_are_found_at_once_and_absorbed_later(tmp_path: Path):
    store = _open(tmp_path / "z.db")
    dev = _device(store, "a")
    store.put_records(dev, _records(0, 500))
    store._ann.wait_ready(dev.tenant_id, 60)
    late = _records(500, 5000)
    store.put_records(dev, late)
    hit = store.knn(dev.tenant_id, late[-1].z, 1)[0]
    assert hit.seq == late[-1].seq and hit.score == pytest.approx(1.0)
    store._ann.wait_idle()
    assert store._ann._indexes[dev.tenant_id].n_pending < 5000
    store.close()


def test_saved_index_is_reloaded_caught_up_or_rebuilt(tmp_path: Path, monkeypatch):
    path = tmp_path / "z.db"
    store = _open(path)
    dev = _device(store, "a")
    store.put_records(dev, _records(0, 800))
    store._ann.wait_ready(dev.tenant_id, 60)
    store.close()

    def no_rebuild(z_dim: int):
        raise AssertionError("rebuilt although a fresh index was saved")

    with monkeypatch.context() as m:
        m.setattr(ann_index, "new_hnsw", no_rebuild)
        store = _open(path)
        store.put_records(dev, _records(800, 50))  # behind: caught up from the database
        assert store._ann.wait_ready(dev.tenant_id, 60)
        assert len(store._ann._indexes[dev.tenant_id]) == 850
        store.close()

    (path.parent / "z.db.ann" / "tenant-1.json").write_text("{not json")  # corrupt: rebuilt
    store = _open(path)
    assert store._ann.wait_ready(dev.tenant_id, 60)
    assert _recall(store, dev.tenant_id, np.stack([r.z for r in _records(0, 10, 5)])) >= 0.95
    store.close()


def test_small_tenants_and_disabled_index_use_the_exact_scan(tmp_path: Path):
    store = SQLiteStore(tmp_path / "z.db", z_dim=D, ann_min_records=10_000)
    dev = _device(store, "a")
    store.put_records(dev, _records(0, 100))
    store.knn(dev.tenant_id, _records(0, 1)[0].z, 5)
    store._ann.wait_idle()
    assert store._ann.knn(dev.tenant_id, _records(0, 1)[0].z, 5) is None  # below the minimum
    store.close()
    off = SQLiteStore(tmp_path / "z.db", z_dim=D, ann_min_records=0)
    assert not off._ann.enabled and len(off.knn(dev.tenant_id, _records(0, 1)[0].z, 5)) == 5
    off.close()
