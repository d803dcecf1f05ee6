"""HTTP/WebSocket API through FastAPI's TestClient on a real SQLite file."""

from __future__ import annotations

import time

import numpy as np
import pytest
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from lifeveil.transport.frame import (
    ACK_BYTES,
    AckStatus,
    WireSpec,
    decode_ack,
    encode_cover_frame,
    encode_frame,
)
from lifeveil.transport.protocol import (
    CLASSIFY_PATH,
    DEVICES_PATH,
    FRAMES_PATH,
    HEADS_PATH,
    KNN_PATH,
    TIMELINE_PATH,
    UPLINK_PATH,
    WIRE_HEADER,
)
from lifeveil.transport.record import ZRecord

from .server_helpers import Z_DIM, World, auth, frames, vec

OCTET = {"Content-Type": "application/octet-stream"}


def post_frames(w: World, token: str, body: bytes) -> list[tuple[AckStatus, int]]:
    r = w.client.post(FRAMES_PATH, content=body, headers={**auth(token, fresh=False), **OCTET})
    assert r.status_code == 200, r.text
    assert len(r.content) == ACK_BYTES * (len(body) // w.wire.frame_bytes)
    data = r.content
    return [tuple(decode_ack(data[i : i + ACK_BYTES])) for i in range(0, len(data), ACK_BYTES)]


def upload(w: World, token: str, n: int, seed0: int = 0, t0: int = 0) -> list[np.ndarray]:
    zs = [vec(seed0 + i) for i in range(n)]
    records = [ZRecord(i, t0 + i * 1_000_000, z) for i, z in enumerate(zs)]
    post_frames(w, token, frames(w.wire, records))
    return zs


def post(w: World, path: str, token: str, body: object, **kw: object):
    return w.client.post(path, json=body, headers=auth(token), **kw)


# -- basics -----------------------------------------------------------------------------------
def test_health_and_info(world: World):
    assert world.client.get("/v1/health").json() == {"status": "ok"}
    info = world.client.get("/v1/info").json()
    assert info["z_dim"] == Z_DIM and info["frame_bytes"] == world.wire.frame_bytes
    assert info["wire"] == "1;16;fp16"


def test_no_compression_even_if_asked(world: World):
    r = world.client.get("/v1/info", headers={"Accept-Encoding": "gzip, br, deflate"})
    assert "content-encoding" not in r.headers


# -- uplink over HTTPS ------------------------------------------------------------------------
def test_frames_are_stored_and_resends_deduplicated(world: World):
    records = [ZRecord(i, 1000 + i, vec(i)) for i in range(3)]
    body = frames(world.wire, [records[0], None, records[1], records[2], None])
    acks = post_frames(world, world.tokens["a_dev"], body)
    stored, cover = AckStatus.STORED, AckStatus.COVER
    assert acks == [(stored, 0), (cover, 0), (stored, 1), (stored, 2), (cover, 0)]
    again = post_frames(world, world.tokens["a_dev"], frames(world.wire, records[1:]))
    assert again == [(AckStatus.DUPLICATE, 1), (AckStatus.DUPLICATE, 2)]
    changed = ZRecord(2, 1002, vec(99))
    assert post_frames(world, world.tokens["a_dev"], frames(world.wire, [changed])) == [
        (AckStatus.CONFLICT, 2)
    ]
    tenant_a = world.store.get_tenant("a")
    assert tenant_a is not None and world.store.count_records(tenant_a.id) == 3
    kept = world.store.get_records(tenant_a.id, [("cam-a", 2)])
    np.testing.assert_array_equal(kept.z[0], records[2].z.astype(np.float16).astype(np.float32))


def test_all_cover_batch_is_acked_and_stores_nothing(world: World):
    acks = post_frames(world, world.tokens["a_dev"], frames(world.wire, [None] * 4))
    assert acks == [(AckStatus.COVER, 0)] * 4
    assert world.store.count_records(world.store.get_tenant("a").id) == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"", OCTET, 400, "whole frames"),
        (b"\x00" * 10, OCTET, 400, "whole frames"),
        (None, {"Content-Type": "application/json"}, 415, "octet-stream"),
        ("wrong-dim", OCTET, 400, "frame carries z_dim=8; this server stores d=16"),
        ("nan", OCTET, 400, "NaN or inf"),
        ("too-many", OCTET, 413, "frames"),
        ("bad-magic", OCTET, 400, "frame 1: bad frame magic"),
    ],
)
def test_bad_frame_posts_are_4xx(world: World, body, headers, status, message):
    good = encode_frame(ZRecord(0, 0, vec(0)), world.wire)
    if body is None:
        body = good
    elif body == "wrong-dim":
        body = encode_frame(ZRecord(0, 0, vec(0, 8)), WireSpec(z_dim=8))
    elif body == "nan":
        body = good[:32] + b"\x00\x7e" + good[34:]
    elif body == "too-many":
        body = good * (world.config.max_frames_per_post + 1)
    elif body == "bad-magic":
        body = good + b"XXXX" + good[4:]
    r = world.client.post(
        FRAMES_PATH, content=body, headers={**auth(world.tokens["a_dev"], False), **headers}
    )
    assert r.status_code == status, r.text
    assert message in r.json()["message"]
    assert world.store.count_records(world.store.get_tenant("a").id) == 0  # type: ignore[union-attr]


def test_only_devices_may_upload(world: World):
    body = frames(world.wire, [None])
    r = world.client.post(
        FRAMES_PATH, content=body, headers={**auth(world.tokens["a_user"], False), **OCTET}
    )
    assert r.status_code == 403 and "device token" in r.json()["message"]
    r = world.client.post(FRAMES_PATH, content=body, headers=OCTET)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


# -- uplink over WebSocket --------------------------------------------------------------------
def ws_headers(w: World, token: str, wire: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", WIRE_HEADER: wire or w.wire.token()}


def test_websocket_uplink_acks_on_next_frame(world: World):
    recs = [ZRecord(i, i, vec(i)) for i in range(3)]
    with world.client.websocket_connect(
        UPLINK_PATH, headers=ws_headers(world, world.tokens["a_dev"])
    ) as ws:
        ws.send_bytes(encode_frame(recs[0], world.wire))
        ws.send_bytes(encode_cover_frame(world.wire))
        assert decode_ack(ws.receive_bytes()) == (AckStatus.STORED, 0)
        ws.send_bytes(encode_frame(recs[1], world.wire))
        assert decode_ack(ws.receive_bytes()) == (AckStatus.COVER, 0)
        ws.send_bytes(encode_frame(recs[0], world.wire))  # a resend
        assert decode_ack(ws.receive_bytes()) == (AckStatus.STORED, 1)
        ws.send_bytes(encode_cover_frame(world.wire))
        assert decode_ack(ws.receive_bytes()) == (AckStatus.DUPLICATE, 0)
    assert world.store.count_records(world.store.get_tenant("a").id) == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("token_key", "wire", "status", "message"),
    [
        (None, None, 401, "missing Authorization"),
        ("bogus", None, 401, "unknown or revoked token"),
        ("a_user", None, 403, "device token"),
        ("a_dev", "1;32;fp16", 400, "expects v1 d=16 fp16"),
        ("a_dev", "1;16;int8", 400, "expects"),
        ("a_dev", "garbage", 400, "malformed"),
    ],
)
def test_websocket_handshake_refusals(world: World, token_key, wire, status, message):
    headers = (
        {}
        if token_key is None
        else ws_headers(world, world.tokens.get(token_key, "lvd_x" * 4), wire)
    )
    with (
        pytest.raises(WebSocketDenialResponse) as info,
        world.client.websocket_connect(UPLINK_PATH, headers=headers),
    ):
        pass
    assert info.value.status_code == status
    assert message in info.value.json()["message"]


@pytest.mark.parametrize("bad", ["short", "text", "nan"])
def test_websocket_bad_frame_closes_with_4400(world: World, bad):
    good = encode_frame(ZRecord(0, 0, vec(0)), world.wire)
    with world.client.websocket_connect(
        UPLINK_PATH, headers=ws_headers(world, world.tokens["a_dev"])
    ) as ws:
        if bad == "text":
            ws.send_text("hello")
        elif bad == "short":
            ws.send_bytes(good[:-1])
        else:
            ws.send_bytes(good[:32] + b"\x00\x7c" + good[34:])
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_bytes()
    assert info.value.code == 4400 and info.value.reason


# -- registration and administration ---------------------------------------------------------
def test_user_registers_device_and_token_is_shown_once(world: World):
    r = post(world, DEVICES_PATH, world.tokens["a_user"], {"name": "doorbell"})
    assert r.status_code == 201
    token = r.json()["token"]
    assert token.startswith("lvd_")
    raw = world.store.find_principal  # the store holds only the hash
    assert raw(token) is None
    acks = post_frames(world, token, frames(world.wire, [ZRecord(0, 0, vec(0))]))
    assert acks == [(AckStatus.STORED, 0)]
    listed = world.client.get(DEVICES_PATH, headers=auth(world.tokens["a_user"], False)).json()
    assert {d["name"]: d["n_records"] for d in listed["devices"]} == {"cam-a": 0, "doorbell": 1}
    again = post(world, DEVICES_PATH, world.tokens["a_user"], {"name": "doorbell"})
    assert again.status_code == 409


def test_admin_endpoints(world: World):
    r = post(world, "/v1/admin/tenants", world.admin_token, {"name": "c"})
    assert r.status_code == 201 and r.json()["token"].startswith("lvu_")
    assert post(world, "/v1/admin/tenants", world.admin_token, {"name": "c"}).status_code == 409
    r = post(world, "/v1/admin/tenants/c/users", world.admin_token, {"name": "kid"})
    assert r.status_code == 201
    assert (
        post(world, "/v1/admin/tenants/zz/users", world.admin_token, {"name": "x"}).status_code
        == 404
    )
    assert (
        post(world, "/v1/admin/tenants", world.tokens["a_user"], {"name": "d"}).status_code == 403
    )
    assert (
        post(world, "/v1/admin/tenants", world.admin_token, {"name": "../etc"}).status_code == 422
    )


def test_revoked_device_is_refused(world: World):
    tenant = world.store.get_tenant("a")
    device = world.store.get_device(tenant.id, "cam-a")  # type: ignore[union-attr]
    world.store.revoke_principal(device.id)  # type: ignore[union-attr]
    r = world.client.post(
        FRAMES_PATH,
        content=frames(world.wire, [None]),
        headers={**auth(world.tokens["a_dev"], False), **OCTET},
    )
    assert r.status_code == 401


# -- queries and tenant isolation --------------------------------------------------------------
def test_knn_returns_own_records_only_and_never_z(world: World):
    za = upload(world, world.tokens["a_dev"], 5, seed0=0)
    upload(world, world.tokens["b_dev"], 5, seed0=100)
    r = post(world, KNN_PATH, world.tokens["a_dev"], {"z": za[3].tolist(), "k": 10})
    assert r.status_code == 403 and "'query' scope" in r.json()["message"]  # upload only
    for token in (world.tokens["a_user"],):
        r = post(world, KNN_PATH, token, {"z": za[3].tolist(), "k": 10})
        assert r.status_code == 200, r.text
        hits = r.json()["neighbors"]
        assert {h["device"] for h in hits} == {"cam-a"} and len(hits) == 5
        assert hits[0]["seq"] == 3 and hits[0]["score"] == pytest.approx(1.0, abs=1e-3)
        assert all(set(h) == {"device", "seq", "timestamp_us", "score"} for h in hits)
    r = post(world, KNN_PATH, world.tokens["b_user"], {"z": za[3].tolist(), "k": 10})
    assert {h["device"] for h in r.json()["neighbors"]} == {"cam-b"}
    r = post(world, KNN_PATH, world.tokens["b_user"], {"z": za[3].tolist(), "device": "cam-a"})
    assert r.status_code == 404  # A's device does not exist for B


def _train_activity_head(world: World) -> None:
    # Tenant a: records 0..9 near +e0 ("sitting"), 10..19 near -e0 ("walking").
    rng = np.random.default_rng(5)
    base = np.zeros(Z_DIM, np.float32)
    base[0] = 3.0
    records = []
    for i in range(20):
        z = (base * (1 if i < 10 else -1) + rng.normal(0, 0.3, Z_DIM)).astype(np.float32)
        records.append(ZRecord(i, 1_000_000 * i, z))
    post_frames(world, world.tokens["a_dev"], frames(world.wire, records))
    examples = [
        {"device": "cam-a", "seq": i, "label": "sitting" if i < 10 else "walking"}
        for i in range(0, 20, 2)
    ]
    r = post(world, HEADS_PATH + "/activity/train", world.tokens["a_user"], {"examples": examples})
    assert r.status_code == 201, r.text
    assert r.json()["classes"] == ["sitting", "walking"]


def test_heads_classify_and_timeline(world: World):
    _train_activity_head(world)
    a_user = world.tokens["a_user"]
    q = np.zeros(Z_DIM, np.float32)
    q[0] = -3.0
    r = post(world, CLASSIFY_PATH, a_user, {"head": "activity", "z": [q.tolist(), (-q).tolist()]})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds] == ["walking", "sitting"]
    assert preds[0]["confidence"] > 0.9
    body = {"head": "activity", "t_start_us": 0, "t_end_us": 30_000_000}
    r = post(world, TIMELINE_PATH, a_user, body)
    assert r.status_code == 200, r.text
    segments = r.json()["segments"]
    assert [(s["label"], s["start_us"], s["end_us"], s["n"]) for s in segments] == [
        ("sitting", 0, 9_000_000, 10),
        ("walking", 10_000_000, 19_000_000, 10),
    ]
    r = post(world, TIMELINE_PATH, a_user, {**body, "max_gap_us": 500_000})
    assert len(r.json()["segments"]) == 20  # records 1 s apart, gap limit 0.5 s
    heads = world.client.get(HEADS_PATH, headers=auth(a_user, False)).json()["heads"]
    assert [h["name"] for h in heads] == ["activity"]


def test_other_tenant_cannot_use_heads_or_records(world: World):
    _train_activity_head(world)
    b_user, b_dev = world.tokens["b_user"], world.tokens["b_dev"]
    z = [vec(0).tolist()]
    for token in (b_user,):
        r = post(world, CLASSIFY_PATH, token, {"head": "activity", "z": z})
        assert r.status_code == 404 and "no head named 'activity'" in r.json()["message"]
        body = {"head": "activity", "t_start_us": 0, "t_end_us": 10**9}
        assert post(world, TIMELINE_PATH, token, body).status_code == 404
    r = post(world, CLASSIFY_PATH, b_dev, {"head": "activity", "z": z})
    assert r.status_code == 403  # device tokens upload only
    assert world.client.get(HEADS_PATH, headers=auth(b_user, False)).json() == {"heads": []}
    # B cannot train on A's records, even knowing device name and seq.
    examples = [
        {"device": "cam-a", "seq": 0, "label": "x"},
        {"device": "cam-a", "seq": 1, "label": "y"},
    ]
    r = post(world, HEADS_PATH + "/steal/train", b_user, {"examples": examples})
    assert r.status_code == 404 and "no stored record" in r.json()["message"]
    # B's device list does not include A's device.
    listed = world.client.get(DEVICES_PATH, headers=auth(b_user, False)).json()["devices"]
    assert [d["name"] for d in listed] == ["cam-b"]


# -- input validation: every bad input is a clear 4xx -------------------------------------------
def _good_z() -> list[float]:
    return vec(1).tolist()


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        ({"z": [0.1] * (Z_DIM - 1)}, 422, f"has {Z_DIM - 1} values; this server stores d={Z_DIM}"),
        ({"z": [0.1] * (Z_DIM + 1)}, 422, "this server stores d="),
        ('{"z": [NaN' + ", 0.1" * (Z_DIM - 1) + "]}", 422, "NaN or inf"),
        ('{"z": [Infinity' + ", 0.1" * (Z_DIM - 1) + "]}", 422, "NaN or inf"),
        ('{"z": [1e999' + ", 0.1" * (Z_DIM - 1) + "]}", 422, "NaN or inf"),
        ('{"z": [1e300' + ", 0.1" * (Z_DIM - 1) + "]}", 422, "too large"),
        ('{"z": [0.1, ', 400, "not valid JSON"),
        ("null", 422, "body"),
        ({"z": "abc"}, 422, "z"),
        ({"z": _good_z(), "k": 0}, 422, "k"),
        ({"z": _good_z(), "k": 10_000}, 422, "exceeds the limit"),
        ({"z": _good_z(), "extra": 1}, 422, "extra"),
        ({"z": [["nested"]]}, 422, "z"),
    ],
)
def test_bad_query_bodies(world: World, raw, status, message):
    headers = auth(world.tokens["a_user"])
    if isinstance(raw, str):
        r = world.client.post(
            KNN_PATH, content=raw, headers={**headers, "Content-Type": "application/json"}
        )
    else:
        r = world.client.post(KNN_PATH, json=raw, headers=headers)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "message"}
    assert message in r.json()["message"]


def test_oversize_body_is_413(world: World):
    big = b'{"z": [' + b"0.1, " * 300_000 + b"0.1]}"
    r = world.client.post(
        KNN_PATH,
        content=big,
        headers={**auth(world.tokens["a_user"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and "over" in r.json()["message"]


def test_classify_batch_limit_and_timeline_order(world: World):
    _train_activity_head(world)
    z = [_good_z()] * (world.config.max_classify_batch + 1)
    r = post(world, CLASSIFY_PATH, world.tokens["a_user"], {"head": "activity", "z": z})
    assert r.status_code == 413
    body = {"head": "activity", "t_start_us": 10, "t_end_us": 5}
    r = post(world, TIMELINE_PATH, world.tokens["a_user"], body)
    assert r.status_code == 422 and "before" in r.json()["message"]


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "missing Authorization"),
        ({"Authorization": "Basic abc"}, 401, "malformed Authorization"),
        ({"Authorization": "Bearer lvu_not-a-real-token"}, 401, "unknown or revoked"),
        ({"Authorization": "Bearer \x00\x01"}, 401, "malformed"),
    ],
)
def test_unauthenticated_queries(world: World, headers, status, message):
    r = world.client.post(KNN_PATH, json={"z": _good_z()}, headers=headers)
    assert r.status_code == status and message in r.json()["message"]


def test_replayed_and_stale_requests(world: World):
    headers = auth(world.tokens["a_user"])
    body = {"z": _good_z(), "k": 1}
    assert world.client.post(KNN_PATH, json=body, headers=headers).status_code == 200
    r = world.client.post(KNN_PATH, json=body, headers=headers)
    assert r.status_code == 409 and "replayed request" in r.json()["message"]
    # The same nonce from another principal is not a replay.
    other = {**auth(world.tokens["b_user"]), "X-LifeVeil-Nonce": headers["X-LifeVeil-Nonce"]}
    assert world.client.post(KNN_PATH, json=body, headers=other).status_code == 200
    stale = {**auth(world.tokens["a_user"]), "X-LifeVeil-Timestamp": str(time.time() - 3600)}
    r = world.client.post(KNN_PATH, json=body, headers=stale)
    assert r.status_code == 400 and "clock" in r.json()["message"]
    no_nonce = {"Authorization": f"Bearer {world.tokens['a_user']}"}
    r = world.client.post(KNN_PATH, json=body, headers=no_nonce)
    assert r.status_code == 400 and "X-LifeVeil-Nonce" in r.json()["message"]
    short = {**auth(world.tokens["a_user"]), "X-LifeVeil-Nonce": "abc"}
    assert world.client.post(KNN_PATH, json=body, headers=short).status_code == 400


def test_unknown_routes_and_methods_are_json_4xx(world: World):
    r = world.client.get("/v1/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = world.client.get(KNN_PATH)
    assert r.status_code == 405


def test_garbage_never_crashes_the_server(world: World):
    rng = np.random.default_rng(0)
    paths = [
        KNN_PATH,
        CLASSIFY_PATH,
        TIMELINE_PATH,
        DEVICES_PATH,
        FRAMES_PATH,
        HEADS_PATH + "/x/train",
        "/v1/admin/tenants",
    ]
    tokens = [world.tokens["a_user"], world.tokens["a_dev"], world.admin_token]
    for i in range(60):
        size = int(rng.integers(0, 400))
        body = rng.integers(0, 256, size).astype(np.uint8).tobytes()
        content_type = ["application/json", "application/octet-stream", "text/plain"][i % 3]
        headers = {**auth(tokens[i % 3]), "Content-Type": content_type}
        r = world.client.post(paths[i % len(paths)], content=body, headers=headers)
        assert 400 <= r.status_code < 500, (paths[i % len(paths)], r.status_code, r.text)


def test_out_of_range_integers_are_422(world: World):
    a_user = world.tokens["a_user"]
    body = {"head": "x", "t_start_us": 0, "t_end_us": 2**64}
    assert post(world, TIMELINE_PATH, a_user, body).status_code == 422
    examples = [{"device": "cam-a", "seq": 2**64, "label": "a"}] * 2
    assert post(world, HEADS_PATH + "/h/train", a_user, {"examples": examples}).status_code == 422
    assert post(world, KNN_PATH, a_user, {"z": _good_z(), "k": 2**70}).status_code == 422


def test_json_answers_are_padded_to_power_of_two_lengths(world: World):
    upload(world, world.tokens["a_dev"], 3)
    responses = [
        world.client.get("/v1/info"),
        world.client.get("/v1/nope"),
        post(world, KNN_PATH, world.tokens["a_user"], {"z": _good_z(), "k": 1}),
        post(world, KNN_PATH, world.tokens["a_user"], {"z": _good_z(), "k": 3}),
        post(world, KNN_PATH, world.tokens["a_user"], {"z": [0.0]}),
    ]
    for r in responses:
        n = len(r.content)
        assert n >= 1024 and n & (n - 1) == 0, (r.request.url, n)
        assert isinstance(r.json(), dict)
