"""The egress guard refuses everything but valid z records, before any byte is produced."""

from __future__ import annotations

import numpy as np
import pytest

from lifeveil.errors import EgressRefusedError, ProtocolError
from lifeveil.transport.frame import WireSpec, decode_frame
from lifeveil.transport.guard import EgressGuard, GuardedFrame
from lifeveil.transport.record import ZRecord
from lifeveil.transport.uplink import MemoryOutbox, UplinkConfig, backoff_delay

SPEC = WireSpec(z_dim=64)


def _z(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def test_valid_record_becomes_one_frame():
    guard = EgressGuard(SPEC)
    frame = guard.frame(ZRecord(seq=3, timestamp_us=10, z=_z(64)))
    assert len(frame.data) == SPEC.frame_bytes and frame.seq == 3 and not frame.is_cover
    assert guard.approve(frame) == frame.data
    decoded = decode_frame(frame.data, SPEC)
    assert decoded is not None and decoded.seq == 3


def test_cover_frames_are_approved_and_same_size():
    guard = EgressGuard(SPEC)
    cover = guard.cover()
    assert cover.is_cover and len(guard.approve(cover)) == SPEC.frame_bytes


@pytest.mark.parametrize(
    ("thing", "reason"),
    [
        (np.zeros((480, 640, 3), np.uint8), "only ZRecord"),  # a raw camera frame
        (b"\xff\xd8\xff\xe0 jpeg", "only ZRecord"),
        ("a string", "only ZRecord"),
        (_z(64), "only ZRecord"),  # a bare vector, not a record
        ({"seq": 1, "z": [0.0] * 64}, "only ZRecord"),
        (None, "only ZRecord"),
        (ZRecord(0, 0, np.zeros((480, 640, 3), np.uint8)), "dtype"),  # raw frame inside a record
        (ZRecord(0, 0, _z(480, 640, 3)), "shape"),
        (ZRecord(0, 0, _z(63)), "shape"),
        (ZRecord(0, 0, _z(1, 64)), "shape"),
        (ZRecord(0, 0, _z(64, dtype=np.float64)), "float32"),
        (ZRecord(0, 0, [0.0] * 64), "numpy"),  # type: ignore[arg-type]
        (ZRecord(0, 0, np.full(64, np.nan, np.float32)), "NaN"),
        (ZRecord(0, 0, np.full(64, np.inf, np.float32)), "NaN or inf"),
        (ZRecord(0, 0, np.full(64, 1e6, np.float32)), "fp16"),
        (ZRecord(-1, 0, _z(64)), "seq"),
        (ZRecord(True, 0, _z(64)), "seq"),  # type: ignore[arg-type]
        (ZRecord(0, 1.5, _z(64)), "timestamp_us"),  # type: ignore[arg-type]
    ],
)
def test_refuses_anything_else(thing, reason):
    guard = EgressGuard(SPEC)
    with pytest.raises(EgressRefusedError, match=reason):
        guard.frame(thing)
    assert guard.refused == 1


def test_subclass_of_record_is_refused():
    class Sneaky(ZRecord):
        pass

    with pytest.raises(EgressRefusedError, match="only ZRecord"):
        EgressGuard(SPEC).frame(Sneaky(0, 0, _z(64)))


def test_approve_refuses_bytes_and_foreign_frames():
    guard, other = EgressGuard(SPEC), EgressGuard(SPEC)
    raw = b"\x00" * SPEC.frame_bytes  # right size, but not from the guard
    for thing in (raw, bytearray(raw), other.cover(), "text", None):
        with pytest.raises(EgressRefusedError, match="not produced by this EgressGuard"):
            guard.approve(thing)


def test_guarded_frame_is_read_only():
    frame = EgressGuard(SPEC).cover()
    with pytest.raises(AttributeError):
        frame.data = b"raw"  # type: ignore[misc]
    assert isinstance(frame, GuardedFrame)


def test_int8_spec_accepts_large_values():
    guard = EgressGuard(WireSpec(z_dim=64, dtype="int8"))
    assert len(guard.frame(ZRecord(0, 0, np.full(64, 1e6, np.float32))).data) == 96


def test_query_vectors_are_checked_too():
    guard = EgressGuard(SPEC)
    assert guard.check_query_z(_z(64)).shape == (64,)
    with pytest.raises(EgressRefusedError, match="shape"):
        guard.check_query_z(_z(32))


def test_uplink_refuses_plaintext_url():
    with pytest.raises(ProtocolError, match="wss://"):
        UplinkConfig(url="ws://127.0.0.1:8443/v1/uplink", token="t")
    with pytest.raises(ProtocolError, match="rate_hz"):
        UplinkConfig(url="wss://h/v1/uplink", token="t", rate_hz=0)
    assert "token" not in repr(UplinkConfig(url="wss://h/v1/uplink", token="secret-token"))


def test_backoff_grows_and_is_capped():
    delays = [backoff_delay(i, 0.5, 30.0, 1.0 - 1e-9) for i in range(10)]
    assert delays[:4] == pytest.approx([0.5, 1.0, 2.0, 4.0])
    assert max(delays) <= 30.0
    assert all(backoff_delay(i, 0.5, 30.0, 0.0) >= 0.25 for i in range(100))


def test_memory_outbox_contract():
    records = [ZRecord(i, i, _z(64)) for i in range(3)]
    box = MemoryOutbox(records)
    first = box.next_record()
    assert first is not None and first.seq == 0
    box.on_ack(0, 1)  # type: ignore[arg-type]
    second = box.next_record()
    assert second is not None and second.seq == 1
    box.rewind()  # uplink restarted before seq 1 was acked
    assert [box.next_record().seq for _ in range(2)] == [1, 2]  # type: ignore[union-attr]
    assert box.next_record() is None and box.unacked() == 2


def test_package_exports_resolve():
    import lifeveil.transport as transport

    assert sorted(transport.__all__) == sorted(transport._MODULE_OF)
    assert all(getattr(transport, name) is not None for name in transport.__all__)
