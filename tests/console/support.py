"""Builders for the console tests: a real vault of agent segments, an outbox, a ledger."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lifeveil.device.identity import DeviceIdentity, save_identity
from lifeveil.device.outbox import Outbox
from lifeveil.device.segmenter import SegmentRecorder
from lifeveil.device.source import decode_frames, open_container, parse_source, stream_rate
from lifeveil.device.status import IDENTITY_FILE, OUTBOX_FILE
from lifeveil.errors import EgressRefusedError
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import ZRecord
from lifeveil.vault import KdfParams, Vault

FAST_KDF = KdfParams(time_cost=1, memory_kib=8, parallelism=1)
PASSPHRASE = "console tests"
Z_DIM = 16
DEAD_SERVER = "https://127.0.0.1:9"  # discard port: nothing listens, refused at once


def record_clip(vault_dir: Path, clip: Path, *, segment_s: float = 1.0) -> list[str]:
    """A vault holding ``clip`` as the agent records it (H.264/MP4 segments); their ids."""
    spec = parse_source(str(clip))
    with Vault.init(vault_dir, passphrase=PASSPHRASE, kdf=FAST_KDF) as vault:
        with open_container(spec) as container:
            recorder = SegmentRecorder(
                vault,
                source_key=spec.key(),
                source_name=spec.name,
                base_us=time.time_ns() // 1000 - 3_600_000_000,  # an hour ago
                rate=stream_rate(container),
                segment_s=segment_s,
            )
            for frame in decode_frames(container):
                recorder.add(frame)
            recorder.finish()
        return [info.segment_id for info in vault.list()]


def z(i: int) -> np.ndarray:
    """A recognisable z."""
    return np.full(Z_DIM, i, dtype=np.float32)


def fill_outbox(state: Path, n: int = 6) -> Outbox:
    """An outbox with ``n`` records: seq 0 acked, seq 1 refused, the rest queued (kept open)."""
    box = Outbox(state / OUTBOX_FILE, Z_DIM, keep_acked=True)
    now = time.time_ns() // 1000
    hour = now - now % 3_600_000_000  # all captured in the current hour
    box.put_many([(z(i), hour + i * 500_000) for i in range(n)])
    box.on_ack(0, AckStatus.STORED)
    box.on_refused(ZRecord(1, now, z(1)), EgressRefusedError("z has the wrong size"))
    return box


def write_identity(state: Path, server: str = DEAD_SERVER, cafile: str | None = None) -> None:
    """An enrolment pointing at ``server`` (trusting ``cafile``)."""
    identity = DeviceIdentity("cam0", "t" * 32, server=server, wire="1;16;fp16", cafile=cafile)
    save_identity(identity, state / IDENTITY_FILE)


def fill_ledger(state: Path) -> None:
    """A ledger with two days of charges from one privatizer version, and cover frames."""
    from lifeveil.device.ledger import Bound, Ledger

    clock = [time.time() - 86_400.0]
    with Ledger(state / "ledger.sqlite", clock=lambda: clock[0]) as ledger:
        ledger.register_version("abc123def4567890", "fsq 16x5 levels (tiny)", Bound.FSQ_CODE)
        ledger.set_budget(4000.0)
        for day in range(2):
            for i in range(3 + day):
                ledger.charge(
                    source="cam0",
                    timestamp_us=day * 10**9 + i,
                    bits=37.2,
                    version="abc123def4567890",
                )
            ledger.count_cover(120 + day)
            clock[0] += 86_400.0
