"""Group commit (IngestBatcher) and the bounded query pool (SearchPool)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from lifeveil.errors import AuthError
from lifeveil.server.ingest import IngestBatcher, SearchPool
from lifeveil.server.sqlite_store import SQLiteStore
from lifeveil.server.store import StoreUnavailableError
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord

D = 8


def _records(n: int, start: int = 0) -> list[ZRecord]:
    z = np.random.default_rng(start).standard_normal((n, D)).astype(np.float32)
    return [ZRecord(start + i, start + i, z[i]) for i in range(n)]


class CountingStore(SQLiteStore):
    """Counts transactions, to show that concurrent callers share them."""

    transactions = 0

    def put_records_many(self, batches):  # type: ignore[no-untyped-def]
        self.transactions += 1
        time.sleep(0.01)  # a slow disk: callers pile up behind the write in progress
        return super().put_records_many(batches)


def test_concurrent_ingests_share_transactions_and_get_their_own_statuses(tmp_path: Path):
    store = CountingStore(tmp_path / "z.db", z_dim=D)
    tenant = store.create_tenant("a")
    devices = [store.add_principal("device", f"cam{i}", f"h{i}", tenant.id) for i in range(8)]
    store.revoke_principal(devices[7].id)
    batcher = IngestBatcher(store)

    def upload(device):  # type: ignore[no-untyped-def]
        out = []
        for r in _records(20):
            try:
                out += batcher.put_records(device, [r])
            except AuthError:
                out.append("refused")
        return out

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(upload, devices))
    batcher.close()
    assert all(r == [AckStatus.STORED] * 20 for r in results[:7])
    assert results[7] == ["refused"] * 20  # one revoked device does not fail the others
    assert store.count_records(tenant.id) == 140
    assert store.transactions < 160 * 0.6  # grouped: far fewer commits than uploads
    store.close()


def test_full_queue_is_refused_with_a_clear_error(tmp_path: Path):
    store = SQLiteStore(tmp_path / "z.db", z_dim=D)
    tenant = store.create_tenant("a")
    device = store.add_principal("device", "cam", "h", tenant.id)
    batcher = IngestBatcher(store, max_waiting_records=1, wait_s=0.05)
    gate = threading.Semaphore(0)  # each write waits for one release
    original = store.put_records_many
    store.put_records_many = lambda batches: (gate.acquire(), original(batches))[1]  # type: ignore[method-assign]
    first = threading.Thread(target=batcher.put_records, args=(device, _records(1)))
    first.start()
    time.sleep(0.1)  # the writer holds the first batch; the next one waits in the queue
    second = threading.Thread(target=batcher.put_records, args=(device, _records(1, 5)))
    second.start()
    time.sleep(0.1)
    with pytest.raises(StoreUnavailableError, match="queue full"):
        batcher.put_records(device, _records(1, 9))
    gate.release(2)
    first.join(5)
    second.join(5)
    batcher.close()
    assert store.count_records(tenant.id) == 2
    store.close()


def test_search_pool_runs_off_the_loop_and_refuses_beyond_its_queue():
    pool = SearchPool(workers=1, max_waiting=1)
    release = threading.Event()

    async def main() -> list[object]:
        slow = [asyncio.create_task(pool.run(release.wait, 5)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(StoreUnavailableError, match="retry shortly"):
            await pool.run(lambda: None)
        release.set()
        return await asyncio.gather(*slow)

    assert asyncio.run(main()) == [True, True]
    pool.close()
