"""Sequence high-water mark: an outbox that is lost or restored never reuses a seq."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from lifeveil.device.identity import DeviceIdentity, load_identity, save_identity
from lifeveil.device.outbox import Outbox
from lifeveil.device.sequence import MARK_KEY, SEQ_EPOCH, SequenceMark, next_epoch
from lifeveil.errors import InputError
from lifeveil.transport.frame import AckStatus

D = 8


def z(i: int) -> np.ndarray:
    return np.full(D, i, dtype=np.float32)


def remove_outbox(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def test_mark_reads_zero_until_raised_and_never_goes_down(tmp_path: Path):
    mark = SequenceMark(tmp_path / "state" / "sequence.json")
    assert mark.load() == 0
    mark.raise_to(100)
    mark.raise_to(50)
    assert mark.load() == 100
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert mark.path.stat().st_mode & 0o777 == 0o600


def test_mark_lives_in_device_json_and_keeps_the_token(tmp_path: Path):
    path = tmp_path / "device.json"
    identity = DeviceIdentity("porch", "secret-token", "https://h:1", "1;8;fp16")
    save_identity(identity, path)
    SequenceMark(path).raise_to(2048)
    assert load_identity(path) == identity and SequenceMark(path).load() == 2048
    save_identity(identity, path)  # the same token saved again keeps its mark
    assert SequenceMark(path).load() == 2048
    save_identity(DeviceIdentity("porch", "new-token"), path)  # a new enrolment starts at 0
    assert SequenceMark(path).load() == 0


def test_a_corrupt_mark_is_a_one_line_error(tmp_path: Path):
    path = tmp_path / "device.json"
    path.write_text(json.dumps({MARK_KEY: "lots"}))
    with pytest.raises(InputError, match="not a non-negative integer"):
        SequenceMark(path).load()
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        SequenceMark(path).load()


def test_seqs_are_reserved_in_blocks_ahead_of_use(tmp_path: Path, monkeypatch):
    mark = SequenceMark(tmp_path / "device.json")
    writes: list[int] = []
    raise_to = mark.raise_to
    monkeypatch.setattr(mark, "raise_to", lambda v: (writes.append(v), raise_to(v)))
    with Outbox(tmp_path / "outbox.sqlite", D, seq_mark=mark, seq_block=10) as box:
        seqs = [box.put(z(i), i) for i in range(25)]
    assert seqs == list(range(25))  # contiguous within a process
    assert writes == [11, 22, 33]  # one write per block, always ahead of the seqs used
    assert mark.load() == 33


def test_deleted_outbox_continues_above_every_used_seq(tmp_path: Path):
    path, mark = tmp_path / "outbox.sqlite", SequenceMark(tmp_path / "device.json")
    with Outbox(path, D, seq_mark=mark, seq_block=16) as box:
        used = box.put_many([(z(i), i) for i in range(40)])
    remove_outbox(path)
    with Outbox(path, D, seq_mark=mark, seq_block=16) as box:
        again = box.put_many([(z(i), i) for i in range(40)])
    assert min(again) > max(used)
    assert again == list(range(again[0], again[0] + 40))


def test_outbox_restored_from_an_old_copy_continues_above_the_mark(tmp_path: Path):
    path, mark = tmp_path / "outbox.sqlite", SequenceMark(tmp_path / "device.json")
    with Outbox(path, D, seq_mark=mark) as box:
        box.put_many([(z(i), i) for i in range(5)])
    shutil.copy(path, tmp_path / "backup.sqlite")
    with Outbox(path, D, seq_mark=mark) as box:
        later = box.put_many([(z(i), i) for i in range(5)])
    shutil.copy(tmp_path / "backup.sqlite", path)  # same block as `later`, older counter
    with Outbox(path, D, seq_mark=mark) as box:
        assert box.put(z(9), 9) > max(later)


def test_a_mark_behind_the_outbox_is_raised_past_it(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    with Outbox(path, D) as box:  # no mark yet: an outbox from before marks existed
        box.put_many([(z(i), i) for i in range(30)])
    mark = SequenceMark(tmp_path / "device.json")
    with Outbox(path, D, seq_mark=mark, seq_block=8) as box:
        assert box.put(z(0), 0) == 30
    assert mark.load() == 31 + 8


def test_unwritable_mark_refuses_the_put_and_commits_nothing(tmp_path: Path, monkeypatch):
    mark = SequenceMark(tmp_path / "device.json")
    with Outbox(tmp_path / "outbox.sqlite", D, seq_mark=mark) as box:

        def refuse(_value: int) -> None:
            raise InputError("device.json: cannot record the sequence high-water mark")

        monkeypatch.setattr(mark, "raise_to", refuse)
        with pytest.raises(InputError, match="high-water mark"):
            box.put(z(0), 0)
        assert box.pending() == 0 and box.stats().next_seq == 0


def test_conflict_keeps_the_record_and_logs_an_error_naming_the_seq(tmp_path: Path, caplog):
    with Outbox(tmp_path / "outbox.sqlite", D) as box:
        box.put_many([(z(i), i) for i in range(3)])
        with caplog.at_level(logging.ERROR, logger="lifeveil.device.outbox"):
            box.on_ack(1, AckStatus.CONFLICT)
        box.on_ack(0, AckStatus.STORED)
        [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert "seq 1" in error.getMessage() and "requeue-conflicts" in error.getMessage()
        stats = box.stats()
        assert (stats.pending, stats.conflicts, stats.conflicted) == (1, 1, 1)
        assert box.session_conflicts == [1]
        [(kept, status)] = [(r, s) for r, s in box.history() if s is not None]
        assert kept.seq == 1 and status == AckStatus.CONFLICT
        np.testing.assert_array_equal(kept.z, z(1))


def test_requeue_moves_conflicts_and_later_seqs_to_a_fresh_epoch(tmp_path: Path):
    path, mark = tmp_path / "outbox.sqlite", SequenceMark(tmp_path / "device.json")
    with Outbox(path, D, seq_mark=mark) as box:
        box.put_many([(z(i), 100 + i) for i in range(4)])
        for seq in range(4):
            box.next_record()
            box.on_ack(seq, AckStatus.CONFLICT if seq in (1, 3) else AckStatus.STORED)
        assert box.requeue_conflicts() == [SEQ_EPOCH, SEQ_EPOCH + 1]
        assert box.requeue_conflicts() == []
        box.rewind()
        records = [box.next_record(), box.next_record()]
        assert [r.timestamp_us for r in records] == [101, 103]  # same z, same order
        assert box.put(z(7), 7) == SEQ_EPOCH + 2
        assert box.stats().conflicted == 0
    assert mark.load() > SEQ_EPOCH + 2
    with Outbox(path, D, seq_mark=mark) as box:
        assert box.put(z(8), 8) > SEQ_EPOCH + 2


def test_next_epoch_is_strictly_ahead():
    assert next_epoch(0) == SEQ_EPOCH
    assert next_epoch(SEQ_EPOCH - 1) == SEQ_EPOCH
    assert next_epoch(SEQ_EPOCH) == 2 * SEQ_EPOCH


def test_outbox_files_are_private_even_in_an_existing_open_folder(tmp_path: Path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (folder / "outbox.sqlite-wal").write_bytes(b"")  # left behind with a default mode
    (folder / "outbox.sqlite-wal").chmod(0o644)
    mark = SequenceMark(folder / "device.json")
    with Outbox(folder / "outbox.sqlite", D, seq_mark=mark) as box:
        box.put(z(0), 0)
        names = sorted(p.name for p in folder.iterdir())
        assert names == ["device.json", "outbox.sqlite", "outbox.sqlite-shm", "outbox.sqlite-wal"]
        assert folder.stat().st_mode & 0o777 == 0o700
        for path in folder.iterdir():
            assert path.stat().st_mode & 0o777 == 0o600, path.name
