"""Outbox and space tags: kept per record, migrated from version-1 files, held after
UNKNOWN_SPACE until the version is registered again (issue 14)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from lifeveil.device.outbox import Outbox
from lifeveil.device.outbox_db import SCHEMA_VERSION
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import NO_SPACE

D = 8
OLD, NEW = 0x3FA2, 0x51C0  # two space tags

# The outbox file as LifeVeil wrote it before issue 14 (schema 1: no records.space).
SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE records (
    seq INTEGER PRIMARY KEY, timestamp_us INTEGER NOT NULL, z BLOB NOT NULL,
    queued_us INTEGER NOT NULL, status INTEGER
);
CREATE INDEX records_pending ON records (seq) WHERE status IS NULL;
CREATE TABLE sources (key TEXT PRIMARY KEY, base_us INTEGER NOT NULL, position_s REAL);
INSERT INTO meta VALUES ('schema', '1'), ('z_dim', '8'), ('next_seq', '3'), ('put', '3');
"""


def z(i: int) -> np.ndarray:
    return np.full(D, i, dtype=np.float32)


def drain(box: Outbox) -> list[int]:
    seqs = []
    while (record := box.next_record()) is not None:
        seqs.append(record.seq)
    return seqs


def test_a_version_1_outbox_opens_keeps_its_rows_and_marks_them_undeclared(tmp_path: Path):
    path = tmp_path / "outbox.sqlite"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.executemany(
        "INSERT INTO records VALUES (?, ?, ?, ?, ?)",
        [(i, 1000 + i, z(i).tobytes(), 5, None if i else 1) for i in range(3)],
    )
    db.commit()
    db.close()
    with Outbox(path, D, keep_acked=True) as box:
        history = box.history()
        assert [(r.seq, r.timestamp_us, r.space, s) for r, s in history] == [
            (0, 1000, NO_SPACE, 1),
            (1, 1001, NO_SPACE, None),
            (2, 1002, NO_SPACE, None),
        ]
        np.testing.assert_array_equal(history[2][0].z, z(2))
        assert box.put(z(9), 2000, space=NEW) == 3  # seqs continue above the old rows
        assert [box.next_record().space for _ in range(3)] == [NO_SPACE, NO_SPACE, NEW]
    with Outbox(path, D) as box:  # reopening the migrated file changes nothing
        assert box.pending() == 3 and box.stats().put == 4
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    db.close()


def test_space_is_kept_per_record_and_resent_unchanged(tmp_path: Path):
    path = tmp_path / "o.sqlite"
    with Outbox(path, D) as box:
        box.put_many([(z(0), 0), (z(1), 1)], space=OLD)
        box.put(z(2), 2, space=NEW)
        assert [box.next_record().space for _ in range(3)] == [OLD, OLD, NEW]
    with Outbox(path, D) as box:  # a restart resends them with the same tags
        records = [box.next_record() for _ in range(3)]
        assert [(r.seq, r.space) for r in records] == [(0, OLD), (1, OLD), (2, NEW)]


def test_unknown_space_keeps_the_record_and_holds_only_its_tag(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", D) as box:
        box.put_many([(z(i), i) for i in range(2)], space=OLD)
        box.put_many([(z(i), i) for i in range(2, 4)], space=NEW)
        box.put_many([(z(i), i) for i in range(4, 6)], space=OLD)
        assert box.next_record().seq == 0
        box.on_ack(0, AckStatus.UNKNOWN_SPACE)
        assert box.held_spaces() == {OLD} and box.take_new_holds() == {OLD}
        assert box.take_new_holds() == set()  # reported once
        assert drain(box) == [2, 3]  # the other tag flows; no record of OLD is resent
        box.on_ack(2, AckStatus.STORED)
        box.on_ack(3, AckStatus.STORED)
        assert box.pending() == 4 and box.held_pending() == 4  # nothing lost
        assert box.stats().unknown_space == 1
        box.release_space(OLD)  # the agent registered the version again
        assert box.held_spaces() == set() and drain(box) == [0, 1, 4, 5]
        for seq in (0, 1, 4, 5):
            box.on_ack(seq, AckStatus.STORED)
        assert box.pending() == 0 and box.stats().stored == 6


def test_an_ack_sent_before_the_release_does_not_hold_the_tag_again(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", D) as box:
        box.put_many([(z(i), i) for i in range(3)], space=OLD)
        assert drain(box) == [0, 1, 2]  # three frames in flight
        box.on_ack(0, AckStatus.UNKNOWN_SPACE)
        box.release_space(OLD)  # registered while 1 and 2 were still on their way
        box.on_ack(1, AckStatus.UNKNOWN_SPACE)  # sent before the registration: stale
        box.on_ack(2, AckStatus.STORED)
        assert box.held_spaces() == set() and box.take_new_holds() == set()
        assert drain(box) == [0, 1]  # both go out again
        box.on_ack(0, AckStatus.STORED)
        box.on_ack(1, AckStatus.STORED)
        assert box.pending() == 0


def test_a_new_session_tries_every_held_tag_again(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", D) as box:
        box.put_many([(z(i), i) for i in range(2)], space=OLD)
        box.next_record()
        box.on_ack(0, AckStatus.UNKNOWN_SPACE)
        assert drain(box) == []
        box.rewind()
        assert box.held_spaces() == set() and drain(box) == [0, 1]


def test_records_queued_while_a_tag_is_held_wait_for_it_and_the_others_go(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite", D) as box:
        box.put_many([(z(i), i) for i in range(3)], space=OLD)
        box.next_record()
        box.on_ack(0, AckStatus.UNKNOWN_SPACE)
        assert drain(box) == []  # all held: skipped once (not rescanned on every tick)
        box.put(z(3), 3, space=OLD)
        box.put(z(4), 4, space=NEW)
        assert drain(box) == [4]
        box.release_space(OLD)
        assert drain(box) == [0, 1, 2, 3]
