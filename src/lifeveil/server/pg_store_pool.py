"""Connections for the PostgreSQL store: a small pool, retries with back-off, clear errors.

psycopg (the ``postgres`` extra) is imported only when a pool is opened, so the server
imports without it and choosing the backend says what to install.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from lifeveil.errors import InputError
from lifeveil.server.store import StoreUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds slept before each retry of a transient failure (about 6 s in all), so that a
# PostgreSQL restart or fail-over is ridden out instead of failing the request.
RETRY_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 2.0)


def import_psycopg() -> Any:
    """The psycopg module, or InputError saying what to install."""
    try:
        import pgvector.psycopg  # noqa: F401
        import psycopg
    except ImportError as exc:
        raise InputError(
            f"the postgresql store needs psycopg 3 and pgvector ({exc.name} is missing); "
            "install them with `pip install 'lifeveil[postgres]'`"
        ) from None
    return psycopg


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs.

    >>> redact("postgresql://me:secret@db:5432/lv")
    'postgresql://me:***@db:5432/lv'
    """
    if "://" in dsn and "@" in dsn:
        scheme, rest = dsn.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return " ".join("password=***" if p.startswith("password=") else p for p in dsn.split())


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an error's text (libpq messages span several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class ConnectionPool:
    """Up to ``size`` open connections, each set up once by ``configure(conn)``.

    :meth:`run` hands a connection to a function inside a transaction and retries the whole
    function, on a fresh connection, when the connection fails (server down or restarting);
    errors of the statement itself (constraint violations...) are not retried.
    """

    def __init__(
        self, dsn: str, size: int = 4, configure: Callable[[Any], None] | None = None
    ) -> None:
        self._psycopg = import_psycopg()
        self.dsn = dsn
        self._configure = configure
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False
        try:
            self._psycopg.conninfo.conninfo_to_dict(dsn)
        except self._psycopg.ProgrammingError as exc:
            raise InputError(
                f"store DSN {redact(dsn)!r} is not a PostgreSQL connection string "
                f"({first_line(exc)}); expected postgresql://USER@HOST:PORT/DATABASE"
            ) from None

    def _connect(self) -> Any:
        conn = self._psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
        try:
            if self._configure is not None:
                self._configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _checkout(self) -> Iterator[Any]:
        if self._closed:
            raise StoreUnavailableError("the PostgreSQL store was closed")
        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._connect()
            try:
                yield conn
            finally:
                if conn.broken or conn.closed or self._closed:
                    conn.close()  # a fresh one replaces it on the next checkout
                else:
                    with self._lock:
                        self._idle.append(conn)

    def run(self, work: Callable[[Any], T], *, transaction: bool = True) -> T:
        """``work(conn)`` (in one transaction unless told otherwise), retried when the
        connection fails; StoreUnavailableError once the retries are spent."""
        operational = self._psycopg.OperationalError
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
            try:
                with self._checkout() as conn:
                    if not transaction:
                        return work(conn)
                    with conn.transaction():
                        return work(conn)
            except operational as exc:
                if _is_permanent(exc):
                    raise self._refused(exc) from None
                if delay is None or self._closed:
                    raise self._unavailable(exc) from None
                log.info("PostgreSQL unavailable (%s); retry %d", first_line(exc), attempt + 1)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"PostgreSQL at {redact(self.dsn)} is unavailable ({first_line(exc)}); is it "
            f"running and reachable? (retried for {sum(RETRY_DELAYS_S):g} s)"
        )

    def _refused(self, exc: BaseException) -> InputError:
        return InputError(
            f"PostgreSQL at {redact(self.dsn)} refused the connection ({first_line(exc)}); "
            "check the user, password (PGPASSWORD or ~/.pgpass) and database name in the DSN"
        )

    def close(self) -> None:
        """Close every idle connection; later calls fail with StoreUnavailableError."""
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _is_permanent(exc: BaseException) -> bool:
    """Failures that retrying cannot fix: bad credentials or a missing database."""
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("password authentication failed", "does not exist", "no password supplied")
    )


def binary_z_loader(psycopg: Any) -> type:
    """A loader turning pgvector's binary ``vector`` (int16 d, int16 0, d big-endian
    float32) into a little-endian float32 numpy array, with no text parsing."""

    class ZLoader(psycopg.adapt.Loader):  # type: ignore[misc, name-defined]
        format = psycopg.pq.Format.BINARY

        def load(self, data: Any) -> np.ndarray:
            return np.frombuffer(data, dtype=">f4", offset=4).astype("<f4")

    return ZLoader


# COPY ... (FORMAT BINARY): signature, flags, header extension length; then the rows, then -1.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"


def copy_rows_binary(columns: Sequence[np.ndarray], z: np.ndarray) -> bytes:
    """The whole binary COPY stream for rows of integer ``columns`` then a ``vector(d)``,
    built by numpy in one go (per-row ``write_row`` took a fifth of the ingest time).

    Each column's dtype gives its PostgreSQL type: 4-byte integers are ``int4``, others
    ``int8``. Each row: field count (int16), then per field its length (int32) and
    big-endian value; a pgvector ``vector`` is int16 d, int16 0, d float32.

    >>> cols = [np.array([1], np.int32), np.array([2]), np.array([3])]
    >>> copy_rows_binary(cols, np.ones((1, 1))).hex()[38:]
    '0004000000040000000100000008000000000000000200000008000000000000000300000008000100003f800000ffff'
    """
    n, d = z.shape
    fields: list[tuple[str, Any] | tuple[str, Any, tuple[int]]] = [("fields", ">i2")]
    for i, column in enumerate(columns):
        size = 4 if np.asarray(column).dtype.itemsize == 4 else 8
        fields += [(f"len{i}", ">i4"), (f"col{i}", f">i{size}")]
    fields += [("z_len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("z", ">f4", (d,))]
    rows = np.zeros(n, dtype=np.dtype(fields))
    rows["fields"], rows["z_len"], rows["dim"] = len(columns) + 1, 4 + 4 * d, d
    for i, column in enumerate(columns):
        rows[f"len{i}"] = rows.dtype[f"col{i}"].itemsize
        rows[f"col{i}"] = column
    rows["z"] = z
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER
