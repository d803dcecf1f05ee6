"""Turning received frames into stored records and acks (shared by WebSocket and HTTPS)."""

from __future__ import annotations

from lifeveil.errors import ProtocolError
from lifeveil.server.store import Principal, ZStore
from lifeveil.transport.frame import AckStatus, WireSpec, decode_frame, encode_ack
from lifeveil.transport.record import ZRecord


def decode_batch(body: bytes, spec: WireSpec, max_frames: int) -> list[ZRecord | None]:
    """Split a body of concatenated frames and decode each (None for cover frames).

    Raises:
        ProtocolError: the body is not a whole number of frames, holds more than
            ``max_frames``, or any frame is malformed (the message names its index). Nothing
            of a batch is stored unless every frame is valid.
    """
    size = spec.frame_bytes
    count, remainder = divmod(len(body), size)
    if remainder or count == 0:
        raise ProtocolError(
            f"body is {len(body)} bytes; expected 1..{max_frames} whole frames of {spec.describe()}"
        )
    if count > max_frames:
        raise ProtocolError(f"{count} frames in one request; the limit is {max_frames}")
    decoded = []
    for i in range(count):
        try:
            decoded.append(decode_frame(body[i * size : (i + 1) * size], spec))
        except ProtocolError as exc:
            raise ProtocolError(f"frame {i}: {exc}") from None
    return decoded


def ingest(store: ZStore, device: Principal, frames: list[ZRecord | None]) -> list[bytes]:
    """Store the real records of ``frames`` durably; one 16-byte ack per frame, cover included.

    The store is written even for an all-cover batch (the device's last-seen time), so that a
    cover frame costs the server about as much as a real one and response timing does not
    tell the two apart.
    """
    real = [f for f in frames if f is not None]
    statuses = iter(store.put_records(device, real))
    return [
        encode_ack(AckStatus.COVER) if f is None else encode_ack(next(statuses), f.seq)
        for f in frames
    ]
