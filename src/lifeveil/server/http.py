"""HTTP plumbing: error responses, request-size limit and authentication dependencies.

Every error is JSON ``{"error": CODE, "message": TEXT}`` with a 4xx status that says whose
fault it is; only LifeVeil bugs give 500, and the server keeps running either way.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifeveil.errors import (
    AuthError,
    EgressRefusedError,
    InputError,
    LifeVeilError,
    NameTakenError,
    ProtocolError,
    ReplayError,
    ShapeError,
    UnknownNameError,
)
from lifeveil.server.auth import authenticate, check_replay
from lifeveil.server.config import ServerConfig
from lifeveil.server.store import Principal, ZStore
from lifeveil.transport.padding import pad_json
from lifeveil.transport.protocol import NONCE_HEADER, TIMESTAMP_HEADER

log = logging.getLogger(__name__)


class RateLimiter:
    """Token buckets per principal: ``rate_per_s`` requests per second, bursts of ``burst``."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate, self.burst = rate_per_s, float(burst)
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, key: int, now: float | None = None) -> float:
        """0 if a request by ``key`` may go now (and count it), else seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            level, last = self._buckets.get(key, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate)
            if level < 1.0:
                self._buckets[key] = (level, now)
                return (1.0 - level) / self.rate
            self._buckets[key] = (level - 1.0, now)
            return 0.0


@dataclass(frozen=True)
class ServerState:
    """What every request handler needs: the configuration, the open store, the rate limiter."""

    config: ServerConfig
    store: ZStore
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0.0, 1))


class PaddedJSONResponse(JSONResponse):
    """JSON padded with trailing spaces to a power-of-two length, so sizes leak only a bucket."""

    def render(self, content: object) -> bytes:
        return pad_json(super().render(content))


class ApiError(Exception):
    """An HTTP error with a machine-readable code and a message for people."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


# Most specific first.
_STATUS: tuple[tuple[type[LifeVeilError], int, str], ...] = (
    (AuthError, 401, "unauthorized"),
    (ReplayError, 409, "replayed"),
    (NameTakenError, 409, "name_taken"),
    (UnknownNameError, 404, "not_found"),
    (ShapeError, 422, "invalid_shape"),
    (EgressRefusedError, 422, "invalid_value"),
    (ProtocolError, 400, "protocol_error"),
    (InputError, 422, "invalid_input"),
)


def api_error_from(exc: LifeVeilError) -> ApiError:
    """Map a LifeVeil error to its HTTP status and code."""
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return ApiError(status, code, str(exc))
    return ApiError(400, "bad_request", str(exc))


def error_response(error: ApiError) -> JSONResponse:
    """The JSON body every error uses."""
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    body = {"error": error.code, "message": error.message}
    return PaddedJSONResponse(body, status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so that every failure becomes a clear JSON error."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_lifeveil_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LifeVeilError)
        return error_response(api_error_from(exc))

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(_validation_error(exc))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, code, str(exc.detail)))

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(ApiError(500, "internal", "internal server error; see server log"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(LifeVeilError, on_lifeveil_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_bug)


def _validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(str(e.get("ctx", {}).get("error", "")) for e in errors)
        return ApiError(400, "malformed_json", f"request body is not valid JSON ({detail})")
    parts = []
    for e in errors[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return ApiError(422, "invalid_request", "; ".join(parts) + more)


class BodySizeLimit:
    """ASGI middleware: refuse HTTP bodies over ``max_bytes`` with 413 before parsing them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        body = bytearray()
        too_big = not declared.isdigit() or int(declared) > self.max_bytes
        more = not too_big
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            too_big = len(body) > self.max_bytes
            more = more and not too_big
        if too_big:
            error = ApiError(413, "too_large", f"request body over {self.max_bytes} bytes")
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, _replay_body(bytes(body), receive), send)


def _replay_body(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def state_of(request: Request) -> ServerState:
    """The :class:`ServerState` of the app serving ``request``."""
    return request.app.state.lifeveil


def require(scope: str | tuple[str, ...], replay_check: bool = False) -> Callable[..., object]:
    """FastAPI dependency: the authenticated principal, whose token must carry ``scope`` (or
    one of several).

    Each principal's requests are rate-limited (429 with ``Retry-After``). With
    ``replay_check``, the request must also carry a fresh nonce and timestamp.
    """
    scopes = (scope,) if isinstance(scope, str) else scope

    async def dependency(request: Request) -> Principal:
        state = state_of(request)
        header = request.headers.get("authorization")
        principal = await run_in_threadpool(authenticate, state.store, header)
        if not any(principal.may(s) for s in scopes):
            raise ApiError(403, "forbidden", _scope_message(scopes[-1], principal))
        wait = state.limiter.wait_s(principal.id)
        if wait > 0:
            raise ApiError(
                429, "rate_limited", f"too many requests; retry in {wait:.2f} s", retry_after=wait
            )
        if replay_check:
            await run_in_threadpool(
                check_replay,
                state.store,
                principal,
                request.headers.get(NONCE_HEADER),
                request.headers.get(TIMESTAMP_HEADER),
                window_s=state.config.replay_window_s,
                now_s=time.time(),
            )
        return principal

    return dependency


def _scope_message(scope: str, principal: Principal) -> str:
    hint = {
        "query": "queries need a user token (or a device registered with --allow-query)",
        "manage": "this needs a user token of the tenant",
        "upload": "uploads need a device token",
        "admin": "this needs the admin token",
    }.get(scope, "")
    return f"your {principal.kind} token lacks the {scope!r} scope: {hint}"
