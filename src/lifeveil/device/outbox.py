"""The durable on-device outbox: z records wait here, in SQLite, until the server acks them.

Why SQLite: a record is only worth computing once. ``put`` commits the record (and, in the
same transaction, how far through its source the agent has got) with ``synchronous=FULL``
before returning, so a power cut or a killed process loses nothing that ``put`` returned,
and a restarted agent resumes its source where it stopped instead of queueing the same
frames again under new sequence numbers.

Sequence numbers are per device: strictly increasing, never reused, persisted across
restarts even when every record has been acked and deleted. The server deduplicates by
``(device, seq)``, so at-least-once delivery from here becomes exactly-once on the server.
With a :class:`~lifeveil.device.sequence.SequenceMark` (the agent's ``device.json``), seqs
are also reserved in blocks outside the database and every process starts at that mark, so a
deleted, lost or restored-from-backup outbox never hands out a seq the server already holds.

A ``CONFLICT`` ack (the server holds a different record under that seq: this device's sequence
space was reused anyway, e.g. ``device.json`` restored from an old copy or shared by two
cameras) is an error, never a drop: the record stays in the database marked as a conflict,
:attr:`Outbox.session_conflicts` counts it, and :meth:`Outbox.requeue_conflicts` sends it
again under seqs from a fresh epoch once the cause is fixed.

Every record keeps the space tag of the privatizer version that made its z
(:func:`~lifeveil.transport.record.space_tag`; 0 = undeclared, e.g. rows from before issue 14)
and is resent with it unchanged. An ``UNKNOWN_SPACE`` ack (the server has no version with that
tag registered) is not a drop either: the record stays pending and its tag is *held* (see
:mod:`lifeveil.device.outbox_spaces`) until the agent registers the version again
(:meth:`Outbox.release_space`) or the next uplink session.

Files: the folder is made 0700 and the database with its ``-wal`` and ``-shm`` files 0600
before SQLite opens them (z is personal data even when privatized); the SQLite layer is in
:mod:`lifeveil.device.outbox_db`.

The uplink contract (see :mod:`lifeveil.transport.uplink`): ``next_record`` hands out each
pending record once per uplink session, oldest first; the uplink itself resends its in-flight
records after a reconnect; after a restart of the process (or :meth:`Outbox.rewind`), every
unacked record is handed out again. ``on_ack`` deletes the record (or, with
``keep_acked=True``, marks it, so tests and audits can compare what the server holds with
everything the device ever queued).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lifeveil.device.outbox_db import (
    CONFLICTED,
    REFUSED,
    SCHEMA,
    SCHEMA_VERSION,
    OutboxStats,
    SourceState,
    Transaction,
    bump,
    connect_durable,
    count_pending,
    get_meta,
    make_private,
    migrate,
    read_stats,
    record_of,
    set_meta,
    z_blob,
)
from lifeveil.device.outbox_spaces import SpaceHolds
from lifeveil.device.sequence import SEQ_BLOCK, SequenceMark, next_epoch
from lifeveil.errors import EgressRefusedError, InputError
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import NO_SPACE, ZRecord

log = logging.getLogger(__name__)


class Outbox:
    """SQLite-backed queue of z records for one device; safe to share with the uplink thread.

    Args:
        path: database file (created with its folder if missing; folder 0700, files 0600).
        z_dim: dimension of z; fixed at creation and checked on every open.
        keep_acked: keep acked records (marked with their ack status) instead of deleting
            them, for audits and tests; :meth:`history` returns them.
        seq_mark: where seqs are reserved outside the database (the agent passes its
            ``device.json``); None trusts the database alone (tests, notebooks).
        seq_block: seqs reserved per write of ``seq_mark``.
    """

    def __init__(
        self,
        path: str | Path,
        z_dim: int,
        *,
        keep_acked: bool = False,
        seq_mark: SequenceMark | None = None,
        seq_block: int = SEQ_BLOCK,
    ) -> None:
        if seq_block < 1:
            raise InputError(f"seq_block={seq_block} must be at least 1")
        self.path = Path(path)
        self.z_dim = z_dim
        self.keep_acked = keep_acked
        self.seq_mark = seq_mark
        self._seq_block = seq_block
        self._lock = threading.Lock()
        try:
            make_private(self.path)
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot create the outbox or make it private ({exc.strerror}); "
                "use a state folder you own"
            ) from None
        try:
            self._db = connect_durable(self.path)
            self._configure()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable outbox database ({exc})") from None
        self._cursor = -1  # highest seq handed out in this session
        self._holds = SpaceHolds()  # space tags the server did not know, this session
        self.session_conflicts: list[int] = []  # seqs refused as CONFLICT since opening
        if seq_mark is not None:
            self._start_at_mark()

    # -- setup --------------------------------------------------------------------------
    def _configure(self) -> None:
        with self._lock:
            self._db.executescript("BEGIN IMMEDIATE;\n" + SCHEMA + "\nCOMMIT;")
            with Transaction(self._db):
                stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
                if not stored:
                    set_meta(
                        self._db, {"schema": SCHEMA_VERSION, "z_dim": self.z_dim, "next_seq": 0}
                    )
                elif int(stored.get("schema", 1)) < SCHEMA_VERSION and migrate(self._db):
                    log.info("outbox %s: schema upgraded; earlier z keep space 0", self.path)
        if int(stored.get("schema", SCHEMA_VERSION)) > SCHEMA_VERSION:
            raise InputError(f"{self.path}: outbox schema is newer than this LifeVeil; upgrade it")
        if stored and int(stored["z_dim"]) != self.z_dim:
            raise InputError(
                f"{self.path} holds z of dimension {stored['z_dim']} but the privatizer makes "
                f"d={self.z_dim}; drain it with the old model or use a new state folder"
            )

    def _start_at_mark(self) -> None:
        """Continue above every seq the mark says may have been used, whatever this file says.

        Starting each process at the mark (instead of trusting ``next_seq``) also covers an
        outbox restored from an old copy; the price is a gap of at most a block per start.
        """
        assert self.seq_mark is not None
        with self._lock, Transaction(self._db):
            mark = self.seq_mark.load()
            used = int(get_meta(self._db, "next_seq", "0") or 0)
            if used == 0 and mark > 0:
                log.warning(
                    "outbox %s is new but %s shows seqs below %d may have been used; "
                    "continuing at %d so that none is used twice",
                    self.path,
                    self.seq_mark.path,
                    mark,
                    mark,
                )
            set_meta(self._db, {"next_seq": max(used, mark), "seq_reserved": max(used, mark)})

    def _reserve(self, end: int) -> None:
        """Make sure seqs below ``end`` are reserved in the mark file before they are used.

        Caller holds the lock inside a transaction, so a failed write rolls the put back.
        """
        if self.seq_mark is None:
            return
        if end <= int(get_meta(self._db, "seq_reserved", "0") or 0):
            return
        reserved = end + self._seq_block
        self.seq_mark.raise_to(reserved)  # durable before any seq below it is committed
        set_meta(self._db, {"seq_reserved": reserved})

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- identity -----------------------------------------------------------------------
    def bind_device(self, name: str) -> None:
        """Tie this outbox to device ``name``; refuse if it already belongs to another.

        Sequence numbers are per device on the server, so one outbox must never feed two
        device identities.
        """
        with self._lock:
            bound = get_meta(self._db, "device")
            if bound is None:
                set_meta(self._db, {"device": name})
            elif bound != name:
                raise InputError(
                    f"{self.path} belongs to device {bound!r}, not {name!r}; its sequence "
                    "numbers would collide; use a separate --state folder per device"
                )

    @property
    def device(self) -> str | None:
        """The device this outbox is bound to, if any."""
        with self._lock:
            return get_meta(self._db, "device")

    # -- producer side ------------------------------------------------------------------
    def put(
        self,
        z: np.ndarray,
        timestamp_us: int,
        *,
        source: str | None = None,
        position_s: float | None = None,
        space: int = NO_SPACE,
    ) -> int:
        """Queue one z durably; returns its seq. See :meth:`put_many`."""
        items = [(z, timestamp_us)]
        return self.put_many(items, source=source, position_s=position_s, space=space)[0]

    def put_many(
        self,
        items: Sequence[tuple[np.ndarray, int]],
        *,
        source: str | None = None,
        position_s: float | None = None,
        space: int = NO_SPACE,
    ) -> list[int]:
        """Queue ``(z, timestamp_us)`` items in one transaction; returns their seqs.

        With ``source`` and ``position_s``, the source's position (stream time of the last
        frame these z summarise) is advanced in the same transaction, so that after a crash
        the records and the resume point agree. ``space`` is the space tag of the privatizer
        version that made the z (kept with each record and sent with it).
        """
        blobs = [(z_blob(z, self.z_dim), int(ts)) for z, ts in items]
        now_us = time.time_ns() // 1000
        with self._lock, Transaction(self._db):
            first = int(get_meta(self._db, "next_seq", "0") or 0)
            seqs = list(range(first, first + len(blobs)))
            self._reserve(first + len(blobs))
            self._db.executemany(
                "INSERT INTO records (seq, timestamp_us, z, queued_us, space) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (s, ts, blob, now_us, int(space))
                    for s, (blob, ts) in zip(seqs, blobs, strict=True)
                ],
            )
            bump(self._db, "put", len(blobs))
            set_meta(self._db, {"next_seq": first + len(blobs)})
            if source is not None and position_s is not None:
                self._db.execute(
                    "UPDATE sources SET position_s = ? WHERE key = ?", (position_s, source)
                )
        return seqs

    # -- sources ------------------------------------------------------------------------
    def begin_source(self, key: str, base_us: int) -> SourceState:
        """The state of source ``key``, registering it with time origin ``base_us`` if new."""
        with self._lock, Transaction(self._db):
            self._db.execute(
                "INSERT OR IGNORE INTO sources (key, base_us) VALUES (?, ?)", (key, int(base_us))
            )
            row = self._db.execute(
                "SELECT base_us, position_s FROM sources WHERE key = ?", (key,)
            ).fetchone()
        return SourceState(key, int(row[0]), row[1])

    def source_state(self, key: str) -> SourceState | None:
        """The state of source ``key``, or None if it was never started."""
        with self._lock:
            row = self._db.execute(
                "SELECT base_us, position_s FROM sources WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else SourceState(key, int(row[0]), row[1])

    # -- uplink side --------------------------------------------------------------------
    def next_record(self) -> ZRecord | None:
        """Uplink callback: the oldest pending record not yet handed out this session.

        Records of a held space tag are passed over; once the tag is released, those the
        cursor passed go out first.
        """
        with self._lock:
            row = self._next_again() or self._next_new()
            if row is None:
                return None
            self._holds.handed_out(int(row[0]), int(row[3]))
        return record_of(row)

    def _next_again(self) -> tuple | None:
        """A record of a released tag that the cursor passed while the tag was held."""
        while (seq := self._holds.pop_again()) is not None:
            row = self._db.execute(
                "SELECT seq, timestamp_us, z, space FROM records WHERE seq = ? AND status IS NULL",
                (seq,),
            ).fetchone()
            if row is not None and int(row[3]) not in self._holds.held:
                return row
        return None

    def _next_new(self) -> tuple | None:
        held = sorted(self._holds.held)
        row = self._db.execute(
            "SELECT seq, timestamp_us, z, space FROM records WHERE status IS NULL AND seq > ? "
            f"AND space NOT IN ({', '.join('?' * len(held))}) ORDER BY seq LIMIT 1",
            (self._cursor, *held),
        ).fetchone()
        if row is not None:
            self._cursor = int(row[0])
        elif held:  # everything pending is held: skip it once, not again on every tick
            top = self._db.execute("SELECT MAX(seq) FROM records WHERE status IS NULL").fetchone()
            self._cursor = max(self._cursor, int(top[0] if top[0] is not None else -1))
        return row

    def on_ack(self, seq: int, status: AckStatus) -> None:
        """Uplink callback: the server holds ``seq``; forget it (or mark it, if keep_acked).

        A ``CONFLICT`` keeps the record (marked) and logs an ERROR: it was not stored. An
        ``UNKNOWN_SPACE`` keeps it pending and holds its space tag (see :meth:`held_spaces`).
        """
        if status is AckStatus.UNKNOWN_SPACE:
            self._unknown_space(seq)
            return
        with self._lock:
            self._holds.acked(seq)
        if status is AckStatus.CONFLICT:
            self._conflict(seq)
            return
        counter = "stored" if status is AckStatus.STORED else "duplicates"
        self._finish(seq, int(status), counter)

    def _unknown_space(self, seq: int) -> None:
        with self._lock, Transaction(self._db):
            row = self._db.execute(
                "SELECT space FROM records WHERE seq = ? AND status IS NULL", (seq,)
            ).fetchone()
            if row is None:  # answered already (a resend was stored), or requeued
                self._holds.acked(seq)
                return
            bump(self._db, "unknown_space", 1)
            if self._holds.unknown(seq, int(row[0])):
                log.info("outbox: space tag %d held until its version is registered", row[0])

    # -- space tags the server does not know ----------------------------------------------
    def held_spaces(self) -> set[int]:
        """Space tags held this session: the server answered UNKNOWN_SPACE for them."""
        with self._lock:
            return set(self._holds.held)

    def take_new_holds(self) -> set[int]:
        """Tags held since the last call (each returned once): the agent re-registers them."""
        with self._lock:
            return self._holds.take_unreported()

    def release_space(self, space: int) -> None:
        """The version of tag ``space`` is registered again: hand its records out again."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq FROM records WHERE status IS NULL AND space = ? AND seq <= ? "
                "ORDER BY seq",
                (int(space), self._cursor),
            ).fetchall()
            self._holds.release(int(space), [int(r[0]) for r in rows])

    def held_pending(self) -> int:
        """Pending records whose space tag is held (they wait for a registration)."""
        with self._lock:
            held = sorted(self._holds.held)
            if not held:
                return 0
            row = self._db.execute(
                "SELECT COUNT(*) FROM records WHERE status IS NULL "
                f"AND space IN ({', '.join('?' * len(held))})",
                held,
            ).fetchone()
        return int(row[0])

    def _conflict(self, seq: int) -> None:
        with self._lock, Transaction(self._db):
            cur = self._db.execute(
                "UPDATE records SET status = ? WHERE seq = ? AND status IS NULL",
                (CONFLICTED, seq),
            )
            if not cur.rowcount:
                return
            bump(self._db, "conflicts", 1)
        self.session_conflicts.append(seq)
        log.error(
            "outbox: the server already holds a different record under seq %d, so this z was "
            "NOT stored; it is kept in %s. This device's sequence numbers were reused "
            "(device.json restored from an old copy, or shared by two cameras): give each "
            "camera its own enrolment, then run `lifeveil device requeue-conflicts` to send "
            "the kept records under new seqs",
            seq,
            self.path,
        )

    def on_refused(self, record: object, exc: EgressRefusedError) -> None:
        """Uplink callback: the egress guard refused a record; keep it out of the queue."""
        log.error("outbox: %s", exc)
        seq = getattr(record, "seq", None)
        if isinstance(seq, int):
            with self._lock, Transaction(self._db):
                self._holds.acked(seq)
                self._db.execute("UPDATE records SET status = ? WHERE seq = ?", (REFUSED, seq))
                bump(self._db, "refused", 1)

    def _finish(self, seq: int, status: int, counter: str) -> None:
        with self._lock, Transaction(self._db):
            if self.keep_acked:
                cur = self._db.execute(
                    "UPDATE records SET status = ? WHERE seq = ? AND status IS NULL",
                    (status, seq),
                )
            else:
                cur = self._db.execute(
                    "DELETE FROM records WHERE seq = ? AND status IS NULL", (seq,)
                )
            if cur.rowcount:
                bump(self._db, counter, 1)

    def rewind(self) -> None:
        """Hand out every pending record again (call before starting a new uplink)."""
        with self._lock:
            self._cursor = -1
            self._holds.reset()

    def requeue_conflicts(self) -> list[int]:
        """Queue every record kept after a CONFLICT again, under seqs of a fresh epoch.

        A conflict means some earlier life of this device used seqs this outbox did not know
        about, up to an unknown bound; so the device moves on to the next multiple of
        :data:`~lifeveil.device.sequence.SEQ_EPOCH` (millennia of records ahead), for these
        records and every later one. Run it while no agent uses the outbox. Returns the new
        seqs, in the old order.
        """
        with self._lock, Transaction(self._db):
            old = [
                int(r[0])
                for r in self._db.execute(
                    "SELECT seq FROM records WHERE status = ? ORDER BY seq", (CONFLICTED,)
                )
            ]
            if not old:
                return []
            used = int(get_meta(self._db, "next_seq", "0") or 0)
            reserved = int(get_meta(self._db, "seq_reserved", "0") or 0)
            first = next_epoch(max(used, reserved, old[-1]))
            new = list(range(first, first + len(old)))
            self._reserve(new[-1] + 1)
            self._db.executemany(
                "UPDATE records SET seq = ?, status = NULL WHERE seq = ?",
                list(zip(new, old, strict=True)),
            )
            set_meta(self._db, {"next_seq": new[-1] + 1})
        log.info(
            "outbox: requeued %d conflicted record(s) as seqs %d..%d", len(new), first, new[-1]
        )
        return new

    # -- inspection ---------------------------------------------------------------------
    def pending(self) -> int:
        """Records queued and not yet acked (or refused)."""
        with self._lock:
            return count_pending(self._db)

    def stats(self) -> OutboxStats:
        """Persisted counters and the queue depth."""
        with self._lock:
            return read_stats(self._db)

    def history(self) -> list[tuple[ZRecord, int | None]]:
        """Every record still in the database with its status (None = pending), by seq.

        With ``keep_acked=True`` this is everything ever queued.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, timestamp_us, z, space, status FROM records ORDER BY seq"
            ).fetchall()
        return [(record_of(r[:4]), r[4]) for r in rows]
