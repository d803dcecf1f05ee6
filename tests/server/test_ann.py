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

from .server_helpers import ANN_DIM, ann_device, ann_records, hit_keys

pytest.importorskip("usearch")
D = ANN_DIM


def _open(path: Path) -> SQLiteStore:
    return SQLiteStore(path, z_dim=D, synchronous="NORMAL", ann_min_records=1)


def _recall(store: SQLiteStore, tenant_id: int, queries: np.ndarray, k: int = 10) -> float:
    found = 0
    for q in queries:
        got = set(hit_keys(store.knn(tenant_id, q, k)))
        found += len(got & set(hit_keys(ZStore.knn(store, tenant_id, q, k))))
    return found / (k * len(queries))


def test_index_answers_like_the_exact_scan_within_the_tenant(tmp_path: Path):
    store = _open(tmp_path / "z.db")
    a, b = ann_device(store, "a"), ann_device(store, "b")
    store.put_records(a, ann_records(0, 1500))
    store.put_records(b, ann_records(0, 300, seed=7))
    queries = np.stack([r.z for r in ann_records(0, 30, seed=99)])
    store.knn(a.tenant_id, queries[0], 10)  # the first query starts the build
    assert store._ann.wait_ready((a.tenant_id, 0), 60) and store._ann.wait_ready(
        (b.tenant_id, 0), 60
    )
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
    dev = ann_device(store, "a")
    store.put_records(dev, ann_records(0, 500))
    store._ann.wait_ready((dev.tenant_id, 0), 60)
    late = ann_records(500, 5000)
    store.put_records(dev, late)
    hit = store.knn(dev.tenant_id, late[-1].z, 1)[0]
    assert hit.seq == late[-1].seq and hit.score == pytest.approx(1.0)
    store._ann.wait_idle()
    assert store._ann._indexes[(dev.tenant_id, 0)].n_pending < 5000
    store.close()


def test_saved_index_is_reloaded_caught_up_or_rebuilt(tmp_path: Path, monkeypatch):
    path = tmp_path / "z.db"
    store = _open(path)
    dev = ann_device(store, "a")
    store.put_records(dev, ann_records(0, 800))
    store._ann.wait_ready((dev.tenant_id, 0), 60)
    store.close()

    def no_rebuild(z_dim: int):
        raise AssertionError("rebuilt although a fresh index was saved")

    with monkeypatch.context() as m:
        m.setattr(ann_index, "new_hnsw", no_rebuild)
        store = _open(path)
        store.put_records(dev, ann_records(800, 50))  # behind: caught up from the database
        assert store._ann.wait_ready((dev.tenant_id, 0), 60)
        assert len(store._ann._indexes[(dev.tenant_id, 0)]) == 850
        store.close()

    (path.parent / "z.db.ann" / "tenant-1.json").write_text("{not json")  # corrupt: rebuilt
    store = _open(path)
    assert store._ann.wait_ready((dev.tenant_id, 0), 60)
    assert _recall(store, dev.tenant_id, np.stack([r.z for r in ann_records(0, 10, 5)])) >= 0.95
    store.close()


def test_small_tenants_and_disabled_index_use_the_exact_scan(tmp_path: Path):
    store = SQLiteStore(tmp_path / "z.db", z_dim=D, ann_min_records=10_000)
    dev = ann_device(store, "a")
    store.put_records(dev, ann_records(0, 100))
    store.knn(dev.tenant_id, ann_records(0, 1)[0].z, 5)
    store._ann.wait_idle()
    assert (
        store._ann.knn((dev.tenant_id, 0), ann_records(0, 1)[0].z, 5) is None
    )  # below the minimum
    store.close()
    off = SQLiteStore(tmp_path / "z.db", z_dim=D, ann_min_records=0)
    assert not off._ann.enabled and len(off.knn(dev.tenant_id, ann_records(0, 1)[0].z, 5)) == 5
    off.close()


def test_index_is_scoped_per_space(tmp_path: Path):
    """One index per (tenant, space): k-NN in a space never returns a row of another, keeps
    its recall, and the indexes of spaces other than 0 are saved under their own names."""
    from lifeveil.transport.record import space_tag

    store = _open(tmp_path / "z.db")
    dev = ann_device(store, "a")
    old, new = "1111aaaabbbbcccc", "2222aaaabbbbcccc"
    for version in (old, new):
        store.register_space(dev.tenant_id, version, D)
    t_old, t_new = space_tag(old), space_tag(new)
    same = ann_records(0, 1200)  # identical z in both spaces: a mixed answer would show
    store.put_records(dev, [ZRecord(r.seq, r.timestamp_us, r.z, space=t_old) for r in same])
    store.put_records(dev, [ZRecord(r.seq + 10**6, 1, r.z, space=t_new) for r in same[:900]])
    queries = np.stack([r.z for r in ann_records(0, 20, seed=99)])
    for space, seqs in ((t_old, range(1200)), (t_new, range(10**6, 10**6 + 900))):
        store.prepare_knn(dev.tenant_id, 60, space=space)
        found = 0
        for q in queries:
            hits = store.knn(dev.tenant_id, q, 10, space=space)
            assert {h.seq for h in hits} <= set(seqs)
            exact = ZStore.knn(store, dev.tenant_id, q, 10, space=space)
            found += len(set(hit_keys(hits)) & set(hit_keys(exact)))
        assert found / (10 * len(queries)) >= 0.95
    assert store._ann.knn((dev.tenant_id, t_new), queries[0], 5) is not None  # the index ran
    store.close()
    assert (tmp_path / f"z.db.ann/tenant-{dev.tenant_id}-space-{t_new}.usearch").exists()


def test_index_reads_back_only_the_top_rows_and_breaks_ties_like_the_scan(tmp_path: Path):
    store = _open(tmp_path / "z.db")
    cam = ann_device(store, "a")
    records = ann_records(0, 1500)
    twins = [ZRecord(5000 + i, 7000 - i, records[3].z) for i in range(12)]  # 13 equal z
    store.put_records(cam, records + twins)
    assert store._ann.wait_ready((cam.tenant_id, 0), 60)
    read: list[int] = []
    by_keys = store.records_by_keys
    store.records_by_keys = lambda scope, keys: read.append(len(keys)) or by_keys(scope, keys)
    for k in (1, 5, 10):
        assert hit_keys(store.knn(cam.tenant_id, records[3].z, k)) == hit_keys(
            ZStore.knn(store, cam.tenant_id, records[3].z, k)
        )
    assert read == [13, 13, 13]  # the tied rows only, not the ~100 candidates
    read.clear()
    queries = np.stack([r.z for r in ann_records(0, 20, seed=5)])
    assert _recall(store, cam.tenant_id, queries) >= 0.95
    assert max(read) <= 11  # k = 10 rows (ties are unlikely on random z)


def test_absorb_gives_up_between_chunks_when_closing(monkeypatch):
    monkeypatch.setattr(ann_index, "ABSORB_CHUNK", 100)
    index = ann_index.TenantAnnIndex(D)
    z = np.stack([r.z for r in ann_records(0, 450)])
    keys = np.stack([np.zeros(450, np.int64), np.arange(450)], axis=1)
    index.append(keys, z)
    checks = iter([False, False, True])  # stop before the third chunk
    assert index.absorb(stopping=lambda: next(checks)) is False
    assert (index.n_indexed, index.n_pending) == (0, 450)  # nothing lost, nothing published
    assert index.absorb() is True
    assert (index.n_indexed, index.n_pending) == (450, 0)
    hits, _ = index.candidates(z[7], 5)
    assert [0, 7] in hits.tolist()
