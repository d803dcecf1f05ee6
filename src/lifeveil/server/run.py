"""Serve the app with uvicorn over TLS (no plaintext listener, no WebSocket compression).

Abuse limits live here, below the app: a connection cap in total and per client address,
a deadline for a complete request head (slow-loris), a keep-alive idle timeout, and TLS 1.2
restricted to ECDHE with AEAD ciphers (or TLS 1.3 only).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from lifeveil.server.app import create_app
from lifeveil.server.config import ServerConfig
from lifeveil.server.priority import single_threaded_blas

log = logging.getLogger(__name__)
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"  # forward secrecy and AEAD only; no CBC


def guarded_protocol(config: ServerConfig) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the configured connection caps and request-head deadline."""

    class GuardedH11Protocol(H11Protocol):
        """Closes connections over the caps at once and those too slow to send a request head."""

        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if self._over_caps():
                transport.abort()
                return
            self._arm_head_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE and self.cycle is None:
                self._arm_head_timer()  # still waiting for (the rest of) a request head
            else:
                self._disarm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()  # the next request head must come in time as well

        def _over_caps(self) -> bool:
            connections = self.server_state.connections
            if len(connections) > config.max_connections:
                return True
            host = self.client[0] if self.client else None
            same = sum(1 for c in connections if getattr(c, "client", None) and c.client[0] == host)
            return same > config.max_connections_per_ip

        def _arm_head_timer(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(config.header_timeout_s, self._too_slow)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _too_slow(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.abort()

    return GuardedH11Protocol


def tls_context_factory(
    config: ServerConfig,
) -> Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """uvicorn ``ssl_context_factory``: TLS 1.2 with ECDHE+AEAD only (or 1.3 only), no
    TLS-level compression."""

    def factory(_config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        ctx = default()
        ctx.minimum_version = (
            ssl.TLSVersion.TLSv1_3 if config.tls13_only else ssl.TLSVersion.TLSv1_2
        )
        ctx.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites are all AEAD and not affected
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        return ctx

    return factory


def uvicorn_config(
    config: ServerConfig, host: str = "127.0.0.1", port: int = 8443
) -> uvicorn.Config:
    """uvicorn settings for LifeVeil: TLS, caps and timeouts, permessage-deflate off."""
    frame_limit = max(4096, 2 * config.wire.frame_bytes)
    return uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        ssl_certfile=str(config.cert_path),
        ssl_keyfile=str(config.key_path),
        ssl_context_factory=tls_context_factory(config),
        http=guarded_protocol(config),
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # compressed sizes leak content
        ws_max_size=frame_limit,
        ws_ping_interval=None,  # keepalive pings would be records of another size on the wire
        timeout_keep_alive=max(1, int(config.keepalive_timeout_s)),
        h11_max_incomplete_event_size=16 * 1024,  # request heads larger than this get a 400
        backlog=4096,
        server_header=False,
        proxy_headers=False,
        log_level="info",
        access_log=False,  # URLs carry no secrets, but a z server needs no per-request log
    )


class RejectionLogLimit(logging.Filter):
    """Lets through at most ``per_minute`` log lines about rejected connections a minute and
    then one line saying how many were suppressed (a client without a token cannot flood the
    log); every other line passes."""

    MARKERS = ("connection rejected", '"WebSocket ')

    def __init__(self, per_minute: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.per_minute, self.clock = per_minute, clock
        self.window_start, self.count, self.suppressed = clock(), 0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not any(m in message for m in self.MARKERS):
            return True
        now = self.clock()
        if now - self.window_start >= 60.0:
            if self.suppressed:
                record.msg, record.args = (
                    "%d rejected connections were not logged in the last minute; latest: %s",
                    (self.suppressed, message),
                )
            self.window_start, self.count, self.suppressed = now, 0, 0
        self.count += 1
        if self.count > self.per_minute:
            self.suppressed += 1
            return False
        return True


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8443) -> None:
    """Run until interrupted. The certificate and key must exist (see ``init_data_dir``)."""
    single_threaded_blas()  # ingest first: queries' BLAS must not take every core
    server = uvicorn.Server(uvicorn_config(config, host, port))  # configures uvicorn's logging
    logging.getLogger("uvicorn.error").addFilter(RejectionLogLimit())
    server.run()
