"""Typed settings of the device agent, loadable from TOML (``lifeveil device run --config``)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifeveil.errors import InputError
from lifeveil.privatizer.release import ReleaseMode


@dataclass(frozen=True)
class DeviceConfig:
    """How the agent samples, records and uploads; the defaults suit a home camera."""

    fps: float = 2.0  # frames per second turned into z (clip mode: frames fed into clips)
    rate_hz: float = 10.0  # uplink frames per second, real or cover, whatever the camera sees
    segment_s: float = 10.0  # seconds of raw video per encrypted vault segment
    realtime: bool = False  # pace file sources at capture speed, like a camera
    release_mode: ReleaseMode | None = None  # None = the checkpoint's deploy_mode
    max_in_flight: int = 256  # unacked frames on the wire before ticks carry cover only
    backoff_initial_s: float = 0.5  # first reconnect delay; doubles up to backoff_max_s
    backoff_max_s: float = 30.0
    # Privacy budget: bits of released z per UTC day (the ledger's bound, see
    # docs/GUARANTEES.md); once reached, only cover frames leave until midnight UTC.
    # None (or absent from the TOML file) = no cap; the ledger still counts.
    daily_budget_bits: float | None = None

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.rate_hz <= 0 or self.segment_s <= 0:
            raise InputError(
                f"fps={self.fps}, rate_hz={self.rate_hz} and segment_s={self.segment_s} "
                "must all be positive"
            )
        if self.daily_budget_bits is not None and not self.daily_budget_bits > 0:
            raise InputError(
                f"daily_budget_bits={self.daily_budget_bits} must be positive (bits per UTC "
                "day); leave it out for no cap"
            )
        if self.release_mode is not None:
            object.__setattr__(
                self, "release_mode", ReleaseMode.parse(self.release_mode, "release_mode")
            )

    def replace(self, **changes: Any) -> DeviceConfig:
        """A copy with the given fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON reports)."""
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, path: str | Path) -> DeviceConfig:
        """Read a TOML file of DeviceConfig fields; unknown keys are refused."""
        p = Path(path)
        try:
            values = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"{p}: no such device config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{p}: not valid TOML ({exc})") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{p}: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**values)
