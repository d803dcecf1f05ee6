"""fsqL wire dtypes: an fsq code packed exactly into ceil(d*log2(L)/8) bytes (issue 11)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lifeveil.errors import EgressRefusedError, ProtocolError
from lifeveil.transport.codes import CODE_LEVELS, code_payload_bytes, pack_code, unpack_code
from lifeveil.transport.frame import (
    HEADER_BYTES,
    WireSpec,
    decode_frame,
    encode_cover_frame,
    encode_frame,
)
from lifeveil.transport.record import ZRecord


def _code(rng: np.random.Generator, d: int, levels: int) -> np.ndarray:
    half = (levels - 1) / 2  # the fsq head's code: round(b) / half in float32
    return (rng.integers(-half, half + 1, d).astype(np.float32) / np.float32(half)).astype(
        np.float32
    )


@pytest.mark.parametrize("levels", CODE_LEVELS)
@pytest.mark.parametrize("d", [1, 7, 64, 257])
def test_codes_round_trip_exactly_in_the_fewest_bytes(levels: int, d: int) -> None:
    rng = np.random.default_rng(levels * 1000 + d)
    spec = WireSpec(z_dim=d, dtype=f"fsq{levels}")  # type: ignore[arg-type]
    assert (
        spec.payload_bytes == code_payload_bytes(d, levels) == math.ceil(d * math.log2(levels) / 8)
    )
    for z in (_code(rng, d, levels), np.full(d, 1.0, np.float32), np.full(d, -1.0, np.float32)):
        frame = encode_frame(ZRecord(9, 42, z), spec)
        assert len(frame) == spec.frame_bytes
        record = decode_frame(frame, spec)
        assert record is not None and np.array_equal(record.z, z)


def test_the_default_code_takes_19_bytes_and_a_64_byte_frame() -> None:
    spec = WireSpec(z_dim=64, dtype="fsq5")
    assert spec.payload_bytes == 19 and spec.frame_bytes == 64 == HEADER_BYTES + 32
    assert WireSpec.from_token(spec.token()) == spec and spec.code_levels == 5
    assert WireSpec(64, "fp16").frame_bytes == 160 and WireSpec(64, "int8").frame_bytes == 96


def test_golden_fsq3_frame() -> None:
    z = np.array([-1.0, 0.0, 1.0, 1.0, -1.0], dtype=np.float32)  # digits 0 1 2 2 0 (base 3)
    frame = encode_frame(ZRecord(1, 2, z), WireSpec(z_dim=5, dtype="fsq3"))
    number = 0 + 1 * 3 + 2 * 9 + 2 * 27 + 0 * 81  # coordinate 0 is the least significant digit
    assert pack_code(z, 3) == number.to_bytes(1, "little") == bytes([75])
    assert frame.hex() == (
        "4c565a4601000300050000000000000001000000000000000200000000000000"  # header, dtype 3
        "4b" + "00" * 31  # the packed code, then zero padding to 64 bytes
    )


def test_a_vector_off_the_grid_is_refused_at_egress() -> None:
    spec = WireSpec(z_dim=4, dtype="fsq5")
    for z in ([0.1, 0.0, 0.0, 0.0], [1.5, 0.0, 0.0, 0.0], [0.25, 0.5, 0.0, 0.0]):
        with pytest.raises(EgressRefusedError, match="not a 5-level code"):
            encode_frame(ZRecord(1, 1, np.array(z, np.float32)), spec)


def test_decode_rejects_a_number_beyond_the_code_and_a_scale() -> None:
    spec = WireSpec(z_dim=3, dtype="fsq3")  # 27 codes in one byte
    frame = bytearray(encode_frame(ZRecord(1, 1, np.zeros(3, np.float32)), spec))
    frame[HEADER_BYTES] = 27
    with pytest.raises(ProtocolError, match="beyond a fsq3 code"):
        decode_frame(bytes(frame), spec)
    frame[HEADER_BYTES] = 0
    frame[12:16] = np.float32(0.5).tobytes()
    with pytest.raises(ProtocolError, match="must have scale 0"):
        decode_frame(bytes(frame), spec)
    assert unpack_code(bytes([26]), 3, 3) is not None and unpack_code(bytes([27]), 3, 3) is None


def test_cover_frames_of_a_code_spec_are_the_same_size() -> None:
    spec = WireSpec(z_dim=64, dtype="fsq5")
    cover = encode_cover_frame(spec)
    assert len(cover) == spec.frame_bytes and decode_frame(cover, spec) is None


def test_a_server_of_another_dtype_refuses_code_frames() -> None:
    z = np.zeros(64, np.float32)
    frame = encode_frame(ZRecord(1, 1, z), WireSpec(64, "fsq5"))
    with pytest.raises(ProtocolError):
        decode_frame(frame, WireSpec(64, "fsq3"))
