"""The one record type that may leave the device: a privatized vector z with its metadata."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Sequence numbers and timestamps are stored as signed 64-bit integers (SQLite INTEGER,
#: PostgreSQL BIGINT), so the wire's unsigned 64-bit fields only carry values below 2**63.
MAX_SEQ = 2**63 - 1
MAX_TIMESTAMP_US = 2**63 - 1


@dataclass(frozen=True, eq=False)
class ZRecord:
    """One Minimal Sufficient Representation ready for the uplink.

    Attributes:
        seq: device-local sequence number, unique per device, ``0 <= seq < 2**63``. The server
            deduplicates by ``(device, seq)``, so resending a record is harmless.
        timestamp_us: capture time of the frame(s) z summarises, microseconds since the Unix
            epoch (UTC), ``0 <= timestamp_us < 2**63``.
        z: float32 array of shape ``(d,)``; ``d`` must equal the configured ``WireSpec.z_dim``.
    """

    seq: int
    timestamp_us: int
    z: np.ndarray

    def same_as(self, other: ZRecord) -> bool:
        """True if both records carry the same seq, timestamp and bit-identical z."""
        return (
            self.seq == other.seq
            and self.timestamp_us == other.timestamp_us
            and self.z.shape == other.z.shape
            and self.z.dtype == other.z.dtype
            and self.z.tobytes() == other.z.tobytes()
        )
