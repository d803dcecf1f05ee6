"""k-NN for a store without a vector index of its own (the SQLite store): HNSW per tenant and
representation space.

Indexes are per *scope*, ``(tenant_id, space)``: z of different spaces are never in one graph,
so a k-NN answer never mixes them. A scope's index is built (or loaded from ``DATA_DIR/lifeveil.db.ann/`` and brought up to
date) by a background worker the first time the tenant is queried; until it is ready, and
for tenants with fewer than ``min_records`` records, :meth:`AnnSearch.knn` returns None and
the store answers with its exact scan. Candidates from the index are re-ranked exactly on the
z read back from the database, with the tenant in the ``WHERE`` clause, so the answer has the
exact scan's scores and tie order; only recall is approximate (measured by the benchmark).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from lifeveil.server.ann_index import TenantAnnIndex, ann_available
from lifeveil.server.priority import BACKGROUND_NICE, lower_thread_priority
from lifeveil.server.search import cosine_knn, cosine_scores
from lifeveil.server.store import NeighborHit

log = logging.getLogger(__name__)

# Candidates taken from the index per query (before the exact re-ranking), and how many
# more when the query is limited to one device (filtered after the search).
CANDIDATES_MIN, CANDIDATES_PER_K, DEVICE_OVERSAMPLE = 100, 4, 8


#: Which index: ``(tenant_id, space tag)``.
Scope = tuple[int, int]


class VectorSource(Protocol):
    """What :class:`AnnSearch` reads from the store it serves."""

    def tenant_vectors(self, scope: Scope) -> tuple[np.ndarray, np.ndarray]:
        """Keys ``(n, 2)`` (device_id, seq) and float32 z ``(n, d)`` of every record of the
        scope's tenant and space."""
        ...

    def records_by_keys(self, scope: Scope, keys: np.ndarray) -> list[tuple]:
        """Rows ``(device name, seq, timestamp_us, z float32 (d,), device_id)`` of the
        scope's records among ``keys`` (others are ignored)."""
        ...


def index_stem(scope: Scope) -> str:
    """File name (without suffix) of a scope's saved index; space 0 keeps the name indexes
    had before spaces existed, so they still load."""
    tenant_id, space = scope
    return f"tenant-{tenant_id}" if space == 0 else f"tenant-{tenant_id}-space-{space}"


def key_rows(keys: np.ndarray) -> np.ndarray:
    """``(n, 2)`` int64 keys as one opaque value per row, for set operations."""
    return np.ascontiguousarray(keys, dtype=np.int64).view(np.dtype((np.void, 16))).ravel()


class AnnSearch:
    """Per-tenant HNSW indexes of one store, built and refreshed by one worker thread."""

    def __init__(self, source: VectorSource, folder: Path, z_dim: int, min_records: int) -> None:
        self.folder, self.z_dim, self.min_records = folder, z_dim, min_records
        self.enabled = min_records > 0 and ann_available()
        self._source = source
        self._indexes: dict[Scope, TenantAnnIndex] = {}
        self._ready: set[Scope] = set()
        self._lock = threading.Lock()
        self._tasks: queue.Queue[tuple[str, Scope] | None] = queue.Queue()
        self._queued: set[tuple[str, Scope]] = set()
        self._queue_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._closing = threading.Event()

    # -- ingest and queries ----------------------------------------------------------------------
    def on_stored(self, scope: Scope, keys: np.ndarray, z: np.ndarray) -> None:
        """Records just committed: visible to the next query (tail), indexed later."""
        index = self._indexes.get(scope)
        if index is None or not len(keys):
            return
        index.append(keys, z)
        if scope in self._ready and index.wants_absorb():
            self._schedule("absorb", scope)

    def knn(
        self, scope: Scope, query: np.ndarray, k: int, device_id: int | None = None
    ) -> list[NeighborHit] | None:
        """The ``k`` nearest records, or None where the exact scan should answer instead."""
        if not self.enabled or k <= 0:
            return None
        index = self._index_for(scope)
        if scope not in self._ready or len(index) < self.min_records:
            return None
        count = max(CANDIDATES_MIN, CANDIDATES_PER_K * k)
        if device_id is not None:
            count *= DEVICE_OVERSAMPLE
        if count >= len(index):
            return None  # asking for (nearly) every record: the exact scan is complete and cheap
        keys, z = index.candidates(query, count)
        if device_id is not None:
            mine = keys[:, 0] == device_id
            keys, z = keys[mine], z[mine]
        if len(keys) < k and device_id is not None:
            return None  # a small device among many: its exact scan is cheap and complete
        rows = self._source.records_by_keys(scope, best_keys(keys, z, query, k))
        if len(rows) < min(k, len(keys)):  # a candidate is gone from the database
            rows = self._source.records_by_keys(scope, keys)
        return rerank(rows, query, k, self.z_dim)

    def wait_ready(self, scope: Scope, timeout_s: float = 600.0) -> bool:
        """Start building this tenant's index if needed and wait for it; True once usable."""
        self._index_for(scope)
        deadline = time.monotonic() + timeout_s
        while scope not in self._ready and time.monotonic() < deadline:
            time.sleep(0.02)
        return scope in self._ready

    def wait_idle(self) -> None:
        """Wait until every queued build and absorb has finished (for tests, benchmarks)."""
        self._tasks.join()

    def _index_for(self, scope: Scope) -> TenantAnnIndex:
        with self._lock:
            index = self._indexes.get(scope)
            if index is None:
                index = self._indexes[scope] = TenantAnnIndex(self.z_dim)
                self._schedule("build", scope)
        return index

    # -- the worker ---------------------------------------------------------------------------
    def _schedule(self, task: str, scope: Scope) -> None:
        item = (task, scope)
        with self._queue_lock:
            if item in self._queued:
                return
            self._queued.add(item)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="lifeveil-ann", daemon=True)
                self._worker.start()
        self._tasks.put(item)

    def _work(self) -> None:
        lower_thread_priority(BACKGROUND_NICE)  # upkeep waits for idle cores; the tail is exact
        while True:
            item = self._tasks.get()
            try:
                if item is None:
                    return
                with self._queue_lock:
                    self._queued.discard(item)
                task, scope = item
                if task == "build":
                    self._build(scope)
                else:
                    self._indexes[scope].absorb(stopping=self._closing.is_set)
            except Exception:  # a broken index must not take k-NN down: exact scans go on
                log.exception("k-NN index task %s failed; queries use the exact scan", item)
            finally:
                self._tasks.task_done()

    def _build(self, scope: Scope) -> None:
        """Load the saved index, add what it lacks from the database, or build it anew."""
        index = self._indexes[scope]
        keys, z = self._source.tenant_vectors(scope)
        saved = TenantAnnIndex.load(self.folder, index_stem(scope), self.z_dim)
        missing = np.ones(len(keys), dtype=bool)
        if saved is not None:
            saved_keys = saved.indexed_keys()
            if np.isin(key_rows(saved_keys), key_rows(keys)).all():  # not stale, maybe behind
                index.adopt(saved)
                missing = ~np.isin(key_rows(keys), key_rows(saved_keys))
            else:
                log.warning("k-NN index %s is stale; rebuilding it", scope)
        index.append(keys[missing], z[missing])
        # a first build may use every core
        if not index.absorb(os.cpu_count() or 1, self._closing.is_set) and self._closing.is_set():
            return  # closing mid-build: the next start builds again
        if index.dirty:
            index.save(self.folder, index_stem(scope))
        self._ready.add(scope)

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the worker (after its current task) and save every changed index."""
        self._closing.set()  # a running absorb stops within a chunk
        if self._worker is not None:
            self._tasks.put(None)
            self._worker.join(timeout_s)
        for scope, index in list(self._indexes.items()):
            if index.dirty and scope in self._ready:
                index.save(self.folder, index_stem(scope))


def best_keys(keys: np.ndarray, z: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """The candidates that can be in the exact top ``k``: every one scoring at least the
    ``k``-th best score (ties included, so :func:`rerank` breaks them as the exact scan
    does). Scored as :func:`cosine_knn` scores, so only these rows need reading back."""
    if len(keys) <= k:
        return keys
    scores = cosine_scores(z, query)
    kth = np.partition(scores, len(scores) - k)[len(scores) - k]
    return keys[scores >= kth]


def rerank(rows: Sequence[tuple], query: np.ndarray, k: int, z_dim: int) -> list[NeighborHit]:
    """Exact cosine top-``k`` of candidate rows ``(name, seq, timestamp_us, z, device_id)``,
    scored and tie-broken exactly as the brute-force scan (capture-time row order)."""
    ordered = sorted(rows, key=lambda r: (r[2], r[4], r[1]))
    z = np.zeros((len(ordered), z_dim), dtype=np.float32)
    for i, row in enumerate(ordered):
        z[i] = row[3]
    idx, scores = cosine_knn(z, query, k)
    return [
        NeighborHit(ordered[i][0], int(ordered[i][1]), int(ordered[i][2]), float(s))
        for i, s in zip(idx, scores, strict=True)
    ]
