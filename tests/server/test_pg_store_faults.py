"""PostgreSQL store faults: wrong DSN, server down at start and mid-stream, nothing lost.

Runs against the real embedded PostgreSQL (``embedded_postgres``), stopped and restarted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from lifeveil.errors import InputError
from lifeveil.server import pg_store_pool
from lifeveil.server.pg_store import PostgresStore
from lifeveil.server.store import StoreUnavailableError
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord

D = 8


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries that give up in well under a second."""
    monkeypatch.setattr(pg_store_pool, "RETRY_DELAYS_S", (0.05, 0.1))


def _records(start: int, n: int) -> list[ZRecord]:
    rng = np.random.default_rng(start)
    return [
        ZRecord(s, 1000 + s, rng.standard_normal(D).astype(np.float32))
        for s in range(start, start + n)
    ]


def test_malformed_dsn_is_one_clear_line():
    pytest.importorskip("psycopg")
    with pytest.raises(InputError, match="not a PostgreSQL connection string") as info:
        PostgresStore("this is not a dsn", z_dim=D)
    assert "\n" not in str(info.value)


def test_server_down_at_start(quick_retries: None, tmp_path):
    pytest.importorskip("psycopg")
    dsn = f"postgresql://postgres@/lifeveil?host={tmp_path}"  # no server listens there
    with pytest.raises(StoreUnavailableError, match="is unavailable") as info:
        PostgresStore(dsn, z_dim=D)
    assert "\n" not in str(info.value) and "is it running" in str(info.value)


def test_missing_database_is_not_retried(embedded_postgres):
    with pytest.raises(InputError, match="does not exist"):
        PostgresStore(embedded_postgres.dsn("no_such_database"), z_dim=D)


@pytest.fixture
def pg_store(embedded_postgres) -> Iterator[PostgresStore]:
    store = PostgresStore(embedded_postgres.new_database(), z_dim=D)
    yield store
    store.close()


@pytest.mark.slow
def test_stop_mid_stream_then_resend_loses_nothing(
    embedded_postgres, pg_store: PostgresStore, quick_retries: None
):
    tenant = pg_store.create_tenant("a")
    device = pg_store.add_principal("device", "cam", "h", tenant.id)
    first, second = _records(0, 40), _records(40, 40)
    assert pg_store.put_records(device, first) == [AckStatus.STORED] * 40
    embedded_postgres.stop()
    try:
        with pytest.raises(StoreUnavailableError) as info:
            pg_store.put_records(device, second)  # not acked: the device keeps it in its outbox
        assert "\n" not in str(info.value)
    finally:
        embedded_postgres.start()
    # The device resends everything not acked, and a little that was (lost acks).
    assert pg_store.put_records(device, second) == [AckStatus.STORED] * 40
    assert pg_store.put_records(device, first[-5:]) == [AckStatus.DUPLICATE] * 5
    assert pg_store.count_records(tenant.id) == 80
    # The background indexer rode out the outage too: every z reaches the HNSW table once.
    assert pg_store.wait_indexed(60) and pg_store.tail_size() == 0
    assert pg_store._query("SELECT COUNT(*) FROM lifeveil_z_ann") == [(80,)]


@pytest.mark.slow
def test_a_restart_within_the_retry_window_is_ridden_out(
    embedded_postgres, pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(pg_store_pool, "RETRY_DELAYS_S", (0.5, 1.0, 2.0, 4.0))
    tenant = pg_store.create_tenant("a")
    device = pg_store.add_principal("device", "cam", "h", tenant.id)
    embedded_postgres.stop()
    restart = threading.Timer(1.0, embedded_postgres.start)
    restart.start()
    try:
        assert pg_store.put_records(device, _records(0, 10)) == [AckStatus.STORED] * 10
    finally:
        restart.join()
    assert pg_store.count_records(tenant.id) == 10
