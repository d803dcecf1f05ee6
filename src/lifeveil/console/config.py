"""Typed settings of one console run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConsoleConfig:
    """Where the device keeps its state, and how the console shows it."""

    state: Path  # the device state folder (outbox.sqlite, device.json, ledger.sqlite)
    vault: Path | None = None  # the encrypted vault folder; None: no vault pages
    key_file: Path | None = None  # unlock the vault with this key file at start
    poll_s: float = 1.0  # how often the live transparency log asks for new records
    log_rows: int = 200  # records shown per page of the transparency log
