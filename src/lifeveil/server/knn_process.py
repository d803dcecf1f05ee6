"""k-NN for the SQLite store in a worker process, so that queries do not slow ingest down.

In one Python process, ingest and k-NN share the interpreter lock: a query gives it up and
takes it back at every C call (usearch, NumPy, SQLite), and each time it takes it back ingest
waits for the query's next Python stretch (measured on 2 cores with 100k z stored: ingest
26-28 % slower while one thread queries back to back, with the query threads at a lower OS
priority; 13-17 % with this worker). Here the HNSW indexes of
:class:`~lifeveil.server.ann_search.AnnSearch` live in a child process with its own
interpreter and its own read-only connection to the database (WAL: readers never wait for the
writer). The store sends it the committed records (keys and z, in commit order, gathered into
batches of up to :data:`SEND_ROWS`) and each query over one ordered queue, a query sending
what is waiting first, so it sees every record stored before it was asked, as
with the in-process index; the child reads the candidate rows back and re-ranks them itself,
so only the k hits come back. The child runs at the query threads' OS priority and its index
upkeep at the lowest (:mod:`lifeveil.server.priority`): busy cores serve ingest first.

:class:`KnnProcess` has the methods the store uses of :class:`AnnSearch` (``enabled``,
``on_stored``, ``knn``, ``wait_ready``, ``wait_idle``, ``close``). If the child dies, k-NN
answers None (the store falls back to its exact scan) until the store is reopened, and the
failure is logged once.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import sqlite3
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from lifeveil.server.ann_index import ann_available
from lifeveil.server.ann_search import AnnSearch, Scope
from lifeveil.server.priority import QUERY_NICE, lower_thread_priority, single_threaded_blas
from lifeveil.server.sqlite_vectors import read_records_by_keys, read_tenant_vectors
from lifeveil.server.store import NeighborHit

log = logging.getLogger(__name__)

#: How long a query waits for the child before the store answers by its exact scan.
QUERY_TIMEOUT_S = 30.0
#: Committed records gathered before they are sent to the child (a query sends them at once).
SEND_ROWS = 4096
#: How often a waiting query checks that the child is still alive.
CHILD_CHECK_S = 0.5


class _Reader:
    """The child's view of the database: the :class:`VectorSource` that AnnSearch reads."""

    def __init__(self, path: str, z_dim: int) -> None:
        self._conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=10.0, check_same_thread=False
        )
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._lock = threading.Lock()  # the request loop and AnnSearch's worker both read
        self._z_dim = z_dim

    def tenant_vectors(self, scope: Scope) -> tuple[np.ndarray, np.ndarray]:
        """Keys and z of every record of ``scope``."""
        with self._lock:
            return read_tenant_vectors(self._conn, scope, self._z_dim)

    def records_by_keys(self, scope: Scope, keys: np.ndarray) -> list[tuple]:
        """The scope's rows among ``keys``."""
        with self._lock:
            return read_records_by_keys(self._conn, scope, keys)


def _serve(
    path: str, folder: str, z_dim: int, min_records: int, requests: Any, replies: Any
) -> None:
    """The child: answer requests in the order they were sent until ``None`` arrives."""
    lower_thread_priority(QUERY_NICE)  # threads started from here (index upkeep) inherit it
    single_threaded_blas()
    parent = os.getppid()
    threading.Thread(
        target=_exit_with, args=(parent,), name="lifeveil-knn-parent", daemon=True
    ).start()
    ann = AnnSearch(_Reader(path, z_dim), Path(folder), z_dim, min_records)
    while (request := requests.get()) is not None:
        kind, *args = request
        if kind == "stored":
            ann.on_stored(*args)
            continue
        rid, *params = args
        try:
            if kind == "knn":
                result: Any = ann.knn(*params)
            else:  # "prepare": build the scope's index and wait for the worker to be idle
                scope, timeout_s = params
                result = ann.wait_ready(scope, timeout_s)
                ann.wait_idle()
        except Exception as exc:  # reported to the caller, who falls back to the exact scan
            result = exc
        replies.put((rid, result))
    ann.close()
    replies.put(None)


def _exit_with(parent: int, poll_s: float = 1.0) -> None:
    """End the child once its parent is gone (a SIGKILLed server leaves no orphan; the
    index on disk is caught up from the database at the next start)."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    os._exit(0)


class KnnProcess:
    """The store's side of the k-NN worker process (see the module doc).

    The child starts at the first k-NN (or :meth:`wait_ready`): a server that only ingests
    never spawns it, and records stored before it starts are read from the database when
    the child builds an index, as :class:`AnnSearch` does for a tenant's first query.
    """

    def __init__(self, path: Path, folder: Path, z_dim: int, min_records: int) -> None:
        self.enabled = min_records > 0 and ann_available() and str(path) != ":memory:"
        self._args = (str(path), str(folder), z_dim, min_records)
        self._pending: dict[int, Future] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._alive = self.enabled
        self._child: Any = None
        self._send_lock = threading.Lock()
        self._unsent: dict[Scope, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self._unsent_rows = 0

    def _start(self) -> bool:
        """Spawn the child if it is not running yet; False once it has died."""
        with self._lock:
            if self._child is None and self._alive:
                ctx = multiprocessing.get_context("spawn")  # never fork a threaded server
                self._requests, self._replies = ctx.Queue(), ctx.Queue()
                self._child = ctx.Process(
                    target=_serve,
                    args=(*self._args, self._requests, self._replies),
                    name="lifeveil-knn",
                    daemon=True,
                )
                self._child.start()
                self._reader = threading.Thread(
                    target=self._read, name="lifeveil-knn-replies", daemon=True
                )
                self._reader.start()
        return self._alive

    def on_stored(self, scope: Scope, keys: np.ndarray, z: np.ndarray) -> None:
        """Records just committed: sent before any later query, in batches of up to
        :data:`SEND_ROWS` (one message per small commit would cost the server more than the
        queries do); dropped before the child starts, which reads them from the database."""
        if not (self._alive and self._child is not None and len(keys)):
            return
        with self._send_lock:
            keys_list, z_list = self._unsent.setdefault(scope, ([], []))
            keys_list.append(keys)
            z_list.append(z)
            self._unsent_rows += len(keys)
            if self._unsent_rows >= SEND_ROWS:
                self._flush()

    def _flush(self) -> None:
        """Send the records not sent yet (call with ``_send_lock`` held)."""
        for scope, (keys_list, z_list) in self._unsent.items():
            self._requests.put(("stored", scope, np.concatenate(keys_list), np.concatenate(z_list)))
        self._unsent.clear()
        self._unsent_rows = 0

    def knn(
        self, scope: Scope, query: np.ndarray, k: int, device_id: int | None = None
    ) -> list[NeighborHit] | None:
        """The ``k`` nearest records, or None where the exact scan should answer instead."""
        if k <= 0 or not self._start():
            return None
        result = self._ask("knn", scope, np.asarray(query, np.float32), k, device_id)
        return None if isinstance(result, Exception) else result

    def wait_ready(self, scope: Scope, timeout_s: float = 600.0) -> bool:
        """Build this scope's index in the child (if needed) and wait for it."""
        if not self._start():
            return False
        result = self._ask("prepare", scope, timeout_s, timeout_s=timeout_s + 5)
        return result is True

    def wait_idle(self) -> None:
        """Nothing to wait for here: :meth:`wait_ready` waits for the child to be idle."""

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop the child (it saves every changed index first)."""
        if self._child is None or not self._child.is_alive():
            return
        with self._send_lock:
            self._flush()
            self._requests.put(None)
        self._reader.join(timeout_s)
        self._child.join(timeout_s)
        self._alive = False

    def _ask(self, kind: str, *params: Any, timeout_s: float = QUERY_TIMEOUT_S) -> Any:
        future: Future = Future()
        with self._lock:
            rid = next(self._ids)
            self._pending[rid] = future
        with self._send_lock:  # every record acked before this request goes first
            self._flush()
            self._requests.put((kind, rid, *params))
        deadline = time.monotonic() + timeout_s
        while True:  # wait in short steps, so a dead child is noticed within one
            try:
                return future.result(min(CHILD_CHECK_S, max(0.0, deadline - time.monotonic())))
            except TimeoutError as exc:
                if not self._child.is_alive():
                    self._died()
                if not self._alive or time.monotonic() >= deadline:
                    self._pending.pop(rid, None)
                    return exc

    def _read(self) -> None:
        while True:
            try:
                reply = self._replies.get()
            except (EOFError, OSError):
                reply = None
            if reply is None:
                break
            rid, result = reply
            future = self._pending.pop(rid, None)
            if future is not None:
                future.set_result(result)
        for future in self._pending.values():
            future.set_result(None)

    def _died(self) -> None:
        if self._alive:
            self._alive = False
            log.error("the k-NN worker process died; k-NN uses the exact scan until restart")
