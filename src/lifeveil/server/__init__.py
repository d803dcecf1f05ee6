"""LifeVeil server: stores z records per tenant and answers queries over TLS.

``store`` (ZStore interface, registry) and ``sqlite_store`` (WAL default) -> ``auth``
(hashed tokens, replay nonces) -> ``ingest`` (frames -> records + acks) -> ``heads``
(linear heads on z, timelines) -> ``api``/``app`` (FastAPI) -> ``run`` (uvicorn + TLS) ->
``cli``. Library first: every CLI command is a function in ``admin``. The server never
imports device code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lifeveil.server import pg_store as _pg_store  # noqa: F401  (registers "postgresql")
from lifeveil.server import sqlite_store as _sqlite_store  # noqa: F401  (registers "sqlite")
from lifeveil.server.config import ServerConfig
from lifeveil.server.store import ZStore, create_store, list_stores, register_store

if TYPE_CHECKING:
    from lifeveil.server.app import create_app

__all__ = ["ServerConfig", "ZStore", "create_app", "create_store", "list_stores", "register_store"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported only when an app is built, so `lifeveil --help` stays fast.
    if name == "create_app":
        from lifeveil.server.app import create_app

        return create_app
    raise AttributeError(f"module 'lifeveil.server' has no attribute {name!r}")
