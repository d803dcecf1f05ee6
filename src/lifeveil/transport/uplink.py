"""Device-side constant-rate uplink over WebSocket + TLS.

Why WebSocket rather than HTTPS batch posts: one long-lived TLS connection carries one
fixed-size binary message per tick in each direction (frame up, ack down), so the traffic
pattern is a metronome that does not depend on what the camera sees, and there is no
per-request header whose size or timing could vary. HTTPS batches would add request/response
headers, connection reuse and retry timing to reason about. (The server also accepts
``POST /v1/frames`` for networks that block WebSockets.) Permessage-deflate is disabled on
both ends: compressed sizes leak content.

Delivery is at-least-once: every real frame stays *in flight* until the server acks its
``seq`` (the server acks frame i when frame i+1 arrives, one tick later); on disconnect,
in-flight frames are resent after reconnecting (exponential backoff with jitter). The server
deduplicates by ``(device, seq)``, so resends are idempotent and the end state is
exactly-once. The caller supplies two callbacks, both run on the uplink's own thread (so a
SQLite-backed outbox must open its connection with ``check_same_thread=False`` or guard it
with a lock):

* ``next_record() -> ZRecord | None``: called once per tick when there is room in flight;
  None means nothing to send and a cover frame goes out instead.
* ``on_ack(seq, status)``: the server durably holds ``seq`` (``STORED`` or ``DUPLICATE``) or
  refused it as reusing a seq with different content (``CONFLICT``); the caller may delete it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
)

from lifeveil.errors import AuthError, EgressRefusedError, ProtocolError
from lifeveil.transport.frame import AckStatus, WireSpec, decode_ack
from lifeveil.transport.guard import EgressGuard, GuardedFrame
from lifeveil.transport.protocol import FATAL_CLOSE_CODES, UPLINK_PATH, WIRE_HEADER
from lifeveil.transport.record import ZRecord

log = logging.getLogger(__name__)

NextRecord = Callable[[], ZRecord | None]
OnAck = Callable[[int, AckStatus], None]
OnRefused = Callable[[object, EgressRefusedError], None]


@dataclass(frozen=True)
class UplinkConfig:
    """How and where the device sends frames.

    Attributes:
        url: ``wss://HOST:PORT/v1/uplink``; plaintext ``ws://`` is refused.
        token: the per-device token returned once by device registration.
        wire: frame format; must match the server's (``GET /v1/info``).
        rate_hz: frames per second, real or cover; constant whatever the camera sees.
        cafile: PEM file of certificates to trust, e.g. the server's self-signed
            ``cert.pem``; None uses the system trust store.
        max_in_flight: unacked real frames allowed before ticks carry cover frames only.
        backoff_initial_s / backoff_max_s: reconnect delay range (exponential, jittered).
        connect_timeout_s: TCP + TLS + WebSocket handshake timeout.
        ack_timeout_s: no ack (real or cover) for this long means the link is dead: the
            session is dropped and reconnected. This replaces WebSocket keepalive pings, which
            would put records of another size on the wire; the constant-rate cover frames
            and their acks are the keepalive.
        drain_s: on stop, keep sending cover frames up to this long so that the last real
            frames get acked.
    """

    url: str
    token: str = field(repr=False)
    wire: WireSpec = field(default_factory=WireSpec)
    rate_hz: float = 10.0
    cafile: str | None = None
    max_in_flight: int = 256
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    connect_timeout_s: float = 10.0
    drain_s: float = 2.0
    ack_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not self.url.startswith("wss://"):
            raise ProtocolError(
                f"uplink URL {self.url!r} is not wss://; z is only sent over TLS "
                f"(e.g. wss://127.0.0.1:8443{UPLINK_PATH})"
            )
        if not 0 < self.rate_hz <= 1000:
            raise ProtocolError(f"rate_hz={self.rate_hz} must be in (0, 1000]")
        if self.max_in_flight < 1:
            raise ProtocolError("max_in_flight must be >= 1")
        if self.ack_timeout_s <= 2.0 / self.rate_hz:
            raise ProtocolError(
                f"ack_timeout_s={self.ack_timeout_s} must exceed two frame periods "
                f"({2.0 / self.rate_hz:.3f} s at {self.rate_hz} Hz)"
            )
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise ProtocolError("need 0 < backoff_initial_s <= backoff_max_s")


@dataclass
class UplinkStats:
    """Counters since the Uplink was created (read from any thread)."""

    real_sent: int = 0
    cover_sent: int = 0
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0
    refused: int = 0
    connects: int = 0
    disconnects: int = 0


def backoff_delay(attempt: int, initial_s: float, max_s: float, u: float) -> float:
    """Reconnect delay in seconds for the ``attempt``-th consecutive failure (0-based).

    Exponential with "equal jitter": ``d = min(max_s, initial_s * 2**attempt)``, result in
    ``[d/2, d]`` chosen by ``u`` in ``[0, 1)``, so that many devices do not reconnect in step.

    >>> backoff_delay(0, 0.5, 30.0, 0.0), backoff_delay(3, 0.5, 30.0, 0.999) < 4.0
    (0.25, True)
    >>> backoff_delay(20, 0.5, 30.0, 0.0)
    15.0
    """
    d = min(max_s, initial_s * 2.0 ** min(attempt, 60))
    return d / 2 + u * d / 2


class _FatalError(Exception):
    """Wraps an error that reconnecting cannot fix; ends :meth:`Uplink.run`."""


class Uplink:
    """Sends one frame per tick over ``wss://``, reconnecting and resending until acked.

    Use from synchronous code with :meth:`start` / :meth:`stop` (or ``with Uplink(...)``), or
    ``await uplink.run(stop_event)`` inside an asyncio program. A fatal error (bad token,
    wire-format mismatch, a callback raising) stops the uplink and is kept in :attr:`error`.
    """

    def __init__(
        self,
        config: UplinkConfig,
        *,
        next_record: NextRecord,
        on_ack: OnAck,
        on_refused: OnRefused | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.stats = UplinkStats()
        self.error: Exception | None = None
        self._guard = EgressGuard(config.wire)
        self._next_record = next_record
        self._on_ack = on_ack
        self._on_refused = on_refused
        self._ssl = ssl_context or client_ssl_context(config.cafile)
        self._in_flight: dict[int, GuardedFrame] = {}
        self._resend: deque[GuardedFrame] = deque()
        self._connected = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # -- public state -----------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a WebSocket session is open."""
        return self._connected

    @property
    def in_flight(self) -> int:
        """Real frames sent or queued for resend but not yet acked."""
        return len(self._in_flight) + len(self._resend)

    # -- threaded use -----------------------------------------------------------------
    def start(self) -> None:
        """Run the uplink on a background daemon thread; returns immediately."""
        if self._thread is not None:
            raise RuntimeError("Uplink already started")
        ready = threading.Event()

        def main() -> None:
            async def runner() -> None:
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                ready.set()
                try:
                    await self.run(self._stop)
                except Exception as exc:  # a bug; keep it visible instead of a silent thread
                    log.exception("uplink crashed")
                    self.error = exc

            asyncio.run(runner())

        self._thread = threading.Thread(target=main, name="lifeveil-uplink", daemon=True)
        self._thread.start()
        ready.wait(5.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Drain (see ``UplinkConfig.drain_s``), close the connection and join the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Uplink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- asyncio use ------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Connect, stream, reconnect with backoff, until ``stop`` is set or a fatal error."""
        attempt = 0
        while not stop.is_set():
            try:
                await self._connect_and_stream(stop)
                attempt = 0
            except _FatalError as exc:
                self.error = exc.__cause__ or exc
                log.error("uplink stopped: %s", self.error)
                return
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as exc:
                log.warning("uplink disconnected: %s", _describe(exc))
            if stop.is_set():
                return
            delay = backoff_delay(
                attempt, self.config.backoff_initial_s, self.config.backoff_max_s, random.random()
            )
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _connect_and_stream(self, stop: asyncio.Event) -> None:
        headers = {
            "Authorization": f"Bearer {self.config.token}",
            WIRE_HEADER: self.config.wire.token(),
        }
        try:
            async with connect(
                self.config.url,
                ssl=self._ssl,
                compression=None,  # compressed sizes would leak content
                additional_headers=headers,
                user_agent_header="lifeveil",
                open_timeout=self.config.connect_timeout_s,
                max_size=4096,
                proxy=None,
                ping_interval=None,  # pings are records of another size; acks are the keepalive
            ) as ws:
                self._connected = True
                self.stats.connects += 1
                await self._session(ws, stop)
        except InvalidStatus as exc:
            _raise_if_fatal_status(exc)
            raise
        except ssl.SSLCertVerificationError as exc:
            message = (
                f"the server's TLS certificate is not trusted ({exc.verify_message}); pass its "
                "cert.pem as UplinkConfig.cafile"
            )
            raise _FatalError() from ProtocolError(message)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code in FATAL_CLOSE_CODES:
                reason = f"server closed the uplink: {exc.rcvd.reason}"
                raise _FatalError() from ProtocolError(reason)
            raise
        finally:
            if self._connected:
                self.stats.disconnects += 1
            self._connected = False
            self._requeue_in_flight()

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        sender = asyncio.create_task(self._send_loop(ws, stop))
        receiver = asyncio.create_task(self._recv_loop(ws))
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # re-raise what ended the session

    async def _send_loop(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.config.rate_hz
        next_tick = loop.time()
        drain_until: float | None = None
        while True:
            if stop.is_set():
                drain_until = drain_until or loop.time() + self.config.drain_s
                if not self._in_flight or loop.time() >= drain_until:
                    return
                frame = self._guard.cover()
            else:
                frame = self._next_frame()
            # Prepare first, then wait for the tick: send times never depend on the work.
            delay = next_tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -period:  # fell behind (slow callback, paused VM): resync, no burst
                next_tick = loop.time()
            await ws.send(self._guard.approve(frame))
            if frame.is_cover:
                self.stats.cover_sent += 1
            else:
                self.stats.real_sent += 1
            next_tick += period

    async def _recv_loop(self, ws: ClientConnection) -> None:
        while True:
            try:
                message = await asyncio.wait_for(ws.recv(), self.config.ack_timeout_s)
            except TimeoutError:
                raise TimeoutError(
                    f"no ack from the server for {self.config.ack_timeout_s:.0f} s; reconnecting"
                ) from None
            except ConnectionClosedOK:
                return  # a normal close ends the session; run() reconnects unless stopping
            if isinstance(message, str):
                raise _FatalError() from ProtocolError("server sent a text message on the uplink")
            try:
                ack = decode_ack(message)
            except ProtocolError as exc:
                raise _FatalError() from exc
            if ack.status is AckStatus.COVER or self._in_flight.pop(ack.seq, None) is None:
                continue
            self._count_ack(ack.status)
            self._callback(self._on_ack, ack.seq, ack.status)

    def _next_frame(self) -> GuardedFrame:
        if self._resend:
            frame = self._resend.popleft()
        elif len(self._in_flight) >= self.config.max_in_flight:
            return self._guard.cover()
        else:
            record = self._callback(self._next_record)
            if record is None:
                return self._guard.cover()
            try:
                frame = self._guard.frame(record)
            except EgressRefusedError as exc:
                self._refuse(record, exc)
                return self._guard.cover()
        assert frame.seq is not None
        self._in_flight[frame.seq] = frame
        return frame

    def _refuse(self, record: object, exc: EgressRefusedError) -> None:
        self.stats.refused += 1
        if self._on_refused is None:
            log.error("%s (record dropped from this uplink session)", exc)
        else:
            self._callback(self._on_refused, record, exc)

    def _count_ack(self, status: AckStatus) -> None:
        if status is AckStatus.STORED:
            self.stats.stored += 1
        elif status is AckStatus.DUPLICATE:
            self.stats.duplicates += 1
        else:
            self.stats.conflicts += 1
            log.warning("server kept an earlier, different record under a reused seq")

    def _requeue_in_flight(self) -> None:
        frames = [*self._in_flight.values(), *self._resend]
        self._in_flight.clear()
        self._resend = deque(sorted(frames, key=lambda f: f.seq or 0))

    @staticmethod
    def _callback(fn: Callable[..., object], *args: object) -> object:
        try:
            return fn(*args)
        except Exception as exc:
            raise _FatalError() from exc


def client_ssl_context(cafile: str | Path | None = None) -> ssl.SSLContext:
    """TLS >= 1.2 client context that verifies the server against ``cafile`` (or system CAs)."""
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _raise_if_fatal_status(exc: InvalidStatus) -> None:
    status = exc.response.status_code
    if status in (408, 429) or status >= 500:
        return
    try:
        message = json.loads(exc.response.body or b"{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    detail = f"server refused the uplink with HTTP {status}: {message or exc}"
    error = AuthError(detail) if status in (401, 403) else ProtocolError(detail)
    raise _FatalError() from error


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class MemoryOutbox:
    """Thread-safe in-memory record source for :class:`Uplink` (tests, notebooks, demos).

    Not durable: a process crash loses unacked records. The device agent keeps its outbox in
    SQLite with the same contract: hand out records once per Uplink session, delete on ack,
    and hand out every unacked record again after a restart (:meth:`rewind`).
    """

    def __init__(self, records: list[ZRecord] | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: deque[ZRecord] = deque(records or [])
        self._handed_out: dict[int, ZRecord] = {}
        self.acked: dict[int, AckStatus] = {}
        self.ack_times: dict[int, float] = {}

    def put(self, record: ZRecord) -> None:
        """Queue one record for sending."""
        with self._lock:
            self._queue.append(record)

    def next_record(self) -> ZRecord | None:
        """Uplink callback: the next unsent record, or None."""
        with self._lock:
            if not self._queue:
                return None
            record = self._queue.popleft()
            self._handed_out[record.seq] = record
            return record

    def on_ack(self, seq: int, status: AckStatus) -> None:
        """Uplink callback: forget ``seq``; remember the status for inspection."""
        with self._lock:
            self._handed_out.pop(seq, None)
            self.acked[seq] = status
            self.ack_times[seq] = time.monotonic()

    def rewind(self) -> None:
        """Queue every handed-out, unacked record again (call before a new Uplink)."""
        with self._lock:
            self._queue.extendleft(sorted(self._handed_out.values(), key=lambda r: -r.seq))
            self._handed_out.clear()

    def unacked(self) -> int:
        """Records queued or handed out and not yet acked."""
        with self._lock:
            return len(self._queue) + len(self._handed_out)
