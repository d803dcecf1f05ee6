"""The one record type that may leave the device: a privatized vector z with its metadata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Sequence numbers and timestamps are stored as signed 64-bit integers (SQLite INTEGER,
#: PostgreSQL BIGINT), so the wire's unsigned 64-bit fields only carry values below 2**63.
MAX_SEQ = 2**63 - 1
MAX_TIMESTAMP_US = 2**63 - 1
#: Space tags are 16-bit: two bytes of the frame header carry them.
MAX_SPACE = 2**16 - 1
#: The tag of a z made by no declared privatizer version (devices from before issue 14).
NO_SPACE = 0


def space_tag(version: str) -> int:
    """The 16-bit tag that names privatizer ``version`` (a 16-hex-digit id) on the wire.

    The first four hex digits of the id, with 0 (reserved for :data:`NO_SPACE`) mapped to 1.
    Two versions of one tenant may share a tag (probability about 1 in 65,536 per pair); the
    server refuses to register the second, so a tag is never ambiguous where it is read.

    >>> space_tag("3fa2c81d00e4b7a9"), space_tag("0000ffffffffffff")
    (16290, 1)
    """
    if len(version) != 16 or any(c not in "0123456789abcdef" for c in version):
        raise ValueError(f"privatizer version {version!r} is not 16 lower-case hex digits")
    return int(version[:4], 16) or 1


@dataclass(frozen=True, eq=False)
class ZRecord:
    """One Minimal Sufficient Representation ready for the uplink.

    Attributes:
        seq: device-local sequence number, unique per device, ``0 <= seq < 2**63``. The server
            deduplicates by ``(device, seq)``, so resending a record is harmless.
        timestamp_us: capture time of the frame(s) z summarises, microseconds since the Unix
            epoch (UTC), ``0 <= timestamp_us < 2**63``.
        z: float32 array of shape ``(d,)``; ``d`` must equal the configured ``WireSpec.z_dim``.
        space: which representation space z lives in: :func:`space_tag` of the privatizer
            version that made it, or :data:`NO_SPACE`. The server stores z by space and never
            compares z of different spaces.
    """

    seq: int
    timestamp_us: int
    z: np.ndarray
    space: int = NO_SPACE

    def same_as(self, other: ZRecord) -> bool:
        """True if both records carry the same seq, timestamp, space and bit-identical z."""
        return (
            self.seq == other.seq
            and self.space == other.space
            and self.timestamp_us == other.timestamp_us
            and self.z.shape == other.z.shape
            and self.z.dtype == other.z.dtype
            and self.z.tobytes() == other.z.tobytes()
        )
