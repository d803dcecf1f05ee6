"""Thirty seconds on the wire, as an eavesdropper records it: one TLS record size each way.

Issue 11: any record that is not a full frame is visible to a traffic observer. Neither side
sends WebSocket pings (the uplink and the server both disable them); link liveness comes from
the acks of the constant-rate cover frames, with the ack timeout shortened here to 2 s, so a
keepalive of any other size, if one existed, would show many times in the capture. The stream
alternates idle stretches (cover frames only) with bursts of real z.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lifeveil.bench.wiretap import TLS_APPLICATION_DATA, WireTap, steady_run
from lifeveil.device.identity import enroll
from lifeveil.transport.record import ZRecord
from lifeveil.transport.uplink import MemoryOutbox, Uplink, UplinkConfig

STREAM_S = 30.0
RATE_HZ = 10.0
BURSTS = ((4.0, 40), (14.0, 80), (24.0, 10))  # (seconds after start, real z queued then)


def _feed(outbox: MemoryOutbox, z_dim: int, start: float, stop: threading.Event) -> None:
    """Queue each burst of real z at its time; idle (cover frames only) in between."""
    rng = np.random.default_rng(0)
    seq = 0
    for at, count in BURSTS:
        if stop.wait(max(0.0, start + at - time.monotonic())):
            return
        for _ in range(count):
            z = rng.standard_normal(z_dim).astype(np.float32)
            outbox.put(ZRecord(seq, 1_700_000_000_000_000 + seq * 100_000, z))
            seq += 1


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_thirty_seconds_of_uplink_show_one_record_size(server, tmp_path: Path) -> None:  # noqa: ANN001
    user_token = server.add_tenant("home")
    server.start()
    with WireTap(server.port) as tap:
        identity = enroll(f"https://127.0.0.1:{tap.port}", user_token, "cam", cafile=server.cafile)
        tap.clear()
        wire = identity.wire_spec()
        config = UplinkConfig(
            url=identity.uplink_url,
            token=identity.token,
            wire=wire,
            rate_hz=RATE_HZ,
            cafile=identity.cafile,
            ack_timeout_s=2.0,
            drain_s=1.0,
        )
        outbox = MemoryOutbox()
        stop = threading.Event()
        start = time.monotonic()
        feeder = threading.Thread(target=_feed, args=(outbox, wire.z_dim, start, stop))
        with Uplink(config, next_record=outbox.next_record, on_ack=outbox.on_ack) as uplink:
            feeder.start()
            time.sleep(max(0.0, start + STREAM_S - time.monotonic()))
            stop.set()
            feeder.join()
        [conn] = tap.connections()

    queued = sum(count for _, count in BURSTS)
    assert uplink.stats.connects == 1, (
        "the session was dropped: the capture would show a new handshake"
    )
    assert len(outbox.acked) == queued and outbox.unacked() == 0
    up = steady_run(conn.records("up", TLS_APPLICATION_DATA))
    down = steady_run(conn.records("down", TLS_APPLICATION_DATA))
    sent = uplink.stats.real_sent + uplink.stats.cover_sent
    assert sent >= 0.8 * STREAM_S * RATE_HZ  # the tick kept its rate through idle and bursts
    # One size each way, from the first frame to the last: nothing else in between. Outside
    # the run only the session set-up and the close: up, the client's TLS Finished and the
    # WebSocket upgrade; down, TLS 1.3's encrypted handshake (application-data records), two
    # session tickets and the 101 answer.
    assert up.constant and len(up.run) == sent and len(up.before) + len(up.after) <= 4
    assert down.constant and len(down.run) >= sent - 2
    assert len(down.before) <= 8 and len(down.after) <= 2
    assert wire.frame_bytes < up.run[0] <= wire.frame_bytes + 64
