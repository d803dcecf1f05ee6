"""Load generator: many simulated devices streaming z while users query, on loopback only.

Each simulated device registers through the HTTPS API and runs the real device uplink
(:class:`~lifeveil.transport.uplink.Uplink`: WebSocket over TLS, fixed-size frames, acks,
cover frames) at ``rate_hz``, with a bounded number of random z records. All device uplinks
share one asyncio loop on one thread, as a gateway for many cameras would; ``query_clients``
threads meanwhile send k-NN queries through the real HTTPS client. The report gives ingest
throughput (z records acked as stored per second) and query latency percentiles.

Traffic goes only to 127.0.0.1: :func:`run_load` refuses any other host.
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from lifeveil.errors import InputError
from lifeveil.server import admin
from lifeveil.server.config import ServerConfig
from lifeveil.server.local import LocalServer
from lifeveil.transport.client import QueryClient
from lifeveil.transport.frame import AckStatus, WireSpec
from lifeveil.transport.record import ZRecord
from lifeveil.transport.uplink import MemoryOutbox, Uplink, UplinkConfig

Progress = Callable[[str], None]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class LoadConfig:
    """Size of the load; saved in the report."""

    devices: int = 20  # concurrent simulated devices, one uplink each
    seconds: float = 20.0  # length of the upload phase (ends earlier if all records are acked)
    rate_hz: float = 100.0  # frames per second per device (real or cover)
    records_per_device: int = 5000  # z records each device has to send
    query_clients: int = 2  # threads sending k-NN queries during the upload phase
    query_rate_hz: float = 0.0  # queries per second per thread; 0 = back to back (worst case)
    k: int = 10  # neighbours per query
    z_dim: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.devices < 1 or self.seconds <= 0 or self.records_per_device < 1:
            raise InputError("need devices >= 1, seconds > 0 and records_per_device >= 1")
        if not 0 < self.rate_hz <= 1000:
            raise InputError(f"rate_hz={self.rate_hz} must be in (0, 1000]")


def percentile_ms(latencies_s: list[float], q: float) -> float | None:
    """The ``q``-th percentile of latencies in milliseconds (None if there are none).

    >>> percentile_ms([0.001, 0.002, 0.003], 50)
    2.0
    """
    if not latencies_s:
        return None
    return round(float(np.percentile(np.asarray(latencies_s) * 1e3, q)), 3)


class _QueryLoop(threading.Thread):
    """Sends k-NN queries back to back until stopped, timing each."""

    def __init__(
        self,
        base_url: str,
        token: str,
        wire: WireSpec,
        cafile: str,
        config: LoadConfig,
        seed: int,
    ) -> None:
        super().__init__(name=f"lifeveil-load-query-{seed}", daemon=True)
        self._client = QueryClient(base_url, token, wire=wire, cafile=cafile, timeout_s=30.0)
        self._rng = np.random.default_rng(seed)
        self._k, self._z_dim = config.k, wire.z_dim
        self._period = 1.0 / config.query_rate_hz if config.query_rate_hz > 0 else 0.0
        self.stop_event = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        next_at = time.perf_counter()
        try:
            while not self.stop_event.wait(max(0.0, next_at - time.perf_counter())):
                next_at += self._period
                z = self._rng.standard_normal(self._z_dim).astype(np.float32)
                start = time.perf_counter()
                try:
                    self._client.knn(z, k=self._k)
                except Exception as exc:  # keep measuring; report what failed
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.latencies.append(time.perf_counter() - start)
        finally:
            self._client.close()


class _Fleet:
    """All simulated devices' uplinks, running on one asyncio loop in a thread."""

    def __init__(self, uplinks: list[Uplink]) -> None:
        self.uplinks = uplinks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="lifeveil-load-fleet", daemon=True)
        self._ready = threading.Event()

    def _main(self) -> None:
        async def runner() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await asyncio.gather(*(u.run(self._stop) for u in self.uplinks))

        asyncio.run(runner())

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


def run_load(
    base_url: str,
    user_token: str,
    *,
    cafile: str,
    wire: WireSpec,
    config: LoadConfig,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the load against a server on loopback; returns the measurements."""
    if urlparse(base_url).hostname not in LOOPBACK:
        raise InputError(f"{base_url}: the load generator only targets 127.0.0.1 (loopback)")
    say = progress or (lambda _line: None)
    outboxes, uplinks = _devices(base_url, user_token, cafile, wire, config)
    fleet = _Fleet(uplinks)
    queries = [
        _QueryLoop(base_url, user_token, wire, cafile, config, config.seed + 1 + i)
        for i in range(config.query_clients)
    ]
    total = config.devices * config.records_per_device
    say(
        f"{config.devices} devices x {config.records_per_device} z at {config.rate_hz:g} Hz each; "
        f"{config.query_clients} query loops; up to {config.seconds:g} s"
    )
    start = time.monotonic()
    fleet.start()
    for q in queries:
        q.start()
    timeline = _watch(outboxes, total, start, config.seconds, say)
    elapsed = time.monotonic() - start
    for q in queries:
        q.stop_event.set()
    for q in queries:
        q.join(30)
    fleet.stop()
    return _report(config, outboxes, uplinks, queries, timeline, elapsed)


def _devices(
    base_url: str, user_token: str, cafile: str, wire: WireSpec, config: LoadConfig
) -> tuple[list[MemoryOutbox], list[Uplink]]:
    rng = np.random.default_rng(config.seed)
    run_id = f"{int(time.time())}-{rng.integers(1 << 30)}"
    outboxes, uplinks = [], []
    with QueryClient(base_url, user_token, wire=wire, cafile=cafile) as client:
        for i in range(config.devices):
            creds = client.register_device(f"load-{run_id}-{i}")
            z = rng.standard_normal((config.records_per_device, wire.z_dim)).astype(np.float32)
            now_us = time.time_ns() // 1000
            outbox = MemoryOutbox([ZRecord(s, now_us + s, z[s]) for s in range(len(z))])
            uplink_config = UplinkConfig(
                url=creds.uplink_url,
                token=creds.token,
                wire=wire,
                rate_hz=config.rate_hz,
                cafile=cafile,
                drain_s=2.0,
            )
            outboxes.append(outbox)
            uplinks.append(
                Uplink(uplink_config, next_record=outbox.next_record, on_ack=outbox.on_ack)
            )
    return outboxes, uplinks


def _watch(
    outboxes: list[MemoryOutbox], total: int, start: float, seconds: float, say: Progress
) -> list[tuple[float, int]]:
    """Sample the number of acked records every 0.5 s until done or out of time."""
    timeline, last_report = [(0.0, 0)], start
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        acked = sum(len(o.acked) for o in outboxes)
        timeline.append((now - start, acked))
        if now - last_report >= 5:
            say(f"  {now - start:5.1f} s: {acked} z acked")
            last_report = now
        if acked >= total or now - start >= seconds:
            return timeline


def _report(
    config: LoadConfig,
    outboxes: list[MemoryOutbox],
    uplinks: list[Uplink],
    queries: list[_QueryLoop],
    timeline: list[tuple[float, int]],
    elapsed: float,
) -> dict[str, Any]:
    stored = sum(1 for o in outboxes for s in o.acked.values() if s is AckStatus.STORED)
    t_end, acked_end = timeline[-1]
    latencies = [x for q in queries for x in q.latencies]
    rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(timeline, timeline[1:], strict=False)]
    frames = sum(u.stats.real_sent + u.stats.cover_sent for u in uplinks)
    summary = {
        "devices": config.devices,
        "upload_seconds": round(t_end, 2),
        "z_acked": acked_end,
        "z_stored": stored,
        "ingest_records_per_s": round(acked_end / t_end, 1) if t_end else 0.0,
        "ingest_peak_records_per_s_0_5s": round(max(rates, default=0.0), 1),
        "frames_per_s_incl_cover": round(frames / elapsed, 1),
        "queries": len(latencies),
        "queries_per_s": round(len(latencies) / elapsed, 1),
        "query_p50_ms": percentile_ms(latencies, 50),
        "query_p99_ms": percentile_ms(latencies, 99),
        "query_errors": sum(len(q.errors) for q in queries),
        "uplink_errors": [str(u.error) for u in uplinks if u.error is not None],
        "reconnects": sum(max(0, u.stats.connects - 1) for u in uplinks),
    }
    return {
        "config": asdict(config),
        "summary": summary,
        "ack_timeline": [[round(t, 2), n] for t, n in timeline],
        "query_error_samples": [e for q in queries for e in q.errors][:5],
    }


def run_local_load_test(
    config: LoadConfig,
    *,
    workdir: str | Path | None = None,
    progress: Progress | None = None,
    store_dsn: str = "",
) -> dict[str, Any]:
    """Start a local TLS server (SQLite with synchronous=FULL, or PostgreSQL at ``store_dsn``;
    per-token rate limit off), run :func:`run_load`, stop it.

    The report adds the server's record count, read from its store afterwards.
    """
    say = progress or (lambda _line: None)
    with tempfile.TemporaryDirectory(prefix="lifeveil-load-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        server = LocalServer(root / "server", z_dim=config.z_dim, store_dsn=store_dsn)
        # Every query thread shares one user token and queries back to back on purpose: the
        # per-token limit (a defence against one abusive client) would measure itself.
        server.config = replace(server.config, rate_limit_per_s=0.0)
        server.config.save()
        tenant = f"load-{time.time_ns()}"  # a PostgreSQL database may hold earlier runs
        token = server.add_tenant(tenant)
        kind = "PostgreSQL" if store_dsn else "SQLite synchronous=FULL"
        with server:
            say(f"server {server.base_url} (TLS, {kind}, no rate limit) is up")
            report = run_load(
                server.base_url,
                token,
                cafile=server.cafile,
                wire=server.config.wire,
                config=config,
                progress=say,
            )
        report["summary"]["store"] = "postgresql" if store_dsn else "sqlite"
        report["summary"]["server_records"] = _stored(server.config, tenant)
    report["machine"] = _machine()
    return report


def _stored(config: ServerConfig, tenant_name: str) -> int:
    """Records the server stored for the tenant (read from its store once it has stopped)."""
    store = admin.open_store(config)
    try:
        [tenant] = [t for t in store.list_tenants() if t.name == tenant_name]
        return store.count_records(tenant.id)
    finally:
        store.close()


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
