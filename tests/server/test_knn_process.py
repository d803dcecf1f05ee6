"""The SQLite store's k-NN in a worker process (the server's default) and the thread
priorities that serve ingest first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lifeveil.server.config import ServerConfig
from lifeveil.server.priority import (
    BACKGROUND_NICE,
    POSTGRES_QUERY_NICE,
    QUERY_NICE,
    lower_session_group,
    lower_thread_priority,
)
from lifeveil.server.sqlite_store import SQLiteStore
from lifeveil.server.store import ZStore

from .server_helpers import ANN_DIM, ann_device, ann_records, hit_keys

pytest.importorskip("usearch")
D = ANN_DIM


def _open(path: Path) -> SQLiteStore:
    return SQLiteStore(path, z_dim=D, synchronous="NORMAL", ann_min_records=1, knn_process=True)


def test_server_config_uses_the_worker_process_by_default(tmp_path: Path):
    store = SQLiteStore.from_config(ServerConfig(data_dir=tmp_path, z_dim=D))
    try:
        assert type(store._ann).__name__ == "KnnProcess"
    finally:
        store.close()
    off = SQLiteStore.from_config(ServerConfig(data_dir=tmp_path, z_dim=D, knn_process=False))
    try:
        assert type(off._ann).__name__ == "AnnSearch"
    finally:
        off.close()


def test_worker_answers_like_the_exact_scan_and_sees_new_records_at_once(tmp_path: Path):
    store = _open(tmp_path / "z.db")
    try:
        a, b = ann_device(store, "a"), ann_device(store, "b")
        store.put_records(a, ann_records(0, 1500))
        store.put_records(b, ann_records(0, 300, seed=7))
        assert store._ann._child is None  # ingest alone never starts the worker
        store.prepare_knn(a.tenant_id)
        queries = np.stack([r.z for r in ann_records(0, 20, seed=99)])
        for q in queries:
            got = store.knn(a.tenant_id, q, 10)
            want = ZStore.knn(store, a.tenant_id, q, 10)
            assert len(set(hit_keys(got)) & set(hit_keys(want))) >= 9
            assert all(h.device == "cam" and h.seq < 1500 for h in got)  # tenant a's only
        new = ann_records(1500, 50, seed=5)
        store.put_records(a, new)  # after the worker started: sent to it in commit order
        for r in new[:10]:
            assert hit_keys(store.knn(a.tenant_id, r.z, 1)) == [("cam", r.seq)]
    finally:
        store.close()
    assert any(Path(f"{tmp_path / 'z.db'}.ann").glob("*.usearch"))  # the worker saved it


def test_a_dead_worker_falls_back_to_the_exact_scan(tmp_path: Path, caplog):
    store = _open(tmp_path / "z.db")
    try:
        a = ann_device(store, "a")
        store.put_records(a, ann_records(0, 500))
        store.prepare_knn(a.tenant_id)
        store._ann._child.kill()
        store._ann._child.join(10)
        q = ann_records(0, 1, seed=3)[0].z
        t0 = time.monotonic()
        got = store.knn(a.tenant_id, q, 5)
        assert time.monotonic() - t0 < 5  # noticed within a check, not the 30 s timeout
        assert hit_keys(got) == hit_keys(ZStore.knn(store, a.tenant_id, q, 5))
        assert "k-NN worker process died" in caplog.text
        store.put_records(a, ann_records(500, 10))  # ingest goes on
        assert store.count_records(a.tenant_id) == 510
    finally:
        store.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_lowering_a_threads_priority_leaves_the_others_alone():
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, int] = {}

    def lowered(steps: int, name: str) -> None:
        lower_thread_priority(steps)
        seen[name] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    for steps, name in ((QUERY_NICE, "query"), (BACKGROUND_NICE, "background")):
        t = threading.Thread(target=lowered, args=(steps, name))
        t.start()
        t.join()
    assert seen["query"] == min(19, base + QUERY_NICE)
    assert seen["background"] == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    assert lower_thread_priority(0) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-process nice is Linux's")
def test_postgres_indexer_and_knn_backends_run_at_lower_priority(embedded_postgres):
    from lifeveil.server.pg_store import PostgresStore

    store = PostgresStore(embedded_postgres.new_database(), z_dim=D)
    try:
        pids = store._index_pool.run(lambda c: int(c.info.backend_pid), transaction=False)
        other = store._pool.run(lambda c: int(c.info.backend_pid), transaction=False)
        knn = store._knn_pool.run(lambda c: int(c.info.backend_pid), transaction=False)
        base = os.getpriority(os.PRIO_PROCESS, other)  # ingest's: untouched
        assert os.getpriority(os.PRIO_PROCESS, pids) == 19
        assert base < 19
        assert os.getpriority(os.PRIO_PROCESS, knn) == min(19, base + POSTGRES_QUERY_NICE)
        workers = store._knn_pool.run(
            lambda c: c.execute("SHOW max_parallel_workers_per_gather").fetchone()[0],
            transaction=False,
        )
        assert workers == "0"  # no parallel workers at ingest's priority
        if _autogroups():  # each backend is a session: its group's nice is what counts
            assert _group_nice(pids) == 19
            assert _group_nice(knn) == min(19, base + POSTGRES_QUERY_NICE)
            assert _group_nice(other) == 0
    finally:
        store.close()


def _autogroups() -> bool:
    path = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return path.exists() and path.read_text().strip() == "1"


def _group_nice(pid: int) -> int | None:
    """A process's autogroup nice; None in the root group (the file is empty there: processes
    of init's session, as under CI's runner)."""
    text = Path(f"/proc/{pid}/autogroup").read_text()
    return int(text.split("nice")[1]) if "nice" in text else None


@pytest.mark.skipif(not _autogroups(), reason="needs Linux autogroup scheduling")
def test_session_group_nice_changes_only_a_session_leader():
    sleep = [sys.executable, "-c", "import time; time.sleep(30)"]
    leader = subprocess.Popen(sleep, start_new_session=True)
    member = subprocess.Popen(sleep)  # in our session: lowering its group would lower us
    try:
        assert lower_session_group(leader.pid, 7) is True
        assert _group_nice(leader.pid) == 7
        ours = _group_nice(os.getpid())
        assert lower_session_group(member.pid, 7) is False
        assert _group_nice(os.getpid()) == ours
    finally:
        for proc in (leader, member):
            proc.kill()
            proc.wait()


_OWNER = """
import sys, numpy as np
from lifeveil.server.sqlite_store import SQLiteStore
from lifeveil.transport.record import ZRecord
store = SQLiteStore(sys.argv[1], z_dim=4, ann_min_records=1, knn_process=True)
t = store.create_tenant("t")
d = store.add_principal("device", "cam", "h", t.id)
store.put_records(d, [ZRecord(i, i, np.full(4, i + 1.0, np.float32)) for i in range(50)])
store.prepare_knn(t.id)
print(store._ann._child.pid, flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_worker_ends_when_its_server_is_killed(tmp_path: Path):
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path / "z.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        child = int(owner.stdout.readline())
        os.kill(child, 0)  # running
        owner.kill()
        owner.wait(10)
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(child)
    finally:
        owner.kill()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended (its reaper is gone with the server)
