"""Store benchmark: preload N z, then time ingest and k-NN, with recall against exact search.

Runs in-process against a store (``sqlite`` with its HNSW index, or ``postgresql`` with
pgvector), without HTTP and TLS, so that it measures what the store can do:

1. *preload*: N z from ``devices`` devices, ``batch`` records per device per call, grouped
   ``devices`` calls per transaction as :class:`~lifeveil.server.ingest.IngestBatcher` does;
2. *index*: build (or load) the k-NN index, timed;
3. *queries*: ``queries`` k-NN queries one after another: latency p50/p99 and recall@k
   against exact cosine search over the same z (in numpy);
4. *ingest while querying*: ``2 * extra_records`` more z in ``2 * rounds + 1`` equal
   stretches, alone and while a thread sends queries (back to back, or ``query_rate`` per
   second) in turn, first and last alone: each querying stretch's drop in z/s against the
   alone stretches around it (``store_bench_stretches``; medians), and the query latency
   meanwhile.

A store that indexes in the background from an unindexed tail (PostgreSQL: ``tail_size``,
``wait_indexed``, ``indexer``) also gets: the tail left by the preload and k-NN latency and
recall while that tail exists (before step 2), the time to drain it and the indexer's rate
(step 2 waits for it), the indexer's rate while step 4 ingests, and the tail at the end.

The z are video-like (``synthetic_z``): scenes of a few seconds to minutes in which z drifts
slowly around a scene centre, plus per-frame noise; with ``base`` (z of encoded clips, e.g.
from ``lifeveil encode``) the scene centres are those z.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lifeveil.errors import InputError
from lifeveil.server.cli_support import sqlite_or_dsn
from lifeveil.server.load import percentile_ms
from lifeveil.server.priority import single_threaded_blas
from lifeveil.server.store import Principal, ZStore
from lifeveil.server.store_bench_stretches import ROUNDS, QueryThread, alternate
from lifeveil.transport.record import ZRecord

Progress = Callable[[str], None]


@dataclass(frozen=True)
class StoreBenchConfig:
    """Size of one benchmark run; saved in its report."""

    n: int = 10_000  # z preloaded before the queries
    z_dim: int = 64
    devices: int = 16  # one tenant's devices, sending in turn
    batch: int = 64  # records per device per call (one POST of frames)
    queries: int = 200  # timed k-NN queries (recall measured on each)
    k: int = 10
    extra_records: int = 10_000  # ingested alone, then again while queries run
    rounds: int = ROUNDS  # querying stretches in step 4, each between two alone ones
    query_rate: float = 0.0  # k-NN queries per second during step 4; 0: back to back
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.n, self.devices, self.batch, self.queries, self.k, self.rounds) < 1:
            raise InputError("n, devices, batch, queries, k and rounds must be >= 1")


def synthetic_z(n: int, z_dim: int, seed: int, base: np.ndarray | None = None) -> np.ndarray:
    """``(n, z_dim)`` float32 video-like z: slow drift within scenes, noise per frame.

    Scene lengths are 10-300 frames; within a scene z follows an AR(1) walk (0.98) around
    the scene's centre, with per-frame noise of 0.3 of its scale. Centres are standard normal,
    or random rows of ``base`` (z of encoded clips) plus noise when given.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n, z_dim), dtype=np.float32)
    scale = float(base.std()) if base is not None else 1.0
    i = 0
    while i < n:
        length = min(int(rng.integers(10, 300)), n - i)
        if base is not None:
            centre = base[rng.integers(len(base))] + 0.2 * scale * rng.standard_normal(z_dim)
        else:
            centre = rng.standard_normal(z_dim)
        drift = np.zeros(z_dim)
        for j in range(length):
            drift = 0.98 * drift + 0.05 * scale * rng.standard_normal(z_dim)
            out[i + j] = centre + drift + 0.3 * scale * rng.standard_normal(z_dim)
        i += length
    return out


def query_like(stored: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Queries by example: stored z at random times plus fresh per-frame noise (0.3 scale),
    as when looking for moments like one just seen."""
    rng = np.random.default_rng(seed + 1)
    picked = stored[rng.integers(0, len(stored), count)]
    noise = 0.3 * float(stored.std()) * rng.standard_normal(picked.shape)
    return (picked + noise).astype(np.float32)


class _Feeder:
    """Sends z to the store as ``devices`` devices, each with its own running seq."""

    def __init__(self, store: ZStore, devices: list[Principal], batch: int) -> None:
        self.store, self.devices, self.batch = store, devices, batch
        self.next_seq = [0] * len(devices)
        self.keys: list[tuple[str, int]] = []  # (device name, seq) of every z sent, in order

    def send(self, z: np.ndarray) -> float:
        """Store ``z`` (groups of ``devices`` calls per transaction); returns z per second."""
        start, t0 = 0, time.perf_counter()
        while start < len(z):
            group = []
            for d, device in enumerate(self.devices):
                chunk = z[start : start + self.batch]
                if not len(chunk):
                    break
                seqs = range(self.next_seq[d], self.next_seq[d] + len(chunk))
                group.append(
                    (device, [ZRecord(s, s, row) for s, row in zip(seqs, chunk, strict=True)])
                )
                self.keys += [(device.name, s) for s in seqs]
                self.next_seq[d] += len(chunk)
                start += len(chunk)
            for result in self.store.put_records_many(group):
                if isinstance(result, Exception):
                    raise result
        return len(z) / (time.perf_counter() - t0)


def exact_top_k(z: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices ``(q, k)`` of the exact cosine top-k of each query (float64)."""
    zn = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-30)
    qn = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)
    scores = qn.astype(np.float64) @ zn.astype(np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def run_store_bench(
    store: ZStore,
    config: StoreBenchConfig,
    *,
    base: np.ndarray | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the benchmark on an open, empty-for-this-tenant store; returns the report."""
    say = progress or (lambda _line: None)
    data = synthetic_z(config.n + 2 * config.extra_records, config.z_dim, config.seed, base)
    stored, extra = data[: config.n], data[config.n :]
    queries = query_like(stored, config.queries, config.seed)
    tenant = store.create_tenant(f"bench-{time.time_ns()}")
    devices = [
        store.add_principal("device", f"cam{i}", f"bench-{tenant.id}-{i}", tenant.id)
        for i in range(config.devices)
    ]
    feeder = _Feeder(store, devices, config.batch)
    say(f"preloading {config.n:,} z ...")
    preload_rate = feeder.send(stored)
    tail = _TailProbe(store)
    if tail.present:
        say(f"  {preload_rate:,.0f} z/s; {config.queries} queries while a tail exists ...")
        tail.query_with_tail(queries, stored, feeder.keys, config.k, tenant.id)
    say(f"  {preload_rate:,.0f} z/s; building the k-NN index ...")
    t0 = time.perf_counter()
    store.prepare_knn(tenant.id)
    tail.drain()
    index_s = time.perf_counter() - t0
    say(f"  index ready in {index_s:.1f} s; {config.queries} queries ...")
    latencies, recall = _timed_queries(store, tenant.id, queries, stored, feeder.keys, config.k)
    exact = []
    for q in queries[:5]:  # the brute-force default, for comparison
        t0 = time.perf_counter()
        ZStore.knn(store, tenant.id, q, config.k)
        exact.append(time.perf_counter() - t0)
    say("ingest alone, then while queries run ...")
    tail.start_ingest()
    loop = QueryThread(store, tenant.id, queries, config.k, config.query_rate)
    loop.start()
    stretches = alternate(feeder, loop, extra, config.rounds)
    loop.stop()
    tail.end_ingest()
    return {
        "config": asdict(config),
        "store": type(store).__name__,
        "summary": {
            "n": config.n,
            "preload_z_per_s": round(preload_rate, 1),
            "index_ready_s": round(index_s, 2),
            "query_p50_ms": percentile_ms(latencies, 50),
            "query_p99_ms": percentile_ms(latencies, 99),
            f"recall_at_{config.k}": round(recall, 4),
            "exact_scan_p50_ms": percentile_ms(exact, 50),
            **stretches.summary(),
            "query_rate_during_ingest": config.query_rate or "back to back",
            "queries_during_ingest": len(loop.latencies),
            "query_p50_ms_during_ingest": percentile_ms(loop.latencies, 50),
            "query_p99_ms_during_ingest": percentile_ms(loop.latencies, 99),
            **tail.report,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
    }


class _TailProbe:
    """The tail measurements of a store indexing in the background (a no-op for others)."""

    def __init__(self, store: ZStore) -> None:
        self.store = store
        self.present = all(hasattr(store, a) for a in ("tail_size", "wait_indexed", "indexer"))
        self.report: dict[str, Any] = {}
        self._moved0, self._t0 = 0, 0.0

    def _size(self) -> int:
        return int(self.store.tail_size())  # type: ignore[attr-defined]

    def _moved(self) -> int:
        return int(self.store.indexer.moved)  # type: ignore[attr-defined]

    def query_with_tail(
        self,
        queries: np.ndarray,
        stored: np.ndarray,
        keys: list[tuple[str, int]],
        k: int,
        tenant_id: int,
    ) -> None:
        """k-NN latency and recall right after the preload, while the tail is large."""
        self.report["tail_after_preload"] = self._size()
        latencies, recall = _timed_queries(self.store, tenant_id, queries, stored, keys, k)
        self.report |= {
            "tail_query_p50_ms": percentile_ms(latencies, 50),
            "tail_query_p99_ms": percentile_ms(latencies, 99),
            f"tail_recall_at_{k}": round(recall, 4),
            "tail_after_tail_queries": self._size(),
        }

    def drain(self) -> None:
        """Wait for the indexer to empty the tail; its rate meanwhile (nothing else runs)."""
        if not self.present:
            return
        size, moved, t0 = self._size(), self._moved(), time.perf_counter()
        if not self.store.wait_indexed(7200):  # type: ignore[attr-defined]
            raise InputError("the k-NN indexer did not empty the tail within 2 hours")
        seconds = time.perf_counter() - t0
        self.report |= {
            "tail_drain_s": round(seconds, 2),
            "tail_drained": size,
            "indexer_drain_z_per_s": round((self._moved() - moved) / seconds, 1)
            if seconds > 0
            else None,
            "indexer_busy_z_per_s": round(self.store.indexer.rate_z_per_s, 1),  # type: ignore[attr-defined]
        }

    def start_ingest(self) -> None:
        self._moved0, self._t0 = (self._moved(), time.perf_counter()) if self.present else (0, 0)

    def end_ingest(self) -> None:
        """The indexer's rate while step 4 ingested and queried, and the tail it left."""
        if self.present:
            seconds = time.perf_counter() - self._t0
            self.report |= {
                "indexer_z_per_s_during_ingest": round((self._moved() - self._moved0) / seconds, 1),
                "tail_at_end": self._size(),
            }


def _timed_queries(
    store: ZStore,
    tenant_id: int,
    queries: np.ndarray,
    stored: np.ndarray,
    keys: list[tuple[str, int]],
    k: int,
) -> tuple[list[float], float]:
    truth = exact_top_k(stored, queries, k)
    latencies, found = [], 0
    for q, want in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        hits = store.knn(tenant_id, q, k)
        latencies.append(time.perf_counter() - t0)
        found += len({(h.device, h.seq) for h in hits} & {keys[i] for i in want})
    return latencies, found / (k * len(queries))


def run_bench_command(
    store: str,
    sizes: list[int],
    z_dim: int,
    queries: int,
    extra: int,
    seed_z: Path | None = None,
    out: Path | None = None,
    query_rate: float = 0.0,
    knn_process: bool = True,
    rounds: int = ROUNDS,
) -> list[dict[str, Any]]:
    """``lifeveil server bench``: one run per size on a fresh store; prints each summary.

    ``knn_process`` as the server's setting of that name (SQLite only)."""
    base = np.load(seed_z).reshape(-1, z_dim).astype(np.float32) if seed_z else None
    single_threaded_blas()  # as `lifeveil server run` does
    reports = []
    for n in sizes:
        config = StoreBenchConfig(
            n=n,
            z_dim=z_dim,
            queries=queries,
            extra_records=extra,
            query_rate=query_rate,
            rounds=rounds,
        )
        with tempfile.TemporaryDirectory(prefix="lifeveil-bench-") as tmp:
            opened = _open_store(store, z_dim, Path(tmp), knn_process)
            try:
                report = run_store_bench(opened, config, base=base, progress=print)
            finally:
                opened.close()
        report["command_store"] = "sqlite" if store == "sqlite" else "postgresql"
        if store == "sqlite":
            report["summary"]["knn_process"] = knn_process
        print(json.dumps(report["summary"], indent=2), flush=True)
        reports.append(report)
    if out is not None:
        out.write_text(json.dumps(reports, indent=2) + "\n")
    return reports


def _open_store(store: str, z_dim: int, tmp: Path, knn_process: bool = True) -> ZStore:
    dsn = sqlite_or_dsn(store)
    if not dsn:
        from lifeveil.server.sqlite_store import SQLiteStore

        return SQLiteStore(tmp / "lifeveil.db", z_dim, ann_min_records=1, knn_process=knn_process)
    from lifeveil.server.pg_store import PostgresStore

    return PostgresStore(dsn, z_dim)
