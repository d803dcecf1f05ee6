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
* ``on_ack(seq, status)``: the server durably holds ``seq`` (``STORED`` or ``DUPLICATE``) and
  the caller may delete it; or it refused it, and the caller must keep it: ``CONFLICT`` (a seq
  reused with different content) or ``UNKNOWN_SPACE`` (no privatizer version with the record's
  space tag is registered for this tenant). After ``UNKNOWN_SPACE`` the caller should not hand
  out that tag's records again until the version is registered (a resend earns the same
  answer); the uplink logs one ERROR per tag and carries on with the other records, one frame
  per tick as always.

The configuration, counters and backoff schedule are in ``uplink_config``, the TLS context in
``tls`` and the in-memory record source :class:`MemoryOutbox` in ``memory_outbox``; all are
importable from here as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import threading
from collections import deque
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
)

from lifeveil.errors import AuthError, EgressRefusedError, ProtocolError
from lifeveil.transport.frame import AckStatus, decode_ack
from lifeveil.transport.guard import EgressGuard, GuardedFrame
from lifeveil.transport.memory_outbox import MemoryOutbox
from lifeveil.transport.protocol import FATAL_CLOSE_CODES, WIRE_HEADER
from lifeveil.transport.record import NO_SPACE, ZRecord
from lifeveil.transport.tls import client_ssl_context
from lifeveil.transport.uplink_config import UplinkConfig, UplinkStats, backoff_delay

log = logging.getLogger(__name__)

__all__ = [
    "MemoryOutbox",
    "NextRecord",
    "OnAck",
    "OnRefused",
    "Uplink",
    "UplinkConfig",
    "UplinkStats",
    "backoff_delay",
    "client_ssl_context",
]

NextRecord = Callable[[], ZRecord | None]
OnAck = Callable[[int, AckStatus], None]
OnRefused = Callable[[object, EgressRefusedError], None]


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
        self._spaces: dict[int, int] = {}  # space tag of each real frame in flight, by seq
        self._unknown_spaces: set[int] = set()  # tags the server answered UNKNOWN_SPACE for
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
            self._count_ack(ack.status, self._spaces.pop(ack.seq, NO_SPACE))
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
            self._spaces[frame.seq] = int(getattr(record, "space", NO_SPACE))
        assert frame.seq is not None
        self._in_flight[frame.seq] = frame
        return frame

    def _refuse(self, record: object, exc: EgressRefusedError) -> None:
        self.stats.refused += 1
        if self._on_refused is None:
            log.error("%s (record dropped from this uplink session)", exc)
        else:
            self._callback(self._on_refused, record, exc)

    def _count_ack(self, status: AckStatus, space: int) -> None:
        if status is AckStatus.STORED:
            self.stats.stored += 1
        elif status is AckStatus.DUPLICATE:
            self.stats.duplicates += 1
        elif status is AckStatus.UNKNOWN_SPACE:
            self.stats.unknown_space += 1
            self._unknown_space(space)
        else:
            self.stats.conflicts += 1
            log.warning("server kept an earlier, different record under a reused seq")

    def _unknown_space(self, space: int) -> None:
        """One ERROR per tag: what is wrong, what happens to the z, how to fix it."""
        if space in self._unknown_spaces:
            return
        self._unknown_spaces.add(space)
        log.error(
            "the server has no privatizer version with space tag %d registered for this "
            "tenant, so z of that tag are NOT stored; they stay queued and the other z keep "
            "flowing. Register the version: the device agent does it when it starts (restart "
            "`lifeveil device run`), from Python QueryClient.register_space(version, z_dim)",
            space,
        )

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
