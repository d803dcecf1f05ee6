"""Shared constants and helpers of the vault tests (imported by conftest and test modules)."""

from __future__ import annotations

import hashlib
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
