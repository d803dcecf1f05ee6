"""The egress guard: the single gate between device data and the network socket.

Raw video must never leave the device. Rather than trusting every caller to pass the right
thing, the uplink only writes :class:`GuardedFrame` objects, and only an
:class:`EgressGuard` can make one -- from a :class:`~lifeveil.transport.record.ZRecord` whose
z has exactly the configured shape and dtype and finite values, or as a cover frame. A raw
frame, an array of the wrong shape, bytes, a string or any other object raises
:class:`~lifeveil.errors.EgressRefusedError` before anything reaches the socket.
"""

from __future__ import annotations

import numpy as np

from lifeveil.errors import EgressRefusedError
from lifeveil.transport.frame import (
    WireSpec,
    encode_cover_frame,
    encode_frame,
    record_problem,
    z_problem,
)
from lifeveil.transport.record import ZRecord


class GuardedFrame:
    """Frame bytes approved by one :class:`EgressGuard`; build them only through the guard.

    Attributes:
        data: exactly ``spec.frame_bytes`` bytes.
        seq: the record's sequence number, or None for a cover frame.
    """

    __slots__ = ("_data", "_issuer", "_seq")

    def __init__(self, data: bytes, seq: int | None, issuer: EgressGuard) -> None:
        self._data = bytes(data)
        self._seq = seq
        self._issuer = issuer

    @property
    def data(self) -> bytes:
        """The frame bytes (read-only)."""
        return self._data

    @property
    def seq(self) -> int | None:
        """Sequence number of the record, None for cover."""
        return self._seq

    @property
    def is_cover(self) -> bool:
        """True for cover (dummy) frames."""
        return self.seq is None

    def __repr__(self) -> str:
        kind = "cover" if self.seq is None else f"seq={self.seq}"
        return f"GuardedFrame({kind}, {len(self.data)} bytes)"


class EgressGuard:
    """Turns ZRecords of one :class:`WireSpec` into frames; refuses everything else.

    >>> guard = EgressGuard(WireSpec(z_dim=4))
    >>> guard.frame(ZRecord(seq=0, timestamp_us=0, z=np.zeros(4, np.float32))).data[:4]
    b'LVZF'
    >>> guard.frame(b"raw jpeg bytes")
    Traceback (most recent call last):
    ...
    lifeveil.errors.EgressRefusedError: egress refused: only ZRecord may be sent, got bytes
    """

    def __init__(self, spec: WireSpec) -> None:
        if not isinstance(spec, WireSpec):
            raise EgressRefusedError(f"EgressGuard needs a WireSpec, got {type(spec).__name__}")
        self.spec = spec
        self.refused = 0

    def frame(self, record: object) -> GuardedFrame:
        """Encode one record; raises EgressRefusedError unless it is a valid ZRecord."""
        problem = record_problem(record, self.spec)
        if problem:
            self.refused += 1
            raise EgressRefusedError(f"egress refused: {problem}")
        assert isinstance(record, ZRecord)
        return GuardedFrame(encode_frame(record, self.spec), int(record.seq), self)

    def cover(self) -> GuardedFrame:
        """A cover frame of the same size as every real frame, with a random payload."""
        return GuardedFrame(encode_cover_frame(self.spec), None, self)

    def check_query_z(self, z: object) -> np.ndarray:
        """Validate a query vector before it goes up in a query; returns it unchanged.

        Queries carry z too, so they pass the same shape/dtype/finite checks as the uplink.
        """
        problem = z_problem(z, self.spec)
        if problem:
            self.refused += 1
            raise EgressRefusedError(f"egress refused: {problem}")
        assert isinstance(z, np.ndarray)
        return z

    def approve(self, frame: object) -> bytes:
        """The bytes of a frame this guard issued; anything else raises EgressRefusedError.

        The uplink calls this immediately before every socket write.
        """
        if not isinstance(frame, GuardedFrame) or frame._issuer is not self:
            self.refused += 1
            raise EgressRefusedError(
                f"egress refused: {type(frame).__name__} was not produced by this EgressGuard; "
                "only EgressGuard.frame(ZRecord) or EgressGuard.cover() output may be sent"
            )
        return frame.data
