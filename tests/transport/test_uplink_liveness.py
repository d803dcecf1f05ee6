"""The uplink sends no WebSocket pings; a server that stops acking is detected by the ack
timeout and the session is reconnected."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve

from lifeveil.server.tls import ensure_self_signed_cert
from lifeveil.transport.frame import WireSpec
from lifeveil.transport.uplink import MemoryOutbox, Uplink, UplinkConfig


def _silent_server(cert: Path, key: Path, sizes: list[int], ready: threading.Event) -> None:
    """A TLS WebSocket server on a free port that reads frames and never acks."""

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            sizes.append(len(message))

    async def main() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        async with serve(handler, "127.0.0.1", 0, ssl=ctx, ping_interval=None) as server:
            ready.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            ready.set()
            await asyncio.sleep(8)

    asyncio.run(main())


def test_missing_acks_reconnect_and_no_pings(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_self_signed_cert(cert, key)
    sizes: list[int] = []
    ready = threading.Event()
    thread = threading.Thread(target=_silent_server, args=(cert, key, sizes, ready), daemon=True)
    thread.start()
    assert ready.wait(10)
    wire = WireSpec(z_dim=16)
    config = UplinkConfig(
        url=f"wss://127.0.0.1:{ready.port}/v1/uplink",  # type: ignore[attr-defined]
        token="lvd_test",
        wire=wire,
        rate_hz=20,
        cafile=str(cert),
        ack_timeout_s=1.0,
        backoff_initial_s=0.1,
        backoff_max_s=0.2,
    )
    outbox = MemoryOutbox([])
    with Uplink(config, next_record=outbox.next_record, on_ack=outbox.on_ack) as uplink:
        deadline = time.monotonic() + 6
        while uplink.stats.connects < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert uplink.stats.connects >= 2, "a silent server was not detected"
    assert sizes and set(sizes) == {wire.frame_bytes}  # only whole frames, cover included
