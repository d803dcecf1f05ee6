"""Server test fixtures (helpers live in server_helpers.py so test modules can import them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server_helpers import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A fresh server data dir with tenants a and b, and a TestClient on it."""
    w = make_world(tmp_path / "srv")
    try:
        yield w
    finally:
        w.client.close()
        w.store.close()
