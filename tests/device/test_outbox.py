"""Outbox: persistent monotonic seqs, ordering, ack/resend semantics, durability after SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from lifeveil.device.outbox import Outbox
from lifeveil.errors import EgressRefusedError, InputError
from lifeveil.transport.frame import AckStatus

D = 8


def z(i: int) -> np.ndarray:
    return np.full(D, i, dtype=np.float32)


def test_seqs_are_monotonic_and_survive_reopen_after_everything_was_acked(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, D) as box:
        assert [box.put(z(i), 1000 + i) for i in range(3)] == [0, 1, 2]
        for seq in range(3):
            box.next_record()
            box.on_ack(seq, AckStatus.STORED)
        assert box.pending() == 0
    with Outbox(path, D) as box:  # every row deleted, yet seqs are never reused
        assert box.put(z(9), 2000) == 3
        assert box.stats().next_seq == 4 and box.stats().put == 4


def test_next_record_hands_out_oldest_first_once_per_session(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", D) as box:
        box.put_many([(z(i), 10 * i) for i in range(3)])
        first, second = box.next_record(), box.next_record()
        assert (first.seq, second.seq) == (0, 1)
        np.testing.assert_array_equal(first.z, z(0))
        assert first.timestamp_us == 0 and second.timestamp_us == 10
        box.on_ack(0, AckStatus.STORED)
        assert box.next_record().seq == 2
        assert box.next_record() is None  # seq 1 is in flight: the uplink resends it itself
        box.rewind()  # a new uplink session: everything unacked again, oldest first
        assert [box.next_record().seq, box.next_record().seq] == [1, 2]


def test_restart_resends_every_unacked_record(tmp_path: Path):
    path = tmp_path / "o.sqlite"
    with Outbox(path, D) as box:
        box.put_many([(z(i), i) for i in range(4)])
        for _ in range(4):
            box.next_record()
        box.on_ack(1, AckStatus.STORED)
    with Outbox(path, D) as box:
        seqs = []
        while (record := box.next_record()) is not None:
            seqs.append(record.seq)
        assert seqs == [0, 2, 3]


def test_acks_count_once_and_keep_acked_keeps_history(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", D, keep_acked=True) as box:
        box.put_many([(z(i), i) for i in range(3)])
        box.on_ack(0, AckStatus.STORED)
        box.on_ack(0, AckStatus.DUPLICATE)  # a late second ack changes nothing
        box.on_ack(1, AckStatus.DUPLICATE)
        box.on_ack(2, AckStatus.CONFLICT)
        stats = box.stats()
        assert (stats.stored, stats.duplicates, stats.conflicts, stats.pending) == (1, 1, 1, 0)
        statuses = [status for _, status in box.history()]
        assert statuses == [AckStatus.STORED, AckStatus.DUPLICATE, AckStatus.CONFLICT]


def test_refused_record_leaves_the_queue(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", D) as box:
        box.put(z(0), 0)
        record = box.next_record()
        box.on_refused(record, EgressRefusedError("egress refused: test"))
        assert box.pending() == 0 and box.stats().refused == 1
        box.rewind()
        assert box.next_record() is None


def test_source_position_moves_with_the_records(tmp_path: Path):
    path = tmp_path / "o.sqlite"
    with Outbox(path, D) as box:
        state = box.begin_source("clip", base_us=5_000_000)
        assert state.position_s is None
        box.put(z(0), 5_000_000, source="clip", position_s=0.0)
        box.put(z(1), 5_500_000, source="clip", position_s=0.5)
    with Outbox(path, D) as box:
        again = box.begin_source("clip", base_us=9_999_999)  # the first origin is kept
        assert (again.base_us, again.position_s) == (5_000_000, 0.5)
        assert box.source_state("other") is None


def test_wrong_shape_dimension_or_device_is_refused(tmp_path: Path):
    path = tmp_path / "o.sqlite"
    with Outbox(path, D) as box:
        with pytest.raises(InputError, match="shape"):
            box.put(np.zeros(D + 1, np.float32), 0)
        box.bind_device("kitchen")
        box.bind_device("kitchen")
        with pytest.raises(InputError, match="belongs to device 'kitchen'"):
            box.bind_device("garage")
    with pytest.raises(InputError, match="dimension 8"):
        Outbox(path, D * 2)


def test_producer_and_uplink_threads_share_the_outbox(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", D) as box:
        n, seen = 200, []

        def producer() -> None:
            for i in range(n):
                box.put(z(i), i)

        thread = threading.Thread(target=producer)
        thread.start()
        while len(seen) < n:
            record = box.next_record()
            if record is not None:
                seen.append(record.seq)
                box.on_ack(record.seq, AckStatus.STORED)
        thread.join()
        assert seen == list(range(n)) and box.pending() == 0


def test_records_survive_sigkill(tmp_path: Path):
    path = tmp_path / "o.sqlite"
    script = (
        "import os, signal, numpy as np\n"
        "from lifeveil.device.outbox import Outbox\n"
        f"box = Outbox({str(path)!r}, {D})\n"
        "for i in range(50):\n"
        f"    box.put(np.full({D}, i, np.float32), i)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    with Outbox(path, D) as box:
        assert box.pending() == 50
        assert [r.seq for r, _ in box.history()] == list(range(50))
        np.testing.assert_array_equal(box.history()[49][0].z, z(49))
        assert box.put(z(50), 50) == 50
