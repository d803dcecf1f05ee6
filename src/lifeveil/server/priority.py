"""Ingest first: the OS scheduling priority of the server's query and index-upkeep threads.

When the cores are busy, acknowledging devices' z matters most (a device waits for its ack,
its outbox grows); a k-NN answer may take a little longer, and folding the index's tail into
the HNSW graph can wait for a quiet moment (the tail is searched exactly meanwhile). So the
threads that answer queries run a few nice steps below ingest, and the index upkeep at the
lowest priority: the scheduler gives them what ingest leaves.

The PostgreSQL store's HNSW upkeep runs in a server process of its own connection; where
that server runs on this machine as this user (the embedded one), that process is lowered
the same way (:func:`lower_backend_priority`), and so is its autogroup where the kernel
schedules sessions first (:func:`lower_session_group`): each PostgreSQL backend is a session
of its own, so a plain nice did nothing against ingest's backend.

Linux schedules threads individually, so ``setpriority`` on a thread's native id changes
that thread only. Elsewhere (or where the call is refused) this is a no-op: priorities are
a preference, never a requirement.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Nice steps below ingest for threads answering queries (k-NN, timelines, classify).
QUERY_NICE = 5
#: Nice steps below ingest for background index upkeep (absorbing tails into HNSW graphs).
BACKGROUND_NICE = 19
#: Nice steps below ingest for a PostgreSQL server process answering k-NN. Lower than the
#: query threads' because PostgreSQL ingest is a chain of two processes (the server's thread,
#: then its PostgreSQL process, in turn, per statement): every hand-over has to win a core
#: back from the busy neighbour. A CPU-bound neighbour at nice 5 cost that chain ~25 % of its
#: z/s, at nice 10 ~18 %, at nice 19 ~12 % (medians of six stretches each, docs/SERVER.md).
POSTGRES_QUERY_NICE = 19


def lower_thread_priority(steps: int) -> bool:
    """Run the calling thread ``steps`` nice levels below the process; True if it took.

    Lowering a priority needs no privilege; it cannot be raised back by an unprivileged
    process, so call it only on threads that do nothing but the lower-priority work.
    """
    if steps <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + steps)
        os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError as exc:  # a sandbox may refuse it; the work still runs, just not deferred
        log.debug("could not lower thread %s's priority: %s", tid, exc)
        return False
    return True


def query_thread_initializer() -> None:
    """``ThreadPoolExecutor`` initializer for query threads: :data:`QUERY_NICE` steps down."""
    lower_thread_priority(QUERY_NICE)


def single_threaded_blas() -> bool:
    """Keep numpy's BLAS to one thread in this process; True if it took.

    A k-NN's exact tail scan is one matrix-vector product; OpenBLAS would split it over
    every core, onto threads that run at ingest's priority and take ingest's core. One
    thread per query is as fast on a busy server and leaves the other cores to ingest.
    Process-wide (BLAS has no per-thread setting): called when a server or a store
    benchmark starts, never on import.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the server extra brings it (through scikit-learn)
        return False
    threadpool_limits(1, user_api="blas")
    return True


def lower_backend_priority(conn: Any, steps: int) -> bool:
    """Run a PostgreSQL connection's server process ``steps`` nice levels lower; True if it took.

    Only where that process is ours to change: a server on this machine (Unix socket or
    loopback address), a process named ``postgres``, run by this user (the embedded server
    is). A remote server's process id means nothing here and is never touched.
    """
    host = str(conn.info.host or "")
    local = host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")
    pid = int(conn.info.backend_pid)
    if steps <= 0 or not local or not sys.platform.startswith("linux") or pid <= 0:
        return False
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return False
        target = min(19, os.getpriority(os.PRIO_PROCESS, pid) + steps)
        os.setpriority(os.PRIO_PROCESS, pid, target)
    except OSError as exc:  # another user's server, or the process just ended
        log.debug("could not lower PostgreSQL backend %s's priority: %s", pid, exc)
        return False
    lower_session_group(pid, target)
    return True


def lower_session_group(pid: int, nice: int) -> bool:
    """Give process ``pid``'s autogroup the nice value ``nice``, if it leads a session of
    its own; True if it took.

    Linux's autogroup scheduling (``kernel.sched_autogroup_enabled``) shares the CPU fairly
    between sessions first, and applies a process's nice only among its own session. Each
    PostgreSQL backend calls ``setsid()``, so each is a session: its nice alone changes
    nothing against ingest's backend, and an indexer at nice 19 took as much CPU as ingest
    (measured). The group's nice (``/proc/PID/autogroup``) is what counts between them. Only a
    session leader's group is changed (changing a shared group would lower its other
    processes too).
    """
    try:
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
            return False
        stat = Path(f"/proc/{pid}/stat").read_text()
        session = int(stat[stat.rindex(")") + 2 :].split()[3])
        if session != pid:
            return False
        Path(f"/proc/{pid}/autogroup").write_text(f"{int(nice)}\n")
    except (OSError, ValueError, IndexError) as exc:  # no autogroup here, or not ours
        log.debug("could not lower the autogroup of process %s: %s", pid, exc)
        return False
    return True


def no_parallel_workers(conn: Any) -> None:
    """No parallel workers for a PostgreSQL connection's statements: a k-NN's exact scan of a
    large tail would otherwise run on extra server processes at ingest's priority."""
    conn.execute("SET max_parallel_workers_per_gather = 0")
