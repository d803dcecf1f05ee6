"""The one vocabulary for what a privatizer releases per frame.

Checkpoint configs call it ``deploy_mode``, the device config ``release_mode`` and the CLIs
``--mode``; all three hold a :class:`ReleaseMode` and are validated by :meth:`ReleaseMode.parse`
at the boundary, nowhere else. :func:`code_bits` is what an fsq release discloses per frame.
"""

from __future__ import annotations

import math
from enum import StrEnum

from lifeveil.errors import CheckpointError, InputError


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


def code_bits(z_dim: int, levels: int) -> float:
    """Exact bits per frame of a ``z_dim``-coordinate code with ``levels`` values each.

    >>> code_bits(64, 5) == 64 * math.log2(5)
    True
    """
    return z_dim * math.log2(levels)


def check_levels(levels: int) -> None:
    """FSQ levels must be odd and >= 3 (so 0 is a level and the code is symmetric)."""
    if levels < 3 or levels % 2 == 0:
        raise CheckpointError(f"fsq_levels must be an odd number >= 3, got {levels}")
