"""HTTP and WebSocket endpoints. Thin: validation here, work in the library modules.

Tenant isolation: every handler takes the tenant from the authenticated principal, never
from the request, and the store only reads within that tenant. Answers never include stored
z vectors, only identifiers, capture times, scores and labels.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Request, Response, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from lifeveil import __version__
from lifeveil.errors import AuthError, InputError, LifeVeilError, ProtocolError, ShapeError
from lifeveil.server import admin
from lifeveil.server.api_bodies import (
    ClassifyBody,
    DeviceBody,
    Example,  # noqa: F401  (re-exported: public name of this module)
    KnnBody,
    NameBody,
    TenantBody,
    TimelineBody,
    TrainBody,
)
from lifeveil.server.api_spaces import resolve_space
from lifeveil.server.auth import authenticate
from lifeveil.server.heads import LinearHead, segment_timeline
from lifeveil.server.http import ApiError, ServerState, api_error_from, error_response, require
from lifeveil.server.ingest import IngestBatcher, decode_batch
from lifeveil.server.store import (
    SCOPE_ADMIN,
    SCOPE_MANAGE,
    SCOPE_QUERY,
    SCOPE_UPLOAD,
    Principal,
    StoreUnavailableError,
    Tenant,
)
from lifeveil.transport.frame import ACK_BYTES, WireSpec, decode_frame
from lifeveil.transport.protocol import (
    CLASSIFY_PATH,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNAUTHORIZED,
    DEVICES_PATH,
    FRAMES_PATH,
    HEADS_PATH,
    HEALTH_PATH,
    INFO_PATH,
    KNN_PATH,
    TIMELINE_PATH,
    UPLINK_PATH,
    WIRE_HEADER,
)

router = APIRouter()
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455: the server is overloaded or its store is down

Admin = Annotated[Principal, Depends(require(SCOPE_ADMIN, replay_check=True))]
User = Annotated[Principal, Depends(require(SCOPE_MANAGE, replay_check=True))]
Reader = Annotated[Principal, Depends(require(SCOPE_QUERY))]
ReaderPost = Annotated[Principal, Depends(require(SCOPE_QUERY, replay_check=True))]
Device = Annotated[Principal, Depends(require(SCOPE_UPLOAD))]


def _state(request: Request) -> ServerState:
    return request.app.state.lifeveil


def _tenant(principal: Principal) -> Tenant:
    assert principal.tenant_id is not None and principal.tenant_name is not None
    return Tenant(principal.tenant_id, principal.tenant_name)


# -- public -----------------------------------------------------------------------------
@router.get(HEALTH_PATH)
def health() -> dict[str, str]:
    """Liveness probe."""
    return {"status": "ok"}


@router.get(INFO_PATH)
def info(request: Request) -> dict[str, object]:
    """Wire format and limits a client must respect."""
    config = _state(request).config
    wire = config.wire
    return {
        "lifeveil_version": __version__,
        "protocol_version": wire.version,
        "z_dim": wire.z_dim,
        "wire_dtype": wire.dtype,
        "wire": wire.token(),
        "frame_bytes": wire.frame_bytes,
        "ack_bytes": ACK_BYTES,
        "uplink_path": UPLINK_PATH,
        "max_frames_per_post": config.max_frames_per_post,
        "max_k": config.max_k,
        "max_classify_batch": config.max_classify_batch,
        "replay_window_s": config.replay_window_s,
    }


# -- administration ---------------------------------------------------------------------------
@router.post("/v1/admin/tenants", status_code=201)
def add_tenant(body: TenantBody, request: Request, who: Admin) -> dict[str, object]:
    """Create a tenant and its first user; the user's token is returned only here."""
    store = _state(request).store
    tenant, user = admin.create_tenant(store, body.name, body.first_user)
    admin.audit(store, who, "add-tenant", tenant.name, f"first user {body.first_user}")
    return {"tenant": tenant.name, **_issued("user", user)}


@router.post("/v1/admin/tenants/{tenant}/users", status_code=201)
def add_user(tenant: str, body: NameBody, request: Request, who: Admin) -> dict[str, object]:
    """Add a user to a tenant; the token is returned only here."""
    store = _state(request).store
    issued = admin.issue_principal(store, "user", body.name, admin.require_tenant(store, tenant))
    admin.audit(store, who, "add-user", f"{tenant}/{body.name}")
    return {"tenant": tenant, **_issued("user", issued)}


@router.post(DEVICES_PATH, status_code=201)
def register_device(body: DeviceBody, request: Request, user: User) -> dict[str, object]:
    """Register a device in the caller's tenant; the device token is returned only here.

    A device token uploads only; ``allow_query`` also lets it query its own records.
    """
    scopes = admin.device_scopes(body.name, body.allow_query)
    store = _state(request).store
    issued = admin.issue_principal(store, "device", body.name, _tenant(user), scopes)
    admin.audit(store, user, "register-device", f"{user.tenant_name}/{body.name}", scopes)
    return {"tenant": user.tenant_name, "device": body.name, "token": issued.token}


@router.get(DEVICES_PATH)
def list_devices(request: Request, who: Reader) -> dict[str, object]:
    """The caller's tenant's devices with record counts and last-seen times."""
    devices = _state(request).store.list_devices(_tenant(who).id)
    limit = who.device_limit
    return {"devices": [d.__dict__ for d in devices if not limit or d.name in limit]}


def _issued(kind: str, issued: admin.Issued | None) -> dict[str, object]:
    if issued is None:
        return {}
    return {kind: issued.principal.name, "token": issued.token}


# -- uplink -------------------------------------------------------------------------------------
@router.post(FRAMES_PATH)
async def post_frames(request: Request, device: Device) -> Response:
    """HTTPS uplink: body = 1..N concatenated frames; response = one 16-byte ack per frame."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/octet-stream":
        raise ApiError(415, "unsupported_media_type", "send frames as application/octet-stream")
    state = _state(request)
    body, limit = await request.body(), state.config.max_frames_per_post
    if len(body) > limit * state.config.wire.frame_bytes:
        raise ApiError(413, "too_large", f"more than {limit} frames in one request")
    frames = decode_batch(body, state.config.wire, limit)
    acks = await run_in_threadpool(_batcher(request).ingest, device, frames)
    return Response(b"".join(acks), media_type="application/octet-stream")


@router.websocket(UPLINK_PATH)
async def uplink(ws: WebSocket) -> None:
    """Constant-rate uplink: one binary frame per message up, one 16-byte ack per frame down.

    The ack for frame i is sent when frame i+1 arrives, so downlink timing follows the
    device's constant clock rather than how long storing took (which differs for real and
    cover frames). Malformed frames close the socket with code 4400 and a reason.
    """
    state: ServerState = ws.app.state.lifeveil
    try:
        device = await _authorize_uplink(ws, state)
    except (ApiError, LifeVeilError) as exc:
        error = exc if isinstance(exc, ApiError) else api_error_from(exc)
        await ws.send_denial_response(error_response(error))
        return
    await ws.accept()
    pending_ack: bytes | None = None
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                record = decode_frame(_binary(message), state.config.wire)
            except ProtocolError as exc:
                await ws.close(CLOSE_PROTOCOL_ERROR, _close_reason(str(exc)))
                return
            if pending_ack is not None:
                await ws.send_bytes(pending_ack)
            try:
                [pending_ack] = await run_in_threadpool(_batcher(ws).ingest, device, [record])
            except AuthError as exc:  # revoked or expired while the session was open
                await ws.close(CLOSE_UNAUTHORIZED, _close_reason(str(exc)))
                return
            except StoreUnavailableError as exc:  # the device reconnects and resends
                await ws.close(CLOSE_TRY_AGAIN_LATER, _close_reason(str(exc)))
                return
    except WebSocketDisconnect:
        return


def _batcher(connection: Request | WebSocket) -> IngestBatcher:
    return connection.app.state.ingest


def _binary(message: dict[str, object]) -> bytes:
    data = message.get("bytes")
    if not isinstance(data, bytes):
        raise ProtocolError("text messages are not accepted on the uplink; send binary frames")
    return data


async def _authorize_uplink(ws: WebSocket, state: ServerState) -> Principal:
    device = await run_in_threadpool(authenticate, state.store, ws.headers.get("authorization"))
    if not device.may(SCOPE_UPLOAD):
        message = f"the uplink takes a device token; you sent a {device.kind} token"
        raise ApiError(403, "forbidden", message)
    offered = ws.headers.get(WIRE_HEADER)
    if offered is None:
        raise ProtocolError(f"missing {WIRE_HEADER} header; expected {state.config.wire.token()!r}")
    if WireSpec.from_token(offered) != state.config.wire:
        raise ProtocolError(
            f"device sends {WireSpec.from_token(offered).describe()} but this server expects "
            f"{state.config.wire.describe()}; configure the device from GET {INFO_PATH}"
        )
    return device


def _close_reason(text: str) -> str:
    encoded = text.encode()[:120]
    return encoded.decode(errors="ignore")


# -- queries ----------------------------------------------------------------------------------
@router.post(KNN_PATH)
async def knn(body: KnnBody, request: Request, who: ReaderPost) -> dict[str, object]:
    """The k records of the caller's tenant whose z is most cosine-similar to the query z."""
    return await request.app.state.searches.run(_knn, body, request, who)


def _knn(body: KnnBody, request: Request, who: Principal) -> dict[str, object]:
    state = _state(request)
    if body.k > state.config.max_k:
        raise ApiError(422, "invalid_request", f"k={body.k} exceeds the limit {state.config.max_k}")
    query = _vectors([body.z], state.config.z_dim, "z")[0]
    tenant = _tenant(who)
    device_id = _device_id(state, tenant, body.device, who)
    space = resolve_space(state.store, tenant.id, body.space)
    hits = state.store.knn(tenant.id, query, body.k, device_id, space=space)
    return {"neighbors": [hit.__dict__ for hit in hits]}


@router.post(CLASSIFY_PATH)
def classify(body: ClassifyBody, request: Request, who: ReaderPost) -> dict[str, object]:
    """Labels and class probabilities for each query z from one of the tenant's heads."""
    state = _state(request)
    if len(body.z) > state.config.max_classify_batch:
        limit = state.config.max_classify_batch
        raise ApiError(413, "too_large", f"{len(body.z)} vectors; at most {limit} per request")
    z = _vectors(body.z, state.config.z_dim, "z")
    tenant = _tenant(who)
    head = _head(state, tenant, body.head, resolve_space(state.store, tenant.id, body.space))
    proba = head.predict_proba(z)
    predictions = []
    for row in proba:
        best = int(row.argmax())
        probabilities = {c: round(float(p), 6) for c, p in zip(head.classes, row, strict=True)}
        predictions.append(
            {
                "label": head.classes[best],
                "confidence": round(float(row[best]), 6),
                "probabilities": probabilities,
            }
        )
    return {"head": head.name, "predictions": predictions}


@router.post(TIMELINE_PATH)
async def timeline(body: TimelineBody, request: Request, who: ReaderPost) -> dict[str, object]:
    """What was happening between two capture times: segments of the same predicted label."""
    return await request.app.state.searches.run(_timeline, body, request, who)


def _timeline(body: TimelineBody, request: Request, who: Principal) -> dict[str, object]:
    if body.t_end_us < body.t_start_us:
        raise ApiError(422, "invalid_request", "t_end_us is before t_start_us")
    state = _state(request)
    tenant = _tenant(who)
    space = resolve_space(state.store, tenant.id, body.space)
    head = _head(state, tenant, body.head, space)
    limit = state.config.max_timeline_records
    batch = state.store.load_records(
        tenant.id,
        device_id=_device_id(state, tenant, body.device, who),
        t_start_us=body.t_start_us,
        t_end_us=body.t_end_us,
        limit=limit + 1,
        space=space,
    )
    if len(batch) > limit:
        raise ApiError(413, "too_large", f"over {limit} records in this range; narrow it")
    labels, confidence = head.predict(batch.z) if len(batch) else ([], np.zeros(0))
    segments = segment_timeline(batch.timestamps_us, labels, confidence, body.max_gap_us)
    return {"head": head.name, "n_records": len(batch), "segments": [s.as_dict() for s in segments]}


@router.get(HEADS_PATH)
def list_heads(request: Request, who: Reader) -> dict[str, object]:
    """The tenant's trained heads."""
    heads = _state(request).store.list_heads(_tenant(who).id)
    return {"heads": [_head_summary(h) for h in heads]}


@router.post(HEADS_PATH + "/{name}/train", status_code=201)
def train_head(name: str, body: TrainBody, request: Request, user: User) -> dict[str, object]:
    """Train (or replace) a head from labels of the tenant's stored records."""
    keys = [(e.device, e.seq) for e in body.examples]
    labels = [e.label for e in body.examples]
    store = _state(request).store
    tenant = _tenant(user)
    space = resolve_space(store, tenant.id, body.space)
    head = admin.train_head(store, tenant, name, keys, labels, space=space)
    admin.audit(store, user, "train-head", f"{user.tenant_name}/{head.name}")
    return _head_summary(head)


def _head_summary(head: LinearHead) -> dict[str, object]:
    return {
        "name": head.name,
        "classes": list(head.classes),
        "n_train": head.n_train,
        "metrics": head.metrics,
        "space": head.space,
    }


def _head(state: ServerState, tenant: Tenant, name: str, space: int) -> LinearHead:
    head = state.store.get_head(tenant.id, name, space=space)
    if head is None:
        elsewhere = [h.space for h in state.store.list_heads(tenant.id) if h.name == name]
        if elsewhere:
            raise ApiError(
                422,
                "wrong_space",
                f"head {name!r} was trained on z of space tag(s) {elsewhere}, not of the space "
                f'of this query (tag {space}); name that space with "space", or train the '
                "head again in this one",
            )
        known = ", ".join(h.name for h in state.store.list_heads(tenant.id, space=space))
        known = known or "(none)"
        raise ApiError(
            404,
            "not_found",
            f"no head named {name!r} in your tenant (existing: {known}); train one with "
            f"POST {HEADS_PATH}/NAME/train or `lifeveil server train-head`",
        )
    return head


def _device_id(state: ServerState, tenant: Tenant, name: str | None, who: Principal) -> int | None:
    """The device a query is restricted to: the one named, or the caller's only allowed one."""
    limit = who.device_limit
    if name is None and len(limit) == 1:
        [name] = limit
    elif name is None and limit:
        raise ApiError(403, "forbidden", f"your token may query only {sorted(limit)}; name one")
    elif limit and name not in limit:
        raise ApiError(403, "forbidden", f"your token may not query device {name!r}")
    if name is None:
        return None
    device = state.store.get_device(tenant.id, name)
    if device is None:
        raise ApiError(404, "not_found", f"no device named {name!r} in your tenant")
    return device.id


def _vectors(rows: list[list[float]], z_dim: int, what: str) -> np.ndarray:
    for i, row in enumerate(rows):
        if len(row) != z_dim:
            where = what if len(rows) == 1 else f"{what}[{i}]"
            raise ShapeError(f"{where} has {len(row)} values; this server stores d={z_dim}")
    z = np.array(rows, dtype=np.float64)
    bad = ~np.isfinite(z)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"{what} contains NaN or inf (row {i}, index {j}); send finite values")
    if np.abs(z).max() > np.finfo(np.float32).max:
        raise InputError(f"{what} has values too large for float32")
    return z.astype(np.float32)
