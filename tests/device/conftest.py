"""Device test fixtures: a tiny privatizer trained in seconds on a real clip, servers, vaults."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lifeveil.server.local import LocalServer
from lifeveil.vault import KdfParams, Vault

from .tiny import TINY, train_tiny_privatizer

FAST_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "device tests"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, talking_face_clip: Path) -> Path:
    """A small trained privatizer (d=16): real carphone frames, real teacher, one epoch."""
    return train_tiny_privatizer(
        talking_face_clip, tmp_path_factory.mktemp("model") / "tiny.safetensors"
    )


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    """A fresh vault with cheap Argon2 costs."""
    v = Vault.init(tmp_path / "vault", passphrase=PASSPHRASE, kdf=FAST_KDF)
    try:
        yield v
    finally:
        v.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    """A real TLS server subprocess for d=16, not started yet (tests start, kill, restart it)."""
    srv = LocalServer(tmp_path / "srv", z_dim=TINY.z_dim)
    try:
        yield srv
    finally:
        srv.stop()


def server_records(server: LocalServer) -> tuple[list[int], list[int], np.ndarray]:
    """(seqs, timestamps_us, z) of every record the server's database holds, by seq."""
    db = sqlite3.connect(server.config.db_path)
    try:
        rows = db.execute("SELECT seq, timestamp_us, z FROM z_records ORDER BY seq").fetchall()
    finally:
        db.close()
    z = np.frombuffer(b"".join(r[2] for r in rows), "<f4").reshape(len(rows), -1)
    return [r[0] for r in rows], [r[1] for r in rows], z
