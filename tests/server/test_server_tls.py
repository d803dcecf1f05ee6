"""End to end over real TLS: uvicorn with the self-signed certificate, the real Uplink and client."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from lifeveil.errors import AuthError, ProtocolError, UnknownNameError
from lifeveil.server import admin
from lifeveil.transport.client import QueryClient
from lifeveil.transport.protocol import UPLINK_PATH, WIRE_HEADER
from lifeveil.transport.record import ZRecord
from lifeveil.transport.uplink import MemoryOutbox, Uplink, UplinkConfig

from .server_helpers import ServerProcess, free_port, server_config, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """A running server with tenant ``home`` and its user token."""
    data_dir = tmp_path_factory.mktemp("tls") / "srv"
    config = server_config(data_dir)
    admin.init_data_dir(config)
    store = admin.open_store(config)
    _, user = admin.create_tenant(store, "home")
    store.close()
    server = ServerProcess(config, free_port(), data_dir.parent / "server.log")
    server.start()
    try:
        assert user is not None
        yield server, user.token
    finally:
        server.stop()


def test_register_stream_and_query_over_tls(live):
    server, user_token = live
    cafile = str(server.config.cert_path)
    wire = server.config.wire
    with QueryClient(server.base_url, user_token, wire=wire, cafile=cafile) as client:
        assert client.info()["wire"] == wire.token()
        creds = client.register_device("kitchen")
        assert creds.uplink_url == f"wss://127.0.0.1:{server.port}{UPLINK_PATH}"

        rng = np.random.default_rng(0)
        zs = rng.standard_normal((30, wire.z_dim)).astype(np.float32)
        outbox = MemoryOutbox([ZRecord(i, 1_000_000 * i, z) for i, z in enumerate(zs)])
        config = UplinkConfig(
            url=creds.uplink_url, token=creds.token, wire=wire, rate_hz=50, cafile=cafile
        )
        with Uplink(config, next_record=outbox.next_record, on_ack=outbox.on_ack) as uplink:
            wait_until(lambda: len(outbox.acked) == 30, 20, "all 30 records acked")
            wait_until(lambda: uplink.stats.cover_sent >= 3, 5, "cover frames once idle")
        assert uplink.error is None and uplink.stats.real_sent == 30
        assert set(outbox.acked) == set(range(30)) and outbox.unacked() == 0

        hits = client.knn(zs[7], k=3)
        assert hits[0].device == "kitchen" and hits[0].seq == 7
        assert hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_server_refuses_websocket_compression(live):
    server, user_token = live
    with QueryClient(
        server.base_url, user_token, wire=server.config.wire, cafile=server.config.cert_path
    ) as client:
        creds = client.register_device("compression-probe")

    async def offered_deflate() -> str | None:
        ctx = ssl.create_default_context(cafile=str(server.config.cert_path))
        headers = {
            "Authorization": f"Bearer {creds.token}",
            WIRE_HEADER: server.config.wire.token(),
        }
        async with connect(
            creds.uplink_url, ssl=ctx, compression="deflate", additional_headers=headers, proxy=None
        ) as ws:
            assert ws.response is not None
            return ws.response.headers.get("Sec-WebSocket-Extensions")

    assert asyncio.run(offered_deflate()) is None


def test_no_plaintext_and_certificate_is_verified(live):
    server, user_token = live
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/v1/health", timeout=3)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        QueryClient(server.base_url, user_token).info()  # system CAs do not trust it


def test_bad_device_token_stops_the_uplink(live):
    server, _ = live
    config = UplinkConfig(
        url=f"wss://127.0.0.1:{server.port}{UPLINK_PATH}",
        token="lvd_this-token-was-never-issued",
        wire=server.config.wire,
        cafile=str(server.config.cert_path),
    )
    uplink = Uplink(config, next_record=lambda: None, on_ack=lambda s, a: None)
    uplink.start()
    wait_until(lambda: uplink.error is not None, 10, "the uplink to give up")
    uplink.stop()
    assert isinstance(uplink.error, AuthError) and "401" in str(uplink.error)


def test_query_client_reports_server_errors(live):
    server, user_token = live
    client = QueryClient(
        server.base_url, user_token, wire=server.config.wire, cafile=server.config.cert_path
    )
    with client, pytest.raises(UnknownNameError, match="HTTP 404: no head named 'nope'"):
        client.classify("nope", np.zeros(server.config.wire.z_dim, np.float32))


def test_untrusted_certificate_stops_the_uplink(live):
    server, _ = live
    config = UplinkConfig(
        url=f"wss://127.0.0.1:{server.port}{UPLINK_PATH}",
        token="lvd_irrelevant-token",
        wire=server.config.wire,
    )  # no cafile: the system trust store does not know the self-signed certificate
    uplink = Uplink(config, next_record=lambda: None, on_ack=lambda s, a: None)
    uplink.start()
    wait_until(lambda: uplink.error is not None, 10, "the uplink to give up")
    uplink.stop()
    assert isinstance(uplink.error, ProtocolError) and "not trusted" in str(uplink.error)
