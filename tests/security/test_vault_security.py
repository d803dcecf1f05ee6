"""Vault file permissions (issue 9, item 7): the folder and its subfolders are 0700 and every
file the vault writes is 0600, whatever the umask and whether or not the folder existed."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lifeveil.vault import KdfParams, SegmentMetadata, Vault

pytestmark = pytest.mark.security

FAST_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 0: any file created without an explicit private mode would be world-writable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _modes(root: Path) -> dict[str, int]:
    """Mode bits of the vault folder and of everything in it, by relative path."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.stat().st_mode)
    return found


def _assert_private(root: Path, *expected_files: str) -> None:
    modes = _modes(root)
    for name in expected_files:
        assert name in modes, f"{name} missing; found {sorted(modes)}"
    for name, mode in modes.items():
        want = 0o700 if (root / name).is_dir() else 0o600
        assert mode == want, f"{name} is {mode:o}, expected {want:o}"


def _ingest(vault: Vault, data: bytes) -> str:
    return vault.ingest(io.BytesIO(data), SegmentMetadata(source_name="cam")).segment_id


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "existing-0755-folder"])
def test_modes_after_init_and_ingest(tmp_path: Path, open_umask: None, existing: bool) -> None:
    root = tmp_path / "vault"
    if existing:
        root.mkdir(mode=0o755)
        root.chmod(0o755)
    vault = Vault.init(root, passphrase=PASSPHRASE, kdf=FAST_KDF)
    _assert_private(root, "vault.key", "index.sqlite", "index.state", "segments", "tmp")

    segment_id = _ingest(vault, os.urandom(20_000))
    writer = vault.open_writer()  # a segment being written sits in tmp/
    writer.write(b"partial" * 1000)
    _assert_private(
        root,
        "index.sqlite-wal",  # SQLite's files exist while the vault is open
        "index.sqlite-shm",
        f"segments/{segment_id}.lvs",
        f"tmp/{writer.segment_id}.lvs.part",
    )
    writer.abort()
    vault.close()
    _assert_private(root, f"segments/{segment_id}.lvs", "index.state")


def test_open_tightens_a_loosened_vault_and_quarantine_is_private(
    tmp_path: Path, open_umask: None
) -> None:
    root = tmp_path / "vault"
    with Vault.init(root, passphrase=PASSPHRASE, kdf=FAST_KDF) as vault:
        _ingest(vault, b"raw" * 1000)
    root.chmod(0o755)
    (root / "index.sqlite").chmod(0o644)
    (root / "segments").chmod(0o755)
    (root / "segments" / f"{'ab' * 16}.lvs").write_bytes(b"unknown to the index")
    (root / "segments" / f"{'ab' * 16}.lvs").chmod(0o600)
    with Vault.open(root, passphrase=PASSPHRASE) as vault:
        _ingest(vault, b"more" * 1000)
        _assert_private(
            root,
            "index.sqlite-wal",
            "index.sqlite-shm",
            "quarantine",
            f"quarantine/{'ab' * 16}.lvs",
        )
