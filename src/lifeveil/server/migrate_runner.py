"""Migrations in the background of a running server: one worker thread, off the event loop.

``POST /v1/spaces/migrations`` submits a recorded migration; the worker applies the adapter
batch by batch (:func:`~lifeveil.server.migrate.run_migration`). When the server starts it
resumes every migration left unfinished (a crash, a restart); when it stops, the worker stops
after the batch in hand, and the cursor says where the next start goes on.
"""

from __future__ import annotations

import logging
import queue
import threading

from lifeveil.server.migrate import read_adapter, run_migration, unfinished
from lifeveil.server.store import ZStore
from lifeveil.server.store_spaces import MIGRATION_BATCH, MigrationInfo

log = logging.getLogger(__name__)


class _Stopped(BaseException):
    """Raised inside a migration when the server stops (not a failure: it resumes later)."""


class MigrationRunner:
    """Runs submitted migrations one at a time in a daemon thread."""

    def __init__(self, store: ZStore, batch: int = MIGRATION_BATCH) -> None:
        self.store, self.batch = store, batch
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, migration: MigrationInfo) -> None:
        """Queue a migration (by id) unless it is queued already or finished."""
        if migration.status == "done":
            return
        with self._lock:
            if migration.id in self._pending or self._stop.is_set():
                return
            self._pending.add(migration.id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="lifeveil-migrate", daemon=True
                )
                self._thread.start()
        self._queue.put(migration.id)

    def resume(self) -> int:
        """Queue every unfinished migration of the store; returns how many (0, logged, when
        the store cannot be read now: they resume at the next start)."""
        try:
            found = unfinished(self.store)
        except Exception:
            log.exception("could not look for unfinished migrations")
            return 0
        for migration in found:
            self.submit(migration)
        return len(found)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Wait until nothing is queued or running (tests); True if so in time."""
        done = threading.Event()

        def check() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=check, daemon=True).start()
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop after the batch in hand; unfinished migrations resume at the next start."""
        self._stop.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout_s)

    def _work(self) -> None:
        while True:
            migration_id = self._queue.get()
            try:
                if migration_id is None or self._stop.is_set():
                    return
                self._run(migration_id)
            except _Stopped:
                return
            except Exception:  # recorded as failed by run_migration; the server goes on
                log.exception("migration %s failed", migration_id)
            finally:
                with self._lock:
                    self._pending.discard(migration_id or -1)
                self._queue.task_done()

    def _run(self, migration_id: int) -> None:
        [migration] = [m for m in self.store.list_migrations() if m.id == migration_id]
        adapter = read_adapter(self.store.migration_adapter(migration_id))

        def progress(m: MigrationInfo, done: int, total: int) -> None:
            log.info("migration %d: %d of %d z", m.id, done, total)
            if self._stop.is_set():
                raise _Stopped

        run_migration(self.store, migration, adapter, batch=self.batch, progress=progress)
