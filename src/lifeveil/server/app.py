"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from lifeveil import __version__
from lifeveil.server import pg_store as _pg_store  # noqa: F401  (registers "postgresql")
from lifeveil.server.api import router
from lifeveil.server.api_spaces import router as spaces_router
from lifeveil.server.config import ServerConfig
from lifeveil.server.http import (
    ApiError,
    BodySizeLimit,
    PaddedJSONResponse,
    RateLimiter,
    ServerState,
    error_response,
    install_error_handlers,
)
from lifeveil.server.ingest import IngestBatcher, SearchPool
from lifeveil.server.migrate_runner import MigrationRunner
from lifeveil.server.store import StoreUnavailableError, ZStore, create_store

# Seconds a client is told to wait when the database is down (the device outbox resends).
STORE_RETRY_AFTER_S = 5.0
# Threads answering queries at once, and queries allowed to wait for one (503 beyond).
SEARCH_WORKERS, SEARCH_MAX_WAITING = 2, 64


def create_app(config: ServerConfig, store: ZStore | None = None) -> FastAPI:
    """The LifeVeil server as an ASGI app.

    Args:
        config: server configuration (z dimension, wire dtype, limits, store backend).
        store: an open store to use; by default the configured backend is opened here and
            closed when the app shuts down.

    No response compression middleware is installed, on purpose: compressed sizes would
    leak content; JSON answers are padded to power-of-two lengths instead. Serve it over TLS with :func:`lifeveil.server.run.serve`.
    """
    owned = store is None
    state = ServerState(
        config,
        store if store is not None else create_store(config),
        RateLimiter(config.rate_limit_per_s, config.rate_limit_burst),
    )

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        # An app can be started again after a shutdown (ASGI test clients do it per session):
        # it then gets a fresh writer and query pool instead of the closed ones.
        if app_.state.ingest.closed:
            app_.state.ingest = IngestBatcher(state.store)
        if app_.state.searches.closed:
            app_.state.searches = SearchPool(SEARCH_WORKERS, SEARCH_MAX_WAITING)
        app_.state.migrations = MigrationRunner(state.store)
        await run_in_threadpool(app_.state.migrations.resume)  # unfinished ones go on
        yield
        app_.state.migrations.close()  # after the batch in hand; resumed at the next start
        app_.state.ingest.close()  # stores what is queued first
        app_.state.searches.close()
        if owned:
            state.store.close()

    app = FastAPI(
        title="LifeVeil server",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
        default_response_class=PaddedJSONResponse,
    )
    app.state.lifeveil = state
    app.state.ingest = IngestBatcher(state.store)  # group commit of uplink records
    app.state.searches = SearchPool(SEARCH_WORKERS, SEARCH_MAX_WAITING)  # query threads
    app.state.migrations = MigrationRunner(state.store)  # adapters over stored z, background
    install_error_handlers(app)
    app.add_exception_handler(StoreUnavailableError, _store_unavailable)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    app.include_router(router)
    app.include_router(spaces_router)
    return app


async def _store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    """503 + Retry-After: the database is down or restarting; nothing was half-stored."""
    return error_response(ApiError(503, "store_unavailable", str(exc), STORE_RETRY_AFTER_S))
