"""Shared constants and helpers of the vault tests (imported by conftest and test modules)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from lifeveil.vault import KdfParams, Vault

FAST_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "correct horse battery staple"
CHUNK = 4096  # small chunks so a real clip spans >100 of them
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
DAY = 86_400.0


class FakeClock:
    """A settable clock in Unix seconds."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Name -> (sha256, mtime_ns) of every file under ``root``."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def segment_path(vault: Vault, segment_id: str) -> Path:
    """Where the encrypted file of a segment lives."""
    return vault.root / "segments" / f"{segment_id}.lvs"


def copy_index(root: Path, dest: Path) -> Path:
    """Copy ``index.sqlite`` of a closed vault (a backup); returns ``dest``."""
    shutil.copyfile(root / "index.sqlite", dest)
    return dest


def restore_index(copy: Path, root: Path) -> None:
    """Put an index copy back into a closed vault, as a user restoring a backup would."""
    for suffix in ("-wal", "-shm"):
        (root / f"index.sqlite{suffix}").unlink(missing_ok=True)
    shutil.copyfile(copy, root / "index.sqlite")


def segment_files(root: Path) -> list[str]:
    """Every segment file of the vault, wherever it is, as 'folder/name'."""
    return sorted(
        f"{p.parent.name}/{p.name}"
        for folder in ("segments", "quarantine", "tmp")
        if (root / folder).is_dir()
        for p in (root / folder).iterdir()
    )
