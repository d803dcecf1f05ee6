"""The privacy ledger: how much the device has disclosed, in bits, per day and over its life.

Every real z the agent releases is charged here *before* it is queued in the outbox: its bits
(an upper bound on what that z tells about its frame, see :class:`Bound` and
``docs/GUARANTEES.md``), the UTC day of release, and the privatizer version that made it.
Cover frames (the uplink's constant-rate padding, no information about the camera) are not
charged, only counted per day.

Durability: the same as the outbox (SQLite in WAL mode with ``synchronous=FULL``, the file and
its side files 0600 in a 0700 folder), so a charge that returned survives SIGKILL or a power cut.
A z is charged before it is queued and a charge is keyed by (source, capture time): an agent
killed between the two charges nothing twice when it restarts and queues that z, so the ledger
holds exactly one entry per z in the outbox. Cover counts are flushed with each charge and when
the agent stops; a crash loses at most the cover frames since the last z.

The daily budget is checked in the same transaction as the charge: a z whose bits would take
the day's total over the budget is refused, so the day's total never exceeds the budget and
falls short of it by less than one z.

The module needs only the standard library, so ``lifeveil device ledger`` stays light.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from lifeveil.errors import InputError
from lifeveil.io import private_dir, private_file

LEDGER_FILE = "ledger.sqlite"
SCHEMA_VERSION = 1
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    version TEXT PRIMARY KEY,         -- privatizer version: hash of its weights and config
    label TEXT NOT NULL,              -- human description, e.g. "fsq 64x5 levels (...)"
    bound TEXT NOT NULL,              -- what its bits are: a Bound value
    first_us INTEGER NOT NULL         -- when an agent of this device first loaded it
);
CREATE TABLE IF NOT EXISTS charges (
    source TEXT NOT NULL,             -- the outbox's source key
    timestamp_us INTEGER NOT NULL,    -- capture time of the z (its outbox record's)
    day TEXT NOT NULL,                -- UTC day of release, YYYY-MM-DD
    charged_us INTEGER NOT NULL,      -- when it was charged (us since the Unix epoch)
    version TEXT NOT NULL REFERENCES versions (version),
    bits REAL NOT NULL,               -- upper bound on what this z discloses, bits
    PRIMARY KEY (source, timestamp_us)
);
CREATE INDEX IF NOT EXISTS charges_day ON charges (day, version);
CREATE TABLE IF NOT EXISTS cover (day TEXT PRIMARY KEY, frames INTEGER NOT NULL);
"""


class Bound(StrEnum):
    """What a charge's bits are (the derivations are in ``docs/GUARANTEES.md``).

    ``fsq-code``: a deterministic quantised code; sum of log2(levels) over its coordinates,
    exactly the bits of the code, an upper bound on I(X; Z) per frame. ``vib-kl``: a fresh
    Gaussian draw; KL(q(z|x) || N(0, I)) of the frame, whose average over frames bounds I(X; Z).
    ``float-width``: a deterministic continuous vector (a VIB mean); only its encoding bounds
    it: z_dim times the bits of one value on the wire.
    """

    FSQ_CODE = "fsq-code"
    VIB_KL = "vib-kl"
    FLOAT_WIDTH = "float-width"


@dataclass(frozen=True)
class Verdict:
    """The answer to :meth:`Ledger.charge`."""

    released: bool  # True: charged (or charged before this restart); queue the z
    day: str  # UTC day of the charge, YYYY-MM-DD
    spent_bits: float  # bits released that day, this z included when released
    budget_bits: float | None  # the day's cap it was checked against (None = no cap)
    repeated: bool = False  # this z was already charged (the agent restarted): not twice


class Ledger:
    """SQLite-backed record of every released z's bits; safe to share between threads.

    Args:
        path: database file (created with its folder if missing; folder 0700, files 0600).
        clock: seconds since the Unix epoch (``time.time``); tests pass a fake one to cross
            midnight.
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        try:
            _make_private(self.path)
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot create the privacy ledger or make it private "
                f"({exc.strerror}); use a state folder you own"
            ) from None
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._configure()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable ledger database ({exc})") from None

    def _configure(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise InputError(
                f"{self.path}: SQLite refused WAL mode; keep the ledger on a local disk"
            )
        self._db.execute("PRAGMA synchronous=FULL")  # charge() returning means it survives
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            self._db.executescript("BEGIN IMMEDIATE;\n" + _SCHEMA + "\nCOMMIT;")
            with self._transaction():
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
                schema = int(self._meta("schema") or SCHEMA_VERSION)
        if schema > SCHEMA_VERSION:
            raise InputError(f"{self.path}: ledger schema is newer than this LifeVeil; upgrade it")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------
    def register_version(self, version: str, label: str, bound: Bound | str) -> None:
        """Record a privatizer version (once; later calls keep the first label and time)."""
        bound = Bound(bound)
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO versions (version, label, bound, first_us) "
                "VALUES (?, ?, ?, ?)",
                (version, label, bound.value, self._now_us()),
            )

    def set_budget(self, budget_bits: float | None) -> None:
        """Remember the daily budget the agent enforces, for ``lifeveil device ledger``."""
        with self._lock, self._transaction():
            self._set_meta("daily_budget_bits", "" if budget_bits is None else repr(budget_bits))

    def charge(
        self,
        *,
        source: str,
        timestamp_us: int,
        bits: float,
        version: str,
        budget_bits: float | None = None,
        cover: int = 0,
    ) -> Verdict:
        """Charge one z about to be released, unless it would take today over ``budget_bits``.

        A z already charged under (``source``, ``timestamp_us``) is released again without a
        second charge (an agent restarted between charging and queueing it). ``cover`` cover
        frames sent since the last call are counted in the same transaction.
        """
        if bits < 0:
            raise InputError(f"bits must be >= 0, got {bits}")
        now_us = self._now_us()
        day = utc_day(now_us / 1e6)
        with self._lock, self._transaction():
            self._add_cover(day, cover)
            spent = self._spent(day)
            if self._charged(source, timestamp_us):
                return Verdict(True, day, spent, budget_bits, repeated=True)
            if budget_bits is not None and spent + bits > budget_bits:
                return Verdict(False, day, spent, budget_bits)
            self._db.execute(
                "INSERT INTO charges (source, timestamp_us, day, charged_us, version, bits) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (source, int(timestamp_us), day, now_us, version, float(bits)),
            )
        return Verdict(True, day, spent + bits, budget_bits)

    def count_cover(self, frames: int) -> None:
        """Count ``frames`` cover frames sent today (not charged: they carry no z)."""
        if frames <= 0:
            return
        day = utc_day(self._clock())
        with self._lock, self._transaction():
            self._add_cover(day, frames)

    # -- reading ------------------------------------------------------------------------
    def spent_today(self) -> float:
        """Bits charged so far today (UTC)."""
        with self._lock:
            return self._spent(utc_day(self._clock()))

    def summary(self) -> dict[str, Any]:
        """Per-day and lifetime totals, per version: see :func:`summarise`."""
        with self._lock:
            return summarise(self._db)

    def versions(self) -> list[str]:
        """Every privatizer version this device has loaded, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT version FROM versions ORDER BY first_us").fetchall()
        return [r[0] for r in rows]

    def entries(self) -> list[tuple[str, int, str, str, float]]:
        """Every charge as (source, timestamp_us, day, version, bits), by capture time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source, timestamp_us, day, version, bits FROM charges "
                "ORDER BY timestamp_us, source"
            ).fetchall()
        return [(r[0], int(r[1]), r[2], r[3], float(r[4])) for r in rows]

    # -- helpers (caller holds the lock) ------------------------------------------------
    def _now_us(self) -> int:
        return round(self._clock() * 1e6)

    def _spent(self, day: str) -> float:
        row = self._db.execute("SELECT SUM(bits) FROM charges WHERE day = ?", (day,)).fetchone()
        return float(row[0] or 0.0)

    def _charged(self, source: str, timestamp_us: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM charges WHERE source = ? AND timestamp_us = ?",
            (source, int(timestamp_us)),
        ).fetchone()
        return row is not None

    def _add_cover(self, day: str, frames: int) -> None:
        if frames > 0:
            self._db.execute(
                "INSERT INTO cover (day, frames) VALUES (?, ?) "
                "ON CONFLICT(day) DO UPDATE SET frames = frames + excluded.frames",
                (day, int(frames)),
            )

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def utc_day(seconds: float) -> str:
    """The UTC calendar day of a Unix time, ``YYYY-MM-DD``: the ledger's unit of a day.

    >>> utc_day(0.0)
    '1970-01-01'
    """
    return datetime.fromtimestamp(seconds, UTC).date().isoformat()


def summarise(db: sqlite3.Connection) -> dict[str, Any]:
    """A JSON-ready summary of a ledger database: ``versions``, ``days`` (oldest first, each
    with its z, bits, cover frames and per-version split), ``lifetime`` and the
    ``daily_budget_bits`` last enforced (None: no cap)."""
    days: dict[str, dict[str, Any]] = {}
    lifetime = _blank()
    for day, version, n, bits in db.execute(
        "SELECT day, version, COUNT(*), SUM(bits) FROM charges GROUP BY day, version"
    ):
        for totals in (days.setdefault(day, _blank()), lifetime):
            totals["z"] += int(n)
            totals["bits"] += float(bits)
            split = totals["versions"].setdefault(version, {"z": 0, "bits": 0.0})
            split["z"] += int(n)
            split["bits"] += float(bits)
    for day, frames in db.execute("SELECT day, frames FROM cover"):
        days.setdefault(day, _blank())["cover"] += int(frames)
        lifetime["cover"] += int(frames)
    versions = {
        v: {"label": label, "bound": bound, "in_use_since": _iso(first_us)}
        for v, label, bound, first_us in db.execute(
            "SELECT version, label, bound, first_us FROM versions ORDER BY first_us"
        )
    }
    row = db.execute("SELECT value FROM meta WHERE key = 'daily_budget_bits'").fetchone()
    budget = float(row[0]) if row and row[0] else None
    return {
        "versions": versions,
        "days": [{"day": d, **days[d]} for d in sorted(days)],
        "lifetime": lifetime,
        "daily_budget_bits": budget,
    }


def read_summary(path: str | Path) -> dict[str, Any] | None:
    """:func:`summarise` of the ledger at ``path``, opened read-only (never blocks or changes
    a running agent); None when there is no ledger yet."""
    path = Path(path)
    if not path.is_file():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return summarise(db)
    except sqlite3.OperationalError:  # the agent is creating it right now
        return None
    finally:
        db.close()


def _blank() -> dict[str, Any]:
    return {"z": 0, "bits": 0.0, "cover": 0, "versions": {}}


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds")


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); caller holds the lock."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _make_private(db_path: Path) -> None:
    """Folder 0700; database and any SQLite side files 0600, before SQLite opens them."""
    private_dir(db_path.parent)
    private_file(db_path)
    for suffix in SQLITE_SIDE_FILES:
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            private_file(side)


# -- what `lifeveil device ledger` and `device run` print -------------------------------------
def summary_lines(summary: dict) -> list[str]:
    """The ledger summary (:func:`read_summary`) as the lines `lifeveil device ledger` prints."""
    budget = summary["daily_budget_bits"]
    lines = [f"daily budget: {'none' if budget is None else f'{budget:.1f} bits'}"]
    lines += [
        f"version {v}: {info['label']} (charged as {info['bound']}), in use since "
        f"{info['in_use_since']}"
        for v, info in summary["versions"].items()
    ]
    lines.append(f"{'day':<20}{'z':>10}{'bits':>16}{'cover frames':>14}")
    for day in [*summary["days"], {"day": "lifetime", **summary["lifetime"]}]:
        lines.append(f"{day['day']:<20}{day['z']:>10}{day['bits']:>16.1f}{day['cover']:>14}")
        if len(day["versions"]) > 1:  # a day (or life) that spans privatizer versions
            lines += [
                f"  {v:<18}{t['z']:>10}{t['bits']:>16.1f}" for v, t in day["versions"].items()
            ]
    return lines


def today_line(spent_bits: float, budget_bits: float | None) -> str:
    """One line: bits released today against the daily budget."""
    cap = "no daily budget" if budget_bits is None else f"of a {budget_bits:.1f}-bit daily budget"
    return f"ledger: {spent_bits:.1f} bits released today (UTC) {cap}; `lifeveil device ledger`"
