"""The HTTP side of representation spaces, on every backend (issue 14): registration, listing,
the default, queries that name a space, unknown spaces on the uplink, migrations by adapter."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import pytest

from lifeveil.privatizer.adapt import Adapter
from lifeveil.server.api_spaces import DEFAULT_SPACE_PATH, MIGRATIONS_PATH, SPACES_PATH
from lifeveil.server.migrate_runner import MigrationRunner
from lifeveil.transport import client as query_client
from lifeveil.transport.frame import AckStatus, decode_ack, encode_frame
from lifeveil.transport.protocol import KNN_PATH, TIMELINE_PATH, UPLINK_PATH
from lifeveil.transport.record import ZRecord, space_tag

from .server_helpers import Z_DIM, World, auth, frames, vec
from .test_server_api import post, post_frames, ws_headers

V1, V2 = "1111aaaabbbbcccc", "2222aaaabbbbcccc"
T1, T2 = space_tag(V1), space_tag(V2)


def _register(w: World, token: str, version: str, z_dim: int = Z_DIM):
    return post(w, SPACES_PATH, token, {"version": version, "z_dim": z_dim})


def _upload(w: World, space: int, n: int, seed0: int = 0, seq0: int = 0) -> list[np.ndarray]:
    zs = [vec(seed0 + i) for i in range(n)]
    records = [ZRecord(seq0 + i, i * 1_000_000, z, space=space) for i, z in enumerate(zs)]
    acks = post_frames(w, w.tokens["a_dev"], frames(w.wire, records))
    assert {a for a, _ in acks} == {AckStatus.STORED}
    return zs


def test_client_and_server_name_the_same_paths():
    assert (query_client.SPACES_PATH, query_client.DEFAULT_SPACE_PATH) == (
        SPACES_PATH,
        DEFAULT_SPACE_PATH,
    )
    assert query_client.MIGRATIONS_PATH == MIGRATIONS_PATH


def test_register_list_and_default(world: World):
    r = _register(world, world.tokens["a_dev"], V1)  # a device registers its version
    assert r.status_code == 201, r.text
    assert r.json()["tag"] == T1 and r.json()["is_default"]
    assert _register(world, world.tokens["a_dev"], V1).status_code == 200  # idempotent
    assert _register(world, world.tokens["a_user"], V2).status_code == 201  # so may a user
    listed = world.client.get(SPACES_PATH, headers=auth(world.tokens["a_user"], fresh=False))
    assert [(s["version"], s["is_default"]) for s in listed.json()["spaces"]] == [
        (V1, False),
        (V2, True),
    ]
    r = world.client.put(
        DEFAULT_SPACE_PATH, json={"version": V1}, headers=auth(world.tokens["a_user"])
    )
    assert r.status_code == 200 and r.json()["is_default"]
    b = world.client.get(SPACES_PATH, headers=auth(world.tokens["b_user"], fresh=False))
    assert [s["version"] for s in b.json()["spaces"]] == [None]  # tenant b sees none of a's


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"version": "1111ffffffffffff", "z_dim": Z_DIM}, 409, "already taken by version"),
        ({"version": V2, "z_dim": Z_DIM + 1}, 422, "a server stores one z_dim"),
        ({"version": "xyz", "z_dim": Z_DIM}, 422, "16 lower-case hex"),
        ({"version": V2}, 422, "z_dim"),
    ],
)
def test_register_refusals(world: World, body, status, message):
    _register(world, world.tokens["a_dev"], V1)
    r = post(world, SPACES_PATH, world.tokens["a_dev"], body)
    assert r.status_code == status and message in r.json()["message"], r.text


def test_who_may_do_what(world: World):
    dev, user = world.tokens["a_dev"], world.tokens["a_user"]
    assert world.client.get(SPACES_PATH, headers=auth(dev, fresh=False)).status_code == 403
    r = world.client.put(DEFAULT_SPACE_PATH, json={"version": V1}, headers=auth(dev))
    assert r.status_code == 403
    assert post(world, MIGRATIONS_PATH, dev, {"adapter": "AAAA"}).status_code == 403
    r = world.client.put(DEFAULT_SPACE_PATH, json={"version": V1}, headers=auth(user))
    assert r.status_code == 422 and "not registered" in r.json()["message"]
    assert _register(world, world.admin_token, V1).status_code == 403


def test_queries_name_a_space_or_use_the_default(world: World):
    user = world.tokens["a_user"]
    for version in (V1, V2):
        _register(world, user, version)
    old = _upload(world, T1, 6, seed0=0)
    _upload(world, T2, 3, seed0=100, seq0=50)
    hits = post(world, KNN_PATH, user, {"z": old[2].tolist(), "k": 20}).json()["neighbors"]
    assert {h["seq"] for h in hits} == {50, 51, 52}  # the default: the latest registered
    body = {"z": old[2].tolist(), "k": 20, "space": V1}
    hits = post(world, KNN_PATH, user, body).json()["neighbors"]
    assert len(hits) == 6 and hits[0]["seq"] == 2
    r = post(world, KNN_PATH, user, {**body, "space": "3333aaaabbbbcccc"})
    assert r.status_code == 422 and "not registered" in r.json()["message"]
    r = post(world, KNN_PATH, user, {**body, "space": "nonsense"})
    assert r.status_code == 422
    r = post(world, KNN_PATH, user, {**body, "space": "undeclared"})  # space 0: none here
    assert r.status_code == 200 and r.json()["neighbors"] == []


def test_heads_belong_to_a_space(world: World):
    user = world.tokens["a_user"]
    _register(world, user, V1)
    _upload(world, T1, 6)
    examples = [{"device": "cam-a", "seq": i, "label": "ab"[i % 2]} for i in range(6)]
    r = post(world, "/v1/heads/act/train", user, {"examples": examples, "space": V1})
    assert r.status_code == 201 and r.json()["space"] == T1, r.text
    _register(world, user, V2)  # now the default: the head is of another space
    body = {"head": "act", "t_start_us": 0, "t_end_us": 10**7}
    r = post(world, TIMELINE_PATH, user, body)
    assert r.status_code == 422 and "trained on z of space" in r.json()["message"]
    r = post(world, TIMELINE_PATH, user, {**body, "space": V1})
    assert r.status_code == 200 and r.json()["n_records"] == 6
    r = post(
        world, "/v1/query/classify", user, {"head": "act", "z": [vec(0).tolist()], "space": V1}
    )
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1
    bad = {"examples": examples, "space": "3333aaaabbbbcccc"}
    assert post(world, "/v1/heads/act/train", user, bad).status_code == 422


def test_unknown_space_frames_are_refused_and_the_post_goes_on(world: World):
    _register(world, world.tokens["a_dev"], V1)
    records = [ZRecord(0, 0, vec(0), space=T2), ZRecord(1, 1, vec(1), space=T1)]
    acks = post_frames(world, world.tokens["a_dev"], frames(world.wire, records))
    assert acks == [(AckStatus.UNKNOWN_SPACE, 0), (AckStatus.STORED, 1)]


def test_websocket_stays_open_after_an_unknown_space(world: World):
    _register(world, world.tokens["a_dev"], V1)
    with world.client.websocket_connect(
        UPLINK_PATH, headers=ws_headers(world, world.tokens["a_dev"])
    ) as ws:
        ws.send_bytes(encode_frame(ZRecord(0, 0, vec(0), space=T2), world.wire))
        ws.send_bytes(encode_frame(ZRecord(1, 1, vec(1), space=T1), world.wire))
        assert decode_ack(ws.receive_bytes()) == (AckStatus.UNKNOWN_SPACE, 0)
        ws.send_bytes(encode_frame(ZRecord(2, 2, vec(2), space=T1), world.wire))
        assert decode_ack(ws.receive_bytes()) == (AckStatus.STORED, 1)
    tenant = world.store.get_tenant("a")
    assert tenant is not None
    assert world.store.count_records(tenant.id, space=T1) == 2
    assert world.store.count_records(tenant.id, space=T2) == 0


def _adapter_b64(tmp_path: Path, old: str = V1, d_old: int = Z_DIM, d_new: int = Z_DIM) -> str:
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((d_new, d_old)).astype(np.float32)
    path = tmp_path / f"adapter-{d_old}-{d_new}.safetensors"
    Adapter(weight, np.zeros(d_new, np.float32), old, V2, 50, 10.0).save(path)
    return base64.b64encode(path.read_bytes()).decode()


def _wait_done(w: World, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = w.client.get(MIGRATIONS_PATH, headers=auth(w.tokens["a_user"], fresh=False))
        [m] = r.json()["migrations"]
        if m["status"] != "running":
            return m
        time.sleep(0.05)
    raise AssertionError("the migration did not finish")


def test_migration_over_http_runs_in_the_background(world: World, tmp_path: Path):
    user = world.tokens["a_user"]
    _register(world, user, V1)
    old = _upload(world, T1, 30)
    r = post(world, MIGRATIONS_PATH, user, {"adapter": _adapter_b64(tmp_path)})
    assert r.status_code == 202, r.text
    assert (r.json()["old_version"], r.json()["new_version"]) == (V1, V2)
    m = _wait_done(world)
    assert (m["status"], m["done"], m["total"]) == ("done", 30, 30)
    hits = post(world, KNN_PATH, user, {"z": old[0].tolist(), "k": 50, "space": V2}).json()
    assert len(hits["neighbors"]) == 30
    spaces = world.client.get(SPACES_PATH, headers=auth(user, fresh=False)).json()["spaces"]
    assert [(s["version"], s["n_records"]) for s in spaces] == [(V1, 30), (V2, 30)]


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        ("not base64", 422, "not base64"),
        ("junk", 422, "not a LifeVeil adapter"),
        ("old dim", 422, "takes z of dimension 4"),
        ("new dim", 422, "a server stores one z_dim"),
        ("unregistered", 422, "not registered"),
    ],
)
def test_migration_refusals(world: World, tmp_path: Path, kind, status, message):
    _register(world, world.tokens["a_user"], V1)
    adapter = {
        "not base64": "%%%",
        "junk": base64.b64encode(b"x" * 100).decode(),
        "old dim": _adapter_b64(tmp_path, d_old=4),
        "new dim": _adapter_b64(tmp_path, d_new=Z_DIM * 2),
        "unregistered": _adapter_b64(tmp_path, old="3333aaaabbbbcccc"),
    }[kind]
    r = post(world, MIGRATIONS_PATH, world.tokens["a_user"], {"adapter": adapter})
    assert r.status_code == status and message in r.json()["message"], r.text


def test_a_starting_server_resumes_unfinished_migrations(world: World, tmp_path: Path):
    from lifeveil.server.migrate import read_adapter, start_migration

    _register(world, world.tokens["a_user"], V1)
    _upload(world, T1, 12)
    tenant = world.store.get_tenant("a")
    assert tenant is not None
    adapter = read_adapter(base64.b64decode(_adapter_b64(tmp_path)))
    start_migration(world.store, tenant.id, adapter)  # recorded, never run: a crash
    with world.client:  # the app's start-up resumes it
        runner: MigrationRunner = world.client.app.state.migrations  # type: ignore[attr-defined]
        assert runner.wait_idle(30)
    [m] = world.store.list_migrations(tenant.id)
    assert (m.status, m.done) == ("done", 12)


def test_openapi_lists_the_space_routes(world: World):
    schema = world.client.get("/v1/openapi.json").json()
    assert {SPACES_PATH, DEFAULT_SPACE_PATH, MIGRATIONS_PATH} <= set(schema["paths"])
    for body in ("KnnBody", "ClassifyBody", "TimelineBody", "TrainBody"):
        assert "space" in schema["components"]["schemas"][body]["properties"]
