"""Turning received frames into stored records and acks (shared by WebSocket and HTTPS), and
the two work queues that keep the event loop free: :class:`IngestBatcher` (group commit of
every uplink's records) and :class:`SearchPool` (a few threads for queries, bounded)."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from lifeveil.errors import ProtocolError
from lifeveil.server.priority import query_thread_initializer
from lifeveil.server.store import Principal, PutResult, StoreUnavailableError, ZStore
from lifeveil.transport.frame import AckStatus, WireSpec, decode_frame, encode_ack
from lifeveil.transport.record import ZRecord

T = TypeVar("T")


def decode_batch(body: bytes, spec: WireSpec, max_frames: int) -> list[ZRecord | None]:
    """Split a body of concatenated frames and decode each (None for cover frames).

    Raises:
        ProtocolError: the body is not a whole number of frames, holds more than
            ``max_frames``, or any frame is malformed (the message names its index). Nothing
            of a batch is stored unless every frame is valid.
    """
    size = spec.frame_bytes
    count, remainder = divmod(len(body), size)
    if remainder or count == 0:
        raise ProtocolError(
            f"body is {len(body)} bytes; expected 1..{max_frames} whole frames of {spec.describe()}"
        )
    if count > max_frames:
        raise ProtocolError(f"{count} frames in one request; the limit is {max_frames}")
    decoded = []
    for i in range(count):
        try:
            decoded.append(decode_frame(body[i * size : (i + 1) * size], spec))
        except ProtocolError as exc:
            raise ProtocolError(f"frame {i}: {exc}") from None
    return decoded


def ingest(store: ZStore, device: Principal, frames: list[ZRecord | None]) -> list[bytes]:
    """Store the real records of ``frames`` durably; one 16-byte ack per frame, cover included.

    The store is written even for an all-cover batch (the device's last-seen time), so that a
    cover frame costs the server about as much as a real one and response timing does not
    tell the two apart.
    """
    real = [f for f in frames if f is not None]
    statuses = iter(store.put_records(device, real))
    return [
        encode_ack(AckStatus.COVER) if f is None else encode_ack(next(statuses), f.seq)
        for f in frames
    ]


class IngestBatcher:
    """Group commit: concurrent ingests are stored together in one store transaction.

    Every uplink (a WebSocket frame, a POST of frames) hands its records to :meth:`ingest`
    and waits; one writer thread takes everything waiting, stores it with
    :meth:`ZStore.put_records_many` (one fsync for all of it) and wakes the callers with their
    own statuses. While a write is in progress new arrivals gather for the next one, so the
    batch grows with the load and no caller waits for more than about two transactions.

    Bounded: when more than ``max_waiting_records`` are queued a caller waits up to
    ``wait_s`` for room and then gets StoreUnavailableError (HTTP 503 with Retry-After; the
    device outbox resends later). Nothing is acked before it is durably stored.
    """

    def __init__(
        self,
        store: ZStore,
        max_batch_records: int = 4096,
        max_waiting_records: int = 65536,
        wait_s: float = 10.0,
    ) -> None:
        self.store = store
        self.max_batch_records = max_batch_records
        self.max_waiting_records = max_waiting_records
        self.wait_s = wait_s
        self._waiting: list[_Pending] = []
        self._n_waiting = 0
        self._cond = threading.Condition()
        self._closed = False
        self._writer: threading.Thread | None = None  # started by the first ingest

    def ingest(self, device: Principal, frames: list[ZRecord | None]) -> list[bytes]:
        """:func:`ingest` through the group commit (blocks until stored; thread-safe)."""
        real = [f for f in frames if f is not None]
        statuses = iter(self.put_records(device, real))
        return [
            encode_ack(AckStatus.COVER) if f is None else encode_ack(next(statuses), f.seq)
            for f in frames
        ]

    def put_records(self, device: Principal, records: list[ZRecord]) -> list[AckStatus]:
        """:meth:`ZStore.put_records`, committed together with whatever else is waiting."""
        pending = _Pending(device, records)
        with self._cond:
            room = self._cond.wait_for(
                lambda: self._closed or self._n_waiting < self.max_waiting_records, self.wait_s
            )
            if self._closed:
                raise StoreUnavailableError("the server is shutting down; resend later")
            if not room:
                raise StoreUnavailableError(
                    f"ingest queue full ({self._n_waiting} records waiting to be stored); "
                    "resend later"
                )
            self._waiting.append(pending)
            self._n_waiting += len(records) + 1
            self._cond.notify_all()
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="lifeveil-ingest", daemon=True
                )
                self._writer.start()
        pending.done.wait()
        if isinstance(pending.result, BaseException):
            raise pending.result
        assert pending.result is not None
        return pending.result

    def _next_batch(self) -> list[_Pending] | None:
        with self._cond:
            self._cond.wait_for(lambda: self._waiting or self._closed)
            if not self._waiting:
                return None
            batch, size = [], 0
            while self._waiting and (not batch or size < self.max_batch_records):
                item = self._waiting.pop(0)
                batch.append(item)
                size += len(item.records) + 1
            self._n_waiting -= size
            self._cond.notify_all()
        return batch

    def _write_loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                results: list[PutResult] | BaseException = self.store.put_records_many(
                    [(p.device, p.records) for p in batch]
                )
            except BaseException as exc:  # the whole transaction failed: tell every caller
                results = exc
            for i, pending in enumerate(batch):
                pending.result = results if isinstance(results, BaseException) else results[i]
                pending.done.set()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (a restarted app makes a new batcher)."""
        return self._closed

    def close(self) -> None:
        """Store what is queued, then stop the writer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            writer = self._writer
        if writer is not None:
            writer.join(30)


class _Pending:
    """One caller's records and, once written, its statuses or error."""

    def __init__(self, device: Principal, records: list[ZRecord]) -> None:
        self.device, self.records = device, records
        self.result: PutResult | BaseException | None = None
        self.done = threading.Event()


class SearchPool:
    """A few threads for queries (k-NN, timelines), apart from ingest and the event loop.

    Its threads run below ingest's OS priority (:mod:`lifeveil.server.priority`), so busy
    cores serve ingest first. At most ``workers`` queries run at once, so a burst of searches cannot take every
    thread that ingest needs; up to ``max_waiting`` more queue, and beyond that a query is
    refused at once with StoreUnavailableError (HTTP 503, Retry-After) instead of piling up.
    """

    def __init__(self, workers: int = 2, max_waiting: int = 64) -> None:
        self.workers, self.max_waiting = workers, max_waiting
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="lifeveil-search", initializer=query_thread_initializer
        )
        self._closed = False
        self._in_flight = 0  # touched only on the event loop's thread

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on a pool thread, awaited without blocking the event loop."""
        if self._in_flight >= self.workers + self.max_waiting:
            raise StoreUnavailableError(
                f"{self._in_flight} queries are already running or waiting; retry shortly"
            )
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        finally:
            self._in_flight -= 1

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (a restarted app makes a new pool)."""
        return self._closed

    def close(self) -> None:
        """Stop the threads (running queries finish; queued ones are dropped)."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
