"""The LifeVeil wire format: fixed-size frames carrying z, and fixed-size acks.

Pure functions only; the stateful sender is :mod:`lifeveil.transport.uplink`.

Frame layout (version 1, all integers little-endian)::

    offset  size  field
         0     4  magic          b"LVZF"
         4     1  version        1
         5     1  flags          bit 0 = cover (dummy) frame; other bits must be 0
         6     1  dtype          1 = fp16, 2 = int8, L (odd, 3..15) = fsqL packed code
         7     1  reserved       0
         8     2  z_dim          u16, must equal WireSpec.z_dim
        10     2  space          u16 tag of the privatizer version that made z
                                 (record.space_tag; 0 = undeclared); 0 for cover
        12     4  scale          f32 int8 dequantisation step (z = q * scale); 0 otherwise
        16     8  seq            u64 device-local sequence number (< 2**63); 0 for cover
        24     8  timestamp_us   i64 capture time, microseconds since the Unix epoch; 0 for cover
        32     P  payload        z as fp16 (P = 2*d), int8 (P = d) or an fsqL code packed
                                 base L (P = ceil(d*log2(L)/8), see transport.codes);
                                 random bytes for cover
      32+P     -  padding        zeros up to the next multiple of 32 bytes

Every frame of a given :class:`WireSpec` -- real or cover -- has exactly
``WireSpec.frame_bytes`` bytes, and the uplink sends one per tick whether or not there is
anything to say, so a network observer learns neither *when* the device saw something nor
*how much* (which compressed or variable-length encodings would leak). Frames travel only
inside TLS: TLS hides the flags and the payload, so cover and real frames look the same on
the wire; without TLS an observer could read the cover bit directly.

Acks (server -> device) are one per received frame, cover included, all the same size; on
the WebSocket the ack for frame i is sent when frame i+1 arrives, so downlink timing follows
the device's metronome rather than the server's storage latency. Ack layout (16 bytes)::

         0     4  magic   b"LVAK"
         4     1  version 1
         5     1  status  AckStatus
         6     2  reserved 0
         8     8  seq     u64 (0 for a cover ack)
"""

from __future__ import annotations

import enum
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from lifeveil.errors import EgressRefusedError, ProtocolError
from lifeveil.transport.codes import (
    CODE_LEVELS,
    code_indices,
    code_payload_bytes,
    pack_code,
    unpack_code,
)
from lifeveil.transport.record import MAX_SEQ, MAX_SPACE, MAX_TIMESTAMP_US, ZRecord

FRAME_MAGIC = b"LVZF"
ACK_MAGIC = b"LVAK"
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
FRAME_ALIGN = 32
MAX_Z_DIM = 4096
FP16_MAX = 65504.0

FLAG_COVER = 0x01
_DTYPE_CODES = {"fp16": 1, "int8": 2} | {f"fsq{levels}": levels for levels in CODE_LEVELS}
#: Every payload encoding a WireSpec may name, for command-line choices.
WIRE_DTYPES = tuple(_DTYPE_CODES)
_HEADER = struct.Struct("<4sBBBBHHfQq")
_ACK = struct.Struct("<4sBBHQ")
HEADER_BYTES = _HEADER.size  # 32
ACK_BYTES = _ACK.size  # 16

WireDtype = Literal["fp16", "int8", "fsq3", "fsq5", "fsq7", "fsq9", "fsq11", "fsq13", "fsq15"]


@dataclass(frozen=True)
class WireSpec:
    """What the uplink carries; device and server must agree on all three fields.

    Attributes:
        z_dim: dimension d of z (1..4096).
        dtype: payload encoding, ``"fp16"`` (2 bytes/value), ``"int8"`` (1 byte/value,
            symmetric per-frame scale, error <= max|z|/254 per value) or ``"fsqL"`` (an
            L-level fsq code packed exactly into ceil(d*log2(L)/8) bytes; only codes pass).
        version: frame format version; only 1 exists.
    """

    z_dim: int = 64
    dtype: WireDtype = "fp16"
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.z_dim, bool) or not isinstance(self.z_dim, int):
            raise ProtocolError(f"WireSpec.z_dim must be an int, got {self.z_dim!r}")
        if not 1 <= self.z_dim <= MAX_Z_DIM:
            raise ProtocolError(f"WireSpec.z_dim={self.z_dim} is outside 1..{MAX_Z_DIM}")
        if self.dtype not in _DTYPE_CODES:
            raise ProtocolError(
                f"WireSpec.dtype={self.dtype!r}; choose one of {', '.join(_DTYPE_CODES)}"
            )
        if self.version not in SUPPORTED_VERSIONS:
            raise ProtocolError(
                f"frame version {self.version} is not supported; this LifeVeil speaks "
                f"{SUPPORTED_VERSIONS}; upgrade the older side"
            )

    @property
    def code_levels(self) -> int | None:
        """L for an ``fsqL`` dtype (a packed code), None for fp16 and int8."""
        return int(self.dtype[3:]) if self.dtype.startswith("fsq") else None

    @property
    def payload_bytes(self) -> int:
        """Bytes of encoded z: 2*d for fp16, d for int8, ceil(d*log2(L)/8) for fsqL."""
        if self.code_levels is not None:
            return code_payload_bytes(self.z_dim, self.code_levels)
        return self.z_dim * (2 if self.dtype == "fp16" else 1)

    @property
    def frame_bytes(self) -> int:
        """Total size of every frame of this spec, real or cover."""
        raw = HEADER_BYTES + self.payload_bytes
        return -(-raw // FRAME_ALIGN) * FRAME_ALIGN

    def token(self) -> str:
        """Compact form for the ``X-LifeVeil-Wire`` handshake header, e.g. ``"1;64;fp16"``."""
        return f"{self.version};{self.z_dim};{self.dtype}"

    @classmethod
    def from_token(cls, token: str) -> WireSpec:
        """Parse :meth:`token` output; ProtocolError if malformed."""
        parts = token.strip().split(";")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise ProtocolError(
                f"wire spec {token!r} is malformed; expected 'VERSION;Z_DIM;DTYPE' like '1;64;fp16'"
            )
        return cls(z_dim=int(parts[1]), dtype=parts[2], version=int(parts[0]))  # type: ignore[arg-type]

    def describe(self) -> str:
        """Human-readable summary, e.g. ``"v1 d=64 fp16 (160-byte frames)"``."""
        return f"v{self.version} d={self.z_dim} {self.dtype} ({self.frame_bytes}-byte frames)"


class AckStatus(enum.IntEnum):
    """What the server did with a frame."""

    COVER = 0  #: a cover frame; nothing stored
    STORED = 1  #: a new record, durably committed before the ack was sent
    DUPLICATE = 2  #: (device, seq) was already stored with identical content; ignored
    CONFLICT = 3  #: (device, seq) was already stored with *different* content; first one kept
    #: the frame's space tag names no privatizer version registered for this tenant: not
    #: stored (register the version, then resend); the stream stays open for other frames
    UNKNOWN_SPACE = 4


class Ack(NamedTuple):
    """A decoded ack: the status and the sequence number it refers to (0 for cover)."""

    status: AckStatus
    seq: int


def z_problem(z: object, spec: WireSpec) -> str | None:
    """Describe what is wrong with ``z`` as a z vector of ``spec``, or None if it is valid.

    Valid means: a float32 numpy array of shape ``(spec.z_dim,)`` with finite values, and for
    fp16 within +-65504 so that encoding cannot overflow to inf.
    """
    if not isinstance(z, np.ndarray):
        return f"z must be a numpy float32 array of shape ({spec.z_dim},), got {type(z).__name__}"
    if z.dtype != np.float32:
        return f"z must have dtype float32, got {z.dtype}; convert with z.astype(np.float32)"
    if z.shape != (spec.z_dim,):
        return f"z has shape {z.shape}; this uplink carries shape ({spec.z_dim},) only"
    if not np.all(np.isfinite(z)):
        bad = int(np.flatnonzero(~np.isfinite(z))[0])
        return f"z contains NaN or inf (first at index {bad})"
    if spec.dtype == "fp16" and float(np.max(np.abs(z))) > FP16_MAX:
        return f"z has values beyond +-{FP16_MAX:g}, which fp16 cannot carry; use dtype int8"
    levels = spec.code_levels
    if levels is not None and code_indices(z, levels) is None:
        return (
            f"z is not a {levels}-level code (values -1..1 in steps of {2 / (levels - 1):g}); "
            f"this uplink carries {spec.dtype} codes only: a VIB privatizer needs fp16 or int8"
        )
    return None


def record_problem(record: object, spec: WireSpec) -> str | None:
    """Describe what is wrong with ``record`` as a :class:`ZRecord` of ``spec``, or None."""
    if type(record) is not ZRecord:
        return f"only ZRecord may be sent, got {type(record).__name__}"
    for name, value, top in (
        ("seq", record.seq, MAX_SEQ),
        ("timestamp_us", record.timestamp_us, MAX_TIMESTAMP_US),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            return f"ZRecord.{name} must be an int, got {type(value).__name__}"
        if not 0 <= int(value) <= top:
            return f"ZRecord.{name}={value} is outside 0..2**63-1"
    space = record.space
    if isinstance(space, bool) or not isinstance(space, int | np.integer):
        return f"ZRecord.space must be an int, got {type(space).__name__}"
    if not 0 <= int(space) <= MAX_SPACE:
        return f"ZRecord.space={space} is outside 0..{MAX_SPACE}"
    return z_problem(record.z, spec)


def quantize_int8(z: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Symmetric per-vector int8 quantisation.

    Args:
        z: float32 array of shape ``(d,)`` with finite values.

    Returns:
        ``(q, scale)``: int8 array in ``[-127, 127]`` of shape ``(d,)`` and the float32 step,
        with ``|z - q * scale| <= scale / 2`` elementwise and ``scale = max|z| / 127``
        (0 when z is all zeros).

    >>> q, s = quantize_int8(np.array([1.27, -0.635, 0.0], dtype=np.float32))
    >>> q.tolist(), round(float(s), 6)
    ([127, -64, 0], 0.01)
    """
    amax = float(np.max(np.abs(z))) if z.size else 0.0
    scale = np.float32(amax / 127.0)
    if scale == 0:
        return np.zeros(z.shape, dtype=np.int8), np.float32(0.0)
    q = np.clip(np.rint(z / scale), -127, 127).astype(np.int8)
    return q, scale


def dequantize_int8(q: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of :func:`quantize_int8`: float32 array ``q * scale`` of the same shape."""
    return q.astype(np.float32) * np.float32(scale)


def encode_frame(record: ZRecord, spec: WireSpec) -> bytes:
    """Serialise one real record into exactly ``spec.frame_bytes`` bytes.

    Raises:
        EgressRefusedError: if ``record`` is not a valid :class:`ZRecord` for ``spec``.
    """
    problem = record_problem(record, spec)
    if problem:
        raise EgressRefusedError(f"refusing to encode a frame: {problem}")
    if spec.dtype == "fp16":
        payload, scale = record.z.astype("<f2").tobytes(), np.float32(0.0)
    elif spec.code_levels is not None:
        payload, scale = pack_code(record.z, spec.code_levels), np.float32(0.0)
    else:
        q, scale = quantize_int8(record.z)
        payload = q.tobytes()
    header = _pack_header(
        spec, 0, scale, int(record.seq), int(record.timestamp_us), int(record.space)
    )
    return _pad(header + payload, spec)


def encode_cover_frame(spec: WireSpec, random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """A cover (dummy) frame: same size as a real frame, random payload, nothing to store.

    ``random_bytes(n)`` supplies the payload; the default is the OS CSPRNG. Tests pass a
    deterministic source to pin the bytes.
    """
    header = _pack_header(spec, FLAG_COVER, np.float32(0.0), 0, 0)
    return _pad(header + random_bytes(spec.payload_bytes), spec)


def decode_frame(data: bytes, spec: WireSpec) -> ZRecord | None:
    """Parse one frame; returns the record, or None for a cover frame.

    Raises:
        ProtocolError: wrong size, magic, version, dtype, dimension, flags, non-zero reserved
            or padding bytes, out-of-range seq/timestamp, a cover frame with a non-zero seq,
            timestamp or space, or a non-finite z. The message says
            which field and what was expected.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"a frame must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) != spec.frame_bytes:
        raise ProtocolError(f"frame is {len(data)} bytes; this server expects {spec.describe()}")
    header = _Header._make(_HEADER.unpack_from(data))
    _check_header(header, spec)
    end = HEADER_BYTES + spec.payload_bytes
    if any(data[end:]):
        raise ProtocolError("frame padding must be zero bytes")
    if header.flags & FLAG_COVER:
        if header.seq or header.timestamp_us or header.space:
            raise ProtocolError("a cover frame must carry seq 0, timestamp_us 0 and space 0")
        return None
    seq, ts = header.seq, header.timestamp_us
    if not 0 <= seq <= MAX_SEQ or not 0 <= ts <= MAX_TIMESTAMP_US:
        raise ProtocolError(f"frame seq={seq} / timestamp_us={ts} outside 0..2**63-1")
    z = _decode_payload(data[HEADER_BYTES:end], spec, header.scale, seq)
    return ZRecord(seq=seq, timestamp_us=ts, z=z, space=header.space)


def encode_ack(status: AckStatus, seq: int = 0) -> bytes:
    """One 16-byte ack; ``seq`` is 0 for cover acks."""
    return _ACK.pack(ACK_MAGIC, PROTOCOL_VERSION, int(status), 0, seq)


def decode_ack(data: bytes) -> Ack:
    """Parse :func:`encode_ack` output; ProtocolError if malformed."""
    if not isinstance(data, bytes | bytearray) or len(data) != ACK_BYTES:
        size = len(data) if isinstance(data, bytes | bytearray | str) else "?"
        raise ProtocolError(f"ack must be {ACK_BYTES} bytes, got {size}")
    magic, version, status, reserved, seq = _ACK.unpack(bytes(data))
    if magic != ACK_MAGIC or version not in SUPPORTED_VERSIONS or reserved:
        raise ProtocolError(f"malformed ack header {bytes(data[:8]).hex()}")
    try:
        return Ack(AckStatus(status), seq)
    except ValueError:
        raise ProtocolError(f"unknown ack status {status}") from None


def _pack_header(
    spec: WireSpec, flags: int, scale: np.float32, seq: int, ts: int, space: int = 0
) -> bytes:
    code = _DTYPE_CODES[spec.dtype]
    return _HEADER.pack(
        FRAME_MAGIC, spec.version, flags, code, 0, spec.z_dim, space, scale, seq, ts
    )


def _pad(body: bytes, spec: WireSpec) -> bytes:
    return body + bytes(spec.frame_bytes - len(body))


class _Header(NamedTuple):
    magic: bytes
    version: int
    flags: int
    dtype_code: int
    reserved0: int
    z_dim: int
    space: int
    scale: float
    seq: int
    timestamp_us: int


def _check_header(h: _Header, spec: WireSpec) -> None:
    if h.magic != FRAME_MAGIC:
        raise ProtocolError(f"bad frame magic {h.magic!r}; expected {FRAME_MAGIC!r}")
    if h.version != spec.version:
        raise ProtocolError(f"frame version {h.version}; this server expects {spec.version}")
    if h.dtype_code != _DTYPE_CODES[spec.dtype]:
        names = {v: k for k, v in _DTYPE_CODES.items()}
        got = names.get(h.dtype_code, f"unknown code {h.dtype_code}")
        raise ProtocolError(f"frame dtype is {got}; this server expects {spec.dtype}")
    if h.flags & ~FLAG_COVER:
        raise ProtocolError(f"frame flags 0x{h.flags:02x} set unknown bits; only bit 0 = cover")
    if h.reserved0:
        raise ProtocolError("frame reserved header byte must be zero")
    if h.z_dim != spec.z_dim:
        raise ProtocolError(f"frame carries z_dim={h.z_dim}; this server stores d={spec.z_dim}")


def _decode_payload(payload: bytes, spec: WireSpec, scale: float, seq: int) -> np.ndarray:
    if (spec.dtype == "fp16" or spec.code_levels is not None) and scale != 0:
        raise ProtocolError(f"{spec.dtype} frames must have scale 0")
    if spec.dtype == "fp16":
        z = np.frombuffer(payload, dtype="<f2").astype(np.float32)
    elif spec.code_levels is not None:
        z = unpack_code(payload, spec.z_dim, spec.code_levels)
        if z is None:
            raise ProtocolError(f"frame seq={seq} carries a number beyond a {spec.dtype} code")
    else:
        if not math.isfinite(scale) or scale < 0:
            raise ProtocolError(f"int8 frame scale {scale} must be finite and >= 0")
        z = dequantize_int8(np.frombuffer(payload, dtype=np.int8), scale)
    if not np.all(np.isfinite(z)):
        raise ProtocolError(f"frame seq={seq} carries NaN or inf in z; only finite z is accepted")
    return z
