"""The one vocabulary for what a privatizer releases per frame.

Checkpoint configs call it ``deploy_mode``, the device config ``release_mode`` and the CLIs
``--mode``; all three hold a :class:`ReleaseMode` and are validated by :meth:`ReleaseMode.parse`
at the boundary, nowhere else.
"""

from __future__ import annotations

from enum import StrEnum

from lifeveil.errors import InputError


class ReleaseMode(StrEnum):
    """``mean``: the posterior mean (or an fsq code), deterministic. ``sample``: a fresh draw
    from the posterior per frame (the KL bound holds only for samples)."""

    MEAN = "mean"
    SAMPLE = "sample"

    @classmethod
    def parse(cls, value: object, what: str = "release mode") -> ReleaseMode:
        """``value`` as a ReleaseMode; InputError naming ``what`` and the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise InputError(
                f"{what} must be one of {', '.join(m.value for m in cls)}, got {value!r}"
            ) from None

    @classmethod
    def choices(cls) -> list[str]:
        """The values, for argparse ``choices``."""
        return [m.value for m in cls]
