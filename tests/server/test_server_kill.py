"""Crash test: SIGKILL the server mid-stream; after restart every record is stored exactly once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from lifeveil.server import admin
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.protocol import UPLINK_PATH
from lifeveil.transport.record import ZRecord
from lifeveil.transport.uplink import MemoryOutbox, Uplink, UplinkConfig

from .server_helpers import ServerProcess, free_port, server_config, wait_until

pytestmark = pytest.mark.slow

N = 80


def test_kill_restart_exactly_once(tmp_path: Path):
    config = server_config(tmp_path / "srv")
    admin.init_data_dir(config)
    store = admin.open_store(config)
    tenant, _ = admin.create_tenant(store, "home", first_user=None)
    device = admin.issue_principal(store, "device", "cam", tenant)
    store.close()

    server = ServerProcess(config, free_port(), tmp_path / "server.log")
    rng = np.random.default_rng(0)
    zs = rng.standard_normal((N, config.z_dim)).astype(np.float32)
    outbox = MemoryOutbox([ZRecord(i, 1_000 * i, z) for i, z in enumerate(zs)])
    uplink_config = UplinkConfig(
        url=f"wss://127.0.0.1:{server.port}{UPLINK_PATH}",
        token=device.token,
        wire=config.wire,
        rate_hz=40,
        cafile=str(config.cert_path),
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
    )
    uplink = Uplink(uplink_config, next_record=outbox.next_record, on_ack=outbox.on_ack)
    try:
        server.start()
        uplink.start()
        wait_until(lambda: len(outbox.acked) >= 20, 15, "20 acks before the crash")
        server.kill()
        acked_before = len(outbox.acked)
        assert acked_before < N, "stream finished before the kill; lower rate_hz"
        server.start()
        wait_until(lambda: len(outbox.acked) == N, 30, f"all {N} acks after restart")
    finally:
        uplink.stop()
        server.stop()

    assert uplink.error is None
    assert uplink.stats.connects >= 2 and uplink.stats.disconnects >= 1
    assert set(outbox.acked) == set(range(N)) and outbox.unacked() == 0
    assert set(outbox.acked.values()) <= {AckStatus.STORED, AckStatus.DUPLICATE}

    db = sqlite3.connect(config.db_path)
    rows = db.execute("SELECT seq, z FROM z_records ORDER BY seq").fetchall()
    db.close()
    assert [seq for seq, _ in rows] == list(range(N))  # every record, exactly once
    stored = np.frombuffer(b"".join(z for _, z in rows), "<f4").reshape(N, -1)
    np.testing.assert_allclose(stored, zs, rtol=1e-3, atol=1e-3)  # fp16 on the wire
