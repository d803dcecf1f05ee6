"""Crash safety for real: SIGKILL an ingesting process and check the vault afterwards."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lifeveil.vault import SegmentMetadata, Vault, generate_key_file

CHILD_ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the child process")
        time.sleep(0.01)


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()  # it was alive until killed


def _assert_consistent(root: Path, key_file: Path, committed: list[str]) -> Vault:
    vault = Vault.open(root, key_file=key_file)
    listed = [s.segment_id for s in vault.list()]
    assert set(committed) <= set(listed)  # what was reported committed survived the kill
    assert not list((root / "tmp").iterdir())
    assert sorted(p.stem for p in (root / "segments").iterdir()) == sorted(listed)
    report = vault.verify()
    assert report.ok, report.problems
    assert report.checked == len(listed)
    assert vault.index_check.ok, vault.index_check.problems  # a kill is never a rollback
    return vault


@pytest.fixture
def keyed_vault(tmp_path: Path) -> tuple[Path, Path]:
    key_file = generate_key_file(tmp_path / "vault.bin")
    Vault.init(tmp_path / "vault", key_file=key_file).close()
    return tmp_path / "vault", key_file


@pytest.mark.slow
def test_sigkill_during_cli_ingest(keyed_vault: tuple[Path, Path], bikes: Path) -> None:
    """`lifeveil vault ingest -` is killed while encrypting a large stream from stdin."""
    root, key_file = keyed_vault
    with Vault.open(root, key_file=key_file) as vault:
        before = vault.ingest(bikes).segment_id
    cmd = [
        sys.executable,
        "-m",
        "lifeveil.cli.main",
        "vault",
        "ingest",
        "-",
        "--vault",
        str(root),
        "--key-file",
        str(key_file),
        "--chunk-size",
        "65536",
    ]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CHILD_ENV
    )
    try:
        block = os.urandom(1 << 20)
        for _ in range(8):  # 8 MiB written, stdin left open: the ingest is mid-stream
            proc.stdin.write(block)
        proc.stdin.flush()
        parts = lambda: list((root / "tmp").glob("*.lvs.part"))  # noqa: E731
        _wait_for(lambda: any(p.stat().st_size > (4 << 20) for p in parts()))
    finally:
        _kill(proc)
    assert len(parts()) == 1  # the half-written segment is there before recovery

    vault = _assert_consistent(root, key_file, [before])
    with vault:
        assert [s.segment_id for s in vault.list()] == [before]
        assert any("interrupted ingest" in note for note in vault.recovered)
        again = vault.ingest_stream([block] * 2, SegmentMetadata(source_name="retry"))
        assert b"".join(vault.open_segment(again.segment_id)) == block * 2
        assert vault.verify().ok


CHILD = textwrap.dedent(
    """
    import os, sys
    from lifeveil.vault import SegmentMetadata, Vault
    vault = Vault.open(sys.argv[1], key_file=sys.argv[2], chunk_size=8192)
    for i in range(100000):
        data = [os.urandom(20000) for _ in range(4)]
        info = vault.ingest_stream(data, SegmentMetadata(source_name=f"s{i}"))
        print(info.segment_id, flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_points_of_repeated_ingests(
    keyed_vault: tuple[Path, Path], seed: int
) -> None:
    """Killed anywhere (writing, fsync, rename, index commit), the vault stays consistent."""
    root, key_file = keyed_vault
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(key_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=CHILD_ENV,
        text=True,
    )
    committed = []
    try:
        for _ in range(3):
            committed.append(proc.stdout.readline().strip())
        time.sleep(random.Random(seed).uniform(0.0, 0.05))
    finally:
        _kill(proc)
    assert all(len(c) == 32 for c in committed), proc.stderr.read()
    with _assert_consistent(root, key_file, committed) as vault:
        vault.ingest_stream([b"after the crash"])
        assert vault.verify().ok


CHURN_CHILD = textwrap.dedent(
    """
    import os, sys
    from lifeveil.vault import SegmentMetadata, Vault
    vault = Vault.open(sys.argv[1], key_file=sys.argv[2], chunk_size=8192)
    for i in range(100000):
        info = vault.ingest_stream([os.urandom(30000)], SegmentMetadata(source_name=f"s{i}"))
        print(info.segment_id, flush=True)
        if i % 2:
            vault.delete(info.segment_id)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [4, 5, 6])
def test_sigkill_during_ingests_and_deletes_never_looks_like_a_rollback(
    keyed_vault: tuple[Path, Path], seed: int
) -> None:
    """Killed inside a delete or between an index commit and the index.state write: no
    false alarm, no file of a kept segment lost; only keyless files may be quarantined."""
    root, key_file = keyed_vault
    proc = subprocess.Popen(
        [sys.executable, "-c", CHURN_CHILD, str(root), str(key_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=CHILD_ENV,
        text=True,
    )
    try:
        for _ in range(4):
            proc.stdout.readline()
        time.sleep(random.Random(seed).uniform(0.0, 0.05))
    finally:
        _kill(proc)
    with _assert_consistent(root, key_file, []) as vault:
        assert vault.adopt().adopted == ()  # anything quarantined has no key anywhere
        vault.purge()
        assert vault.warnings() == [] and vault.verify().ok
