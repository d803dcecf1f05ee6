"""Issue 9 attack suite, server side: each test reproduces one hole and checks it is closed.

Run with ``pytest -m security``. In-process tests use the TestClient; the connection-level
ones (slow-loris, connection caps, TLS suites) start the real server over TLS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import stat
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.websockets import WebSocketDisconnect

from lifeveil.errors import ProtocolError
from lifeveil.server import admin
from lifeveil.server.run import RejectionLogLimit
from lifeveil.transport.frame import (
    FLAG_COVER,
    HEADER_BYTES,
    AckStatus,
    decode_ack,
    decode_frame,
    encode_cover_frame,
    encode_frame,
)
from lifeveil.transport.protocol import CLOSE_UNAUTHORIZED, KNN_PATH, UPLINK_PATH, WIRE_HEADER
from lifeveil.transport.record import ZRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.server_helpers import (  # noqa: E402
    ServerProcess,
    World,
    auth,
    free_port,
    make_world,
    server_config,
    vec,
)

pytestmark = pytest.mark.security


@pytest.fixture
def world(tmp_path: Path):
    w = make_world(tmp_path / "srv")
    try:
        yield w
    finally:
        w.client.close()
        w.store.close()


def _tenant(world: World, name: str):
    tenant = world.store.get_tenant(name)
    assert tenant is not None
    return tenant


def _ws(world: World, token: str):
    headers = {"Authorization": f"Bearer {token}", WIRE_HEADER: world.wire.token()}
    return world.client.websocket_connect(UPLINK_PATH, headers=headers)


# -- item 1: revocation takes effect on open sessions ------------------------------------------
def test_revoke_mid_stream_stores_nothing_after_the_revoke(world: World):
    device = world.store.get_device(_tenant(world, "a").id, "cam-a")
    assert device is not None
    with _ws(world, world.tokens["a_dev"]) as ws:
        for i in range(5):
            ws.send_bytes(encode_frame(ZRecord(i, i, vec(i)), world.wire))
            if i:
                assert decode_ack(ws.receive_bytes()).status is AckStatus.STORED
        ws.send_bytes(encode_cover_frame(world.wire))  # its arrival releases the 5th ack
        assert decode_ack(ws.receive_bytes()).status is AckStatus.STORED
        admin.revoke_token(world.store, device)  # committed: the revoke is acknowledged
        with pytest.raises(WebSocketDisconnect) as info:
            for i in range(5, 30):
                ws.send_bytes(encode_frame(ZRecord(i, i, vec(i)), world.wire))
                ws.receive_bytes()
    assert info.value.code == CLOSE_UNAUTHORIZED and "revoked" in info.value.reason
    assert world.store.count_records(_tenant(world, "a").id) == 5


def test_put_records_refuses_a_revoked_device(world: World):
    from lifeveil.errors import AuthError

    device = world.store.get_device(_tenant(world, "a").id, "cam-a")
    assert device is not None
    world.store.revoke_principal(device.id)
    with pytest.raises(AuthError, match="revoked"):
        world.store.put_records(device, [ZRecord(0, 0, vec(0))])


# -- item 5: token lifecycle ---------------------------------------------------------------------
def _status(world: World, token: str) -> int:
    return world.client.get("/v1/devices", headers=auth(token, False)).status_code


def test_rotate_and_revoke_every_token_kind(world: World):
    a = _tenant(world, "a")
    user = world.store.get_principal("user", "owner", a.id)
    assert user is not None and _status(world, world.tokens["a_user"]) == 200
    new = admin.rotate_token(world.store, user)
    assert _status(world, world.tokens["a_user"]) == 401  # the old token stops at once
    assert _status(world, new.token) == 200
    admin.revoke_token(world.store, user)
    assert _status(world, new.token) == 401
    admin_p = world.store.get_principal("admin", "admin", None)
    assert admin_p is not None
    rotated = admin.rotate_token(world.store, admin_p)
    assert rotated.token.startswith("lva_") and rotated.token != world.admin_token
    now = time.time_ns() // 1000
    states = {(t.kind, t.tenant, t.name): t.state(now) for t in world.store.list_tokens()}
    assert (
        states[("user", "a", "owner")] == "revoked" and states[("user", "b", "owner")] == "active"
    )
    assert states[("admin", None, "admin")] == "active"
    actions = [e.action for e in world.store.read_audit()]
    assert actions.count("rotate-token") == 2 and "revoke-token" in actions


def test_expired_token_is_refused(world: World):
    a = _tenant(world, "a")
    past = time.time_ns() // 1000 - 1
    issued = admin.issue_principal(world.store, "user", "temp", a, expires_us=past)
    assert _status(world, issued.token) == 401
    soon = admin.issue_principal(world.store, "user", "later", a, expires_us=past + 3_600_000_000)
    assert _status(world, soon.token) == 200


def test_audit_log_is_append_only(world: World):
    import sqlite3

    admin.audit(world.store, "cli", "test", "x")
    db = sqlite3.connect(world.config.db_path)
    try:
        for sql in ("UPDATE audit SET actor = 'me'", "DELETE FROM audit"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(sql)
    finally:
        db.close()
    assert world.store.read_audit()[-1].action == "test"


def test_tokens_cli_lists_rotates_and_revokes(world: World, capsys):
    from lifeveil.cli.main import main

    base = ["server"]
    tail = ["--data-dir", str(world.config.data_dir)]
    assert main([*base, "tokens", "list", *tail]) == 0
    listing = capsys.readouterr().out
    assert "cam-a" in listing and "lvd_" not in listing  # names and states, never tokens
    assert main([*base, "tokens", "rotate", "device", "cam-a", "--tenant", "a", *tail]) == 0
    assert "lvd_" in capsys.readouterr().out
    assert main([*base, "tokens", "revoke", "device", "cam-a", "--tenant", "a", *tail]) == 0
    assert main([*base, "audit", *tail]) == 0
    log = capsys.readouterr().out
    assert "rotate-token" in log and "revoke-token" in log


# -- item 6: scopes ----------------------------------------------------------------------------------
def _knn(world: World, token: str, **extra: object) -> httpx.Response:
    return world.client.post(KNN_PATH, json={"z": vec(0).tolist(), **extra}, headers=auth(token))


def test_device_tokens_upload_only_unless_granted_own_records(world: World):
    a = _tenant(world, "a")
    assert _knn(world, world.tokens["a_dev"]).status_code == 403
    scopes = admin.device_scopes("cam-q", allow_query=True)
    cam_q = admin.issue_principal(world.store, "device", "cam-q", a, scopes)
    for name, token in (("cam-a", world.tokens["a_dev"]), ("cam-q", cam_q.token)):
        with _ws(world, token) as ws:
            ws.send_bytes(encode_frame(ZRecord(0, 0, vec(0)), world.wire))
            ws.send_bytes(encode_cover_frame(world.wire))
            assert decode_ack(ws.receive_bytes()).status is AckStatus.STORED, name
    r = _knn(world, cam_q.token)
    assert r.status_code == 200 and {h["device"] for h in r.json()["neighbors"]} == {"cam-q"}
    assert _knn(world, cam_q.token, device="cam-a").status_code == 403


def test_user_limited_to_devices(world: World):
    a = _tenant(world, "a")
    limited = admin.issue_principal(world.store, "user", "guest", a, admin.user_scopes(["cam-a"]))
    r = _knn(world, limited.token)
    assert r.status_code == 200
    assert _knn(world, limited.token, device="cam-x").status_code == 403
    listed = world.client.get("/v1/devices", headers=auth(limited.token, False)).json()
    assert [d["name"] for d in listed["devices"]] == ["cam-a"]


# -- per-token rate limit ------------------------------------------------------------------------
def test_rate_limit_answers_429_with_retry_after(tmp_path: Path):
    w = make_world(tmp_path / "srv", rate_limit_per_s=1.0, rate_limit_burst=3)
    try:
        codes = [_status(w, w.tokens["a_user"]) for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = w.client.get("/v1/devices", headers=auth(w.tokens["a_user"], False))
        assert int(r.headers["retry-after"]) >= 1
        assert _status(w, w.tokens["b_user"]) == 200  # per token, not global
    finally:
        w.client.close()
        w.store.close()


# -- item 7: permissions -------------------------------------------------------------------------
def test_server_files_are_private_even_in_an_existing_folder(tmp_path: Path):
    data_dir = tmp_path / "srv"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "lifeveil.db").touch(mode=0o644)
    os.chmod(data_dir / "lifeveil.db", 0o644)
    w = make_world(data_dir)
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for p in data_dir.rglob("*"):
            want = 0o700 if p.is_dir() else 0o600
            if p.name == "cert.pem":
                continue  # the certificate is public by design
            assert stat.S_IMODE(p.stat().st_mode) == want, p
    finally:
        w.client.close()
        w.store.close()


# -- item 8: minor ---------------------------------------------------------------------------------
def test_cover_frame_with_a_sequence_number_is_refused(world: World):
    cover = bytearray(encode_cover_frame(world.wire))
    assert cover[5] & FLAG_COVER
    cover[16:24] = (7).to_bytes(8, "little")
    with pytest.raises(ProtocolError, match="cover frame must carry seq 0"):
        decode_frame(bytes(cover), world.wire)
    assert HEADER_BYTES == 32


def test_rejected_handshake_logging_is_rate_limited():
    now = [0.0]
    limit = RejectionLogLimit(per_minute=3, clock=lambda: now[0])

    def rec(msg: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.INFO, "", 0, msg, None, None)

    passed = [limit.filter(rec("connection rejected (401 Unauthorized)")) for _ in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert limit.filter(rec("Application startup complete."))
    now[0] = 61.0
    summary = rec("connection rejected (401 Unauthorized)")
    assert limit.filter(summary) and "7 rejected connections" in summary.getMessage()


# -- item 4 and TLS: against the real server --------------------------------------------------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("sec") / "srv"
    config = server_config(
        data_dir, header_timeout_s=2.0, max_connections=1200, max_connections_per_ip=400
    )
    admin.init_data_dir(config)
    server = ServerProcess(config, free_port(), data_dir.parent / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _client_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _open(port: int, source: str, tls: bool, head: bytes | None) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=_client_ctx() if tls else None, local_addr=(source, 0)
    )
    if head:
        writer.write(head)
        await writer.drain()
    return writer


async def _health_under_attack(port: int, cafile: str) -> tuple[float, int, list[float]]:
    """300 slow-loris (TLS, half a request head) and 500 idle TCP connections, then health."""
    partial = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: "
    attackers = []
    for i in range(300):
        attackers.append(await _open(port, f"127.0.0.{2 + i % 50}", True, partial))
    for i in range(500):
        attackers.append(await _open(port, f"127.0.1.{2 + i % 50}", False, None))
    times = []
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=cafile)) as client:
        for _ in range(5):
            t0 = time.perf_counter()
            r = await client.get(f"https://127.0.0.1:{port}/v1/health", timeout=5)
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200
    await asyncio.sleep(3.0)  # past the 2 s header deadline
    closed = sum(1 for w in attackers[:300] if w.transport.is_closing() or _peer_closed(w))
    for w in attackers:
        w.transport.abort()
    return max(times), closed, times


def _peer_closed(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_health_answers_under_slow_loris_and_idle_connections(live):
    worst, closed, times = asyncio.run(_health_under_attack(live.port, str(live.config.cert_path)))
    assert worst < 1.0, times
    assert closed >= 290, f"only {closed} of 300 slow-loris connections were closed"


@pytest.mark.slow
def test_tls12_cbc_suites_are_refused(live):
    ctx = _client_ctx()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("AES128-SHA:AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA")
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", live.port), timeout=5) as raw,
        ctx.wrap_socket(raw),
    ):
        pass
    good = _client_ctx()
    good.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", live.port), timeout=5) as raw,
        good.wrap_socket(raw) as tls,
    ):
        assert "GCM" in tls.cipher()[0] or "CHACHA20" in tls.cipher()[0]
