"""The privacy budget page's data: the device's privacy ledger, if this LifeVeil has one.

:mod:`lifeveil.device.ledger` is imported on first use and its absence is handled (an older
device without it shows "no ledger"); only its public ``read_summary`` and ``LEDGER_FILE``
are used, and the file is opened read-only by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

LEDGER_MODULE = "lifeveil.device.ledger"


@dataclass(frozen=True)
class Budget:
    """What the ledger says, or why there is nothing to say."""

    available: bool  # a ledger was found and read
    note: str = ""  # why not, when not available
    summary: dict[str, Any] = field(default_factory=dict)  # ledger.read_summary's answer

    def cover_by_day(self) -> dict[str, int]:
        """Cover frames counted per UTC day."""
        return {d["day"]: int(d.get("cover", 0)) for d in self.summary.get("days", [])}


def ledger_module() -> ModuleType | None:
    """The ledger module, or None on a LifeVeil without one."""
    try:
        import lifeveil.device.ledger as ledger  # noqa: PLC0415  (optional, on first use)
    except ModuleNotFoundError as exc:
        if exc.name == LEDGER_MODULE:
            return None
        raise
    return ledger


def read_budget(state: Path) -> Budget:
    """The ledger summary of the device state folder ``state``."""
    ledger = ledger_module()
    if ledger is None:
        return Budget(False, "no ledger: this LifeVeil does not keep a privacy ledger")
    path = state / getattr(ledger, "LEDGER_FILE", "ledger.sqlite")
    summary = ledger.read_summary(path)
    if summary is None:
        return Budget(False, f"no ledger yet: the agent has not released any z ({path} missing)")
    return Budget(True, summary=summary)
