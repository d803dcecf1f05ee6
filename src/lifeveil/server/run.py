"""Serve the app with uvicorn over TLS (no plaintext listener, no WebSocket compression)."""

from __future__ import annotations

import uvicorn

from lifeveil.server.app import create_app
from lifeveil.server.config import ServerConfig
from lifeveil.server.tls import harden_server_context


def uvicorn_config(
    config: ServerConfig, host: str = "127.0.0.1", port: int = 8443
) -> uvicorn.Config:
    """uvicorn settings for LifeVeil: TLS 1.2+, permessage-deflate off, small WS messages."""
    frame_limit = max(4096, 2 * config.wire.frame_bytes)
    return uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        ssl_certfile=str(config.cert_path),
        ssl_keyfile=str(config.key_path),
        ssl_context_factory=harden_server_context,
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # compressed sizes leak content
        ws_max_size=frame_limit,
        server_header=False,
        proxy_headers=False,
        log_level="info",
        access_log=False,  # URLs carry no secrets, but a z server needs no per-request log
    )


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8443) -> None:
    """Run until interrupted. The certificate and key must exist (see ``init_data_dir``)."""
    uvicorn.Server(uvicorn_config(config, host, port)).run()
