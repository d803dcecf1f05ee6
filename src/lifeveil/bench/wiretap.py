"""A passive network observer: a loopback TCP relay that logs what an eavesdropper sees.

Clients connect to the tap instead of the server; the tap forwards every byte unchanged and
records, per connection and direction, the time and size of each TCP read and of each TLS
record (the 5-byte TLS record header travels in clear, so a real on-path observer sees
exactly these record types and lengths, but not the plaintext). This is the vantage point
of the side-channel attack in the position paper (Section II.C): sizes and timings only.

>>> tap = WireTap(target_port=8443); tap.start()          # doctest: +SKIP
>>> ... connect clients to 127.0.0.1:tap.port ...          # doctest: +SKIP
>>> tap.connections()[0].records("up")                     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
TLS_HEADER = 5
TLS_APPLICATION_DATA = 23


@dataclass(frozen=True)
class TlsRecord:
    """One TLS record as seen on the wire: arrival time (monotonic s), type, total bytes."""

    t: float
    content_type: int
    size: int  # header + ciphertext


@dataclass
class _Direction:
    reads: list[tuple[float, int]] = field(default_factory=list)
    records: list[TlsRecord] = field(default_factory=list)
    pending: bytearray = field(default_factory=bytearray)

    def feed(self, t: float, data: bytes) -> None:
        self.reads.append((t, len(data)))
        self.pending += data
        while len(self.pending) >= TLS_HEADER:
            length = int.from_bytes(self.pending[3:5], "big")
            if len(self.pending) < TLS_HEADER + length:
                break
            self.records.append(TlsRecord(t, self.pending[0], TLS_HEADER + length))
            del self.pending[: TLS_HEADER + length]


@dataclass
class Connection:
    """What the tap saw of one TCP connection; ``up`` is client -> server."""

    opened: float
    up: _Direction = field(default_factory=_Direction)
    down: _Direction = field(default_factory=_Direction)

    def records(self, direction: str, content_type: int | None = None) -> list[TlsRecord]:
        """TLS records of ``"up"`` or ``"down"``, optionally of one content type."""
        records = list(getattr(self, direction).records)
        if content_type is None:
            return records
        return [r for r in records if r.content_type == content_type]

    def bytes(self, direction: str) -> int:
        """Total TCP payload bytes in one direction."""
        return sum(n for _, n in getattr(self, direction).reads)


@dataclass(frozen=True)
class SteadyRun:
    """A record stream split into handshake, steady state and close.

    ``run`` spans from the first to the last record of the most common size; a constant-size
    stream has ``len(set(run)) == 1``.
    """

    before: list[int]
    run: list[int]
    after: list[int]

    @property
    def constant(self) -> bool:
        """True if every record of the steady state has the same size."""
        return len(set(self.run)) == 1


def steady_run(records: list[TlsRecord]) -> SteadyRun:
    """Split record sizes around the run of the most common size (see :class:`SteadyRun`)."""
    sizes = [r.size for r in records]
    if not sizes:
        return SteadyRun([], [], [])
    mode = max(set(sizes), key=sizes.count)
    first, last = sizes.index(mode), len(sizes) - 1 - sizes[::-1].index(mode)
    return SteadyRun(sizes[:first], sizes[first : last + 1], sizes[last + 1 :])


class WireTap:
    """Relay ``127.0.0.1:port`` -> ``127.0.0.1:target_port`` on a background thread."""

    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WireTap:
        """Listen on a free loopback port (``self.port``); returns self."""
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, HOST, 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=main, name="lifeveil-wiretap", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Close the listener and all relayed connections."""
        if self._loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._thread = None

    def __enter__(self) -> WireTap:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def connections(self) -> list[Connection]:
        """Connections seen so far, in the order they were opened."""
        with self._lock:
            return list(self._connections)

    def clear(self) -> None:
        """Forget connections seen so far."""
        with self._lock:
            self._connections.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(time.monotonic())
        with self._lock:
            self._connections.append(conn)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, conn.up)),
            asyncio.create_task(self._pump(up_reader, writer, conn.down)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the tap is stopping; close both sides below and end quietly
        finally:
            for task in pumps:
                task.cancel()
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: _Direction
    ) -> None:
        while data := await reader.read(65536):
            with self._lock:
                log.feed(time.monotonic(), data)
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()
