"""The frame format is a contract: pinned bytes, constant size, strict decoding."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from lifeveil.errors import EgressRefusedError, ProtocolError
from lifeveil.transport.frame import (
    ACK_BYTES,
    HEADER_BYTES,
    AckStatus,
    WireSpec,
    decode_ack,
    decode_frame,
    dequantize_int8,
    encode_ack,
    encode_cover_frame,
    encode_frame,
    quantize_int8,
)
from lifeveil.transport.record import MAX_SPACE, ZRecord, space_tag

TS = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in microseconds
Z4 = np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32)

# Pinned bytes; if these change, the wire format changed: bump the version byte.
GOLDEN_FP16 = bytes.fromhex(
    "4c565a46"  # magic "LVZF"
    "01"  # version 1
    "00"  # flags: real
    "01"  # dtype fp16
    "00"  # reserved
    "0400"  # z_dim 4
    "0000"  # space 0 (undeclared)
    "00000000"  # scale 0.0 (unused for fp16)
    "0100000000000000"  # seq 1
    "00401e18240a0600"  # timestamp_us 1_700_000_000_000_000
    "0038"
    "00bc"
    "0040"
    "0000" + "00" * 24  # fp16 0.5, -1.0, 2.0, 0.0  # padding to 64 bytes
)
GOLDEN_INT8 = bytes.fromhex(
    "4c565a46"
    "01"
    "00"
    "02"
    "00"
    "0400"
    "0000"
    "0402813c"  # scale float32(2/127)
    "0100000000000000"
    "00401e18240a0600"
    "20"
    "c0"
    "7f"
    "00" + "00" * 28  # int8 32, -64, 127, 0  # padding to 64 bytes
)
GOLDEN_COVER_FP16 = bytes.fromhex(
    "4c565a46"
    "01"
    "01"
    "01"
    "00"
    "0400"
    "0000"
    "00000000"
    "0000000000000000"
    "0000000000000000"
    "aaaaaaaaaaaaaaaa" + "00" * 24  # the "random" payload from the test source
)


def _record(seq: int = 1, z: np.ndarray = Z4, ts: int = TS) -> ZRecord:
    return ZRecord(seq=seq, timestamp_us=ts, z=z)


def test_golden_fp16_frame():
    assert encode_frame(_record(), WireSpec(z_dim=4)) == GOLDEN_FP16


def test_golden_int8_frame():
    assert encode_frame(_record(), WireSpec(z_dim=4, dtype="int8")) == GOLDEN_INT8


def test_golden_cover_frame():
    frame = encode_cover_frame(WireSpec(z_dim=4), random_bytes=lambda n: b"\xaa" * n)
    assert frame == GOLDEN_COVER_FP16


def test_golden_ack():
    assert encode_ack(AckStatus.STORED, 7) == bytes.fromhex("4c56414b01010000") + (7).to_bytes(
        8, "little"
    )
    assert encode_ack(AckStatus.COVER) == b"LVAK\x01\x00" + bytes(10)


def test_header_layout_is_32_bytes():
    assert HEADER_BYTES == 32
    assert ACK_BYTES == 16


@pytest.mark.parametrize("dtype", ["fp16", "int8"])
@pytest.mark.parametrize("z_dim", [1, 4, 63, 64, 100, 512])
def test_every_frame_has_the_same_size(dtype, z_dim):
    spec = WireSpec(z_dim=z_dim, dtype=dtype)
    rng = np.random.default_rng(z_dim)
    sizes = {len(encode_cover_frame(spec)) for _ in range(5)}
    for seq in range(5):
        z = (rng.standard_normal(z_dim) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
        sizes.add(len(encode_frame(_record(seq, z, ts=seq * 10**9), spec)))
    sizes.add(len(encode_frame(_record(2**63 - 1, np.zeros(z_dim, np.float32)), spec)))
    assert sizes == {spec.frame_bytes}
    assert spec.frame_bytes % 32 == 0


def test_default_frame_sizes():
    assert WireSpec().frame_bytes == 160  # 32 header + 64 x fp16
    assert WireSpec(dtype="int8").frame_bytes == 96  # 32 header + 64 x int8


def test_cover_payload_is_random_and_decodes_as_cover():
    spec = WireSpec()
    a, b = encode_cover_frame(spec), encode_cover_frame(spec)
    assert a[HEADER_BYTES:] != b[HEADER_BYTES:]
    assert decode_frame(a, spec) is None


@pytest.mark.parametrize("dtype", ["fp16", "int8"])
def test_round_trip(dtype):
    spec = WireSpec(z_dim=64, dtype=dtype)
    z = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    out = decode_frame(encode_frame(_record(42, z), spec), spec)
    assert out is not None and out.seq == 42 and out.timestamp_us == TS
    assert out.z.dtype == np.float32 and out.z.shape == (64,)
    tol = 1e-3 * np.abs(z) + 1e-4 if dtype == "fp16" else np.abs(z).max() / 254 + 1e-6
    assert np.all(np.abs(out.z - z) <= tol)


def test_int8_quantisation_error_bound():
    rng = np.random.default_rng(1)
    for scale in (1e-6, 1e-2, 1.0, 1e3, 6e4):
        z = (rng.standard_normal(256) * scale).astype(np.float32)
        q, step = quantize_int8(z)
        assert q.dtype == np.int8 and np.abs(q.astype(int)).max() <= 127
        err = np.abs(dequantize_int8(q, step) - z)
        assert err.max() <= step / 2 * (1 + 1e-5) + 1e-12
        assert np.isclose(step, np.abs(z).max() / 127, rtol=1e-6)


def test_int8_all_zero_vector():
    q, step = quantize_int8(np.zeros(8, np.float32))
    assert step == 0 and not q.any()
    spec = WireSpec(z_dim=8, dtype="int8")
    out = decode_frame(encode_frame(_record(z=np.zeros(8, np.float32)), spec), spec)
    assert out is not None and not out.z.any()


def _mutate(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (0, b"XXXX", "magic"),
        (4, b"\x02", "version"),
        (5, b"\x02", "flags"),
        (6, b"\x02", "dtype"),
        (7, b"\x01", "reserved"),
        (8, b"\x05\x00", "z_dim"),
        (12, struct.pack("<f", 1.0), "scale"),
        (16, (2**63).to_bytes(8, "little"), "seq"),
        (40, b"\x01", "padding"),
        (32, b"\x00\x7c", "NaN or inf"),  # fp16 +inf
        (32, b"\x01\x7e", "NaN or inf"),  # fp16 NaN
    ],
)
def test_decode_rejects_malformed(offset, value, message):
    spec = WireSpec(z_dim=4)
    with pytest.raises(ProtocolError, match=message):
        decode_frame(_mutate(GOLDEN_FP16, offset, value), spec)


def test_decode_rejects_wrong_size_and_type():
    spec = WireSpec(z_dim=4)
    with pytest.raises(ProtocolError, match="63 bytes"):
        decode_frame(GOLDEN_FP16[:-1], spec)
    with pytest.raises(ProtocolError, match="must be bytes"):
        decode_frame("not bytes", spec)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="expects"):
        decode_frame(GOLDEN_FP16, WireSpec(z_dim=64))


def test_decode_rejects_negative_int8_scale():
    spec = WireSpec(z_dim=4, dtype="int8")
    with pytest.raises(ProtocolError, match="scale"):
        decode_frame(_mutate(GOLDEN_INT8, 12, struct.pack("<f", -1.0)), spec)


def test_encode_refuses_invalid_records():
    spec = WireSpec(z_dim=4)
    with pytest.raises(EgressRefusedError, match="fp16 cannot carry"):
        encode_frame(_record(z=np.array([1e5, 0, 0, 0], np.float32)), spec)
    with pytest.raises(EgressRefusedError, match="seq"):
        encode_frame(_record(seq=-1), spec)
    with pytest.raises(EgressRefusedError, match="timestamp_us"):
        encode_frame(_record(ts=2**63), spec)


def test_wire_spec_validation_and_token():
    assert WireSpec.from_token("1;64;fp16") == WireSpec()
    assert WireSpec(z_dim=32, dtype="int8").token() == "1;32;int8"
    for bad in ("", "1;64", "a;64;fp16", "1;64;fp32", "2;64;fp16", "1;0;fp16"):
        with pytest.raises(ProtocolError):
            WireSpec.from_token(bad)


def test_ack_round_trip_and_rejects():
    for status in AckStatus:
        assert decode_ack(encode_ack(status, 12345)) == (status, 12345)
    with pytest.raises(ProtocolError):
        decode_ack(b"LVAK\x01\x09" + bytes(10))
    with pytest.raises(ProtocolError):
        decode_ack(b"short")


def test_space_tag_travels_in_header_bytes_10_and_11():
    spec = WireSpec(z_dim=4)
    tag = space_tag("3fa2c81d00e4b7a9")
    record = ZRecord(seq=1, timestamp_us=TS, z=Z4, space=tag)
    frame = encode_frame(record, spec)
    assert frame[10:12] == tag.to_bytes(2, "little")
    assert _mutate(frame, 10, b"\x00\x00") == GOLDEN_FP16  # only the tag differs
    out = decode_frame(frame, spec)
    assert out is not None and out.space == tag and out.same_as(record)
    assert not out.same_as(ZRecord(seq=1, timestamp_us=TS, z=Z4))


def test_space_tag_rules():
    assert space_tag("0000ffffffffffff") == 1  # 0 is reserved for undeclared
    assert space_tag("ffff000000000000") == MAX_SPACE
    with pytest.raises(ValueError, match="16 lower-case hex"):
        space_tag("3FA2C81D00E4B7A9")
    with pytest.raises(EgressRefusedError, match="space"):
        encode_frame(ZRecord(seq=1, timestamp_us=TS, z=Z4, space=MAX_SPACE + 1), WireSpec(z_dim=4))


def test_cover_frame_with_a_space_tag_is_refused():
    spec = WireSpec(z_dim=4)
    cover = encode_cover_frame(spec)
    with pytest.raises(ProtocolError, match="space 0"):
        decode_frame(_mutate(cover, 10, b"\x01\x00"), spec)
