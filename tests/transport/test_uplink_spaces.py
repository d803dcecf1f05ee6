"""UNKNOWN_SPACE on the uplink: the server answers it for one space tag; those records are
kept (not acked, not resent), one ERROR line names the tag, the other records flow at the same
constant rate; once the version is registered and the tag released, they go through."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from lifeveil.server.tls import ensure_self_signed_cert
from lifeveil.transport.frame import AckStatus, WireSpec, decode_frame, encode_ack
from lifeveil.transport.record import ZRecord
from lifeveil.transport.uplink import MemoryOutbox, Uplink, UplinkConfig

WIRE = WireSpec(z_dim=16)
KNOWN, UNKNOWN = 0x51C0, 0x3FA2


class SpaceServer:
    """A TLS WebSocket uplink server that stores frames of registered tags only."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.registered = {KNOWN}
        self.received: list[tuple[int, int]] = []  # (space, seq) of each real frame
        self.sizes: set[int] = set()
        self.port = 0
        self._cert, self._key = cert, key
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> SpaceServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    async def _handler(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):  # the device hung up: fine
            await self._serve(ws)

    async def _serve(self, ws: ServerConnection) -> None:
        async for message in ws:
            self.sizes.add(len(message))
            record = decode_frame(message, WIRE)
            if record is None:
                await ws.send(encode_ack(AckStatus.COVER))
                continue
            self.received.append((record.space, record.seq))
            known = record.space in self.registered
            status = AckStatus.STORED if known else AckStatus.UNKNOWN_SPACE
            await ws.send(encode_ack(status, record.seq))

    async def _main(self) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self._cert, self._key)
        async with serve(self._handler, "127.0.0.1", 0, ssl=ctx, ping_interval=None) as srv:
            self.port = srv.sockets[0].getsockname()[1]
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.05)


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def space_server(tmp_path: Path):  # noqa: ANN201
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed_cert(cert, key)
    with SpaceServer(cert, key) as srv:
        yield srv, cert


def records() -> list[ZRecord]:
    """Seqs 0..9, alternating tags: even seqs of the unknown tag."""
    rng = np.random.default_rng(0)
    return [
        ZRecord(seq, 1_700_000_000_000_000 + seq, rng.standard_normal(16).astype(np.float32),
                space=UNKNOWN if seq % 2 == 0 else KNOWN)
        for seq in range(10)
    ]  # fmt: skip


def test_unknown_space_keeps_its_records_and_the_others_flow(space_server, caplog):
    server, cert = space_server
    config = UplinkConfig(
        url=f"wss://127.0.0.1:{server.port}/v1/uplink",
        token="lvd_test",
        wire=WIRE,
        rate_hz=20,
        cafile=str(cert),
        max_in_flight=1,  # the next frame waits for the ack: no second unknown-tag frame
    )
    outbox = MemoryOutbox(records())
    with (
        caplog.at_level(logging.ERROR, logger="lifeveil.transport.uplink"),
        Uplink(config, next_record=outbox.next_record, on_ack=outbox.on_ack) as uplink,
    ):
        assert wait_for(lambda: len(outbox.acked) == 5)
        time.sleep(0.5)  # ten more ticks: cover frames only, the unknown tag is not resent
        assert sorted(outbox.acked) == [1, 3, 5, 7, 9]
        assert outbox.unacked() == 5 and outbox.held == {UNKNOWN}
        assert Counter(space for space, _ in server.received)[UNKNOWN] == 1
        assert uplink.stats.unknown_space == 1 and uplink.error is None
        # the version gets registered; releasing the tag sends the kept records
        server.registered.add(UNKNOWN)
        outbox.release_space(UNKNOWN)
        assert wait_for(lambda: outbox.unacked() == 0)
        assert uplink.stats.cover_sent > 10  # the tick never stopped
    assert set(outbox.acked.values()) == {AckStatus.STORED} and len(outbox.acked) == 10
    assert uplink.stats.connects == 1  # the stream stayed open throughout
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert f"space tag {UNKNOWN}" in error and "register_space" in error
    assert server.sizes == {WIRE.frame_bytes}  # real and cover frames: one size
