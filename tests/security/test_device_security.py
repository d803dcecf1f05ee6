"""Issue 9 attack suite, device side: the device never loses its sequence space, never drops
a record the server refused, and keeps its token and z readable by its owner only.

Each test drives ``lifeveil device`` as a user would (enroll, run, status) against a real TLS
server subprocess. Run with ``pytest -m security``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lifeveil.cli.main import main
from lifeveil.device.outbox import Outbox
from lifeveil.transport.frame import AckStatus
from tests.device.conftest import (  # noqa: F401  (fixtures used by name below)
    PASSPHRASE,
    server,
    server_records,
    tiny_checkpoint,
    vault,
)

pytestmark = [pytest.mark.security, pytest.mark.slow]

N_CLIP = 40  # z per pass over the 4 s clip at 10 fps


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: any file the device makes without an explicit mode would be world-writable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def assert_private(state: Path) -> None:
    """The state folder is 0700 and everything in it 0600 (folders 0700)."""
    assert state.stat().st_mode & 0o777 == 0o700, oct(state.stat().st_mode)
    for path in state.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == want, f"{path.name}: {oct(path.stat().st_mode)}"


def enroll(server, state: Path, tmp_path: Path) -> None:  # noqa: F811
    token_file = tmp_path / "user.token"
    token_file.write_text(server.add_tenant("home") + "\n")
    token_file.chmod(0o600)
    args = ["device", "enroll", "--server", server.base_url, "--name", "porch"]
    args += ["--user-token-file", str(token_file), "--cafile", server.cafile, "--state", str(state)]
    assert main(args) == 0


def run_agent(state: Path, vault_root: Path, checkpoint: Path, clip: Path) -> int:
    args = ["device", "run", "--source", str(clip), "--vault", str(vault_root)]
    args += ["--state", str(state), "--model", str(checkpoint), "--fps", "10", "--rate-hz", "20"]
    args += ["--until-drained", "--drain-timeout", "60", "--keep-acked", "--threads", "1"]
    return main(args)


def remove_outbox(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (state / f"outbox.sqlite{suffix}").unlink(missing_ok=True)


def kept_history(state: Path) -> dict[int, tuple[int, int | None]]:
    """seq -> (timestamp_us, status) of every record in the outbox (run with --keep-acked)."""
    with Outbox(state / "outbox.sqlite", 16, keep_acked=True) as box:
        return {r.seq: (r.timestamp_us, s) for r, s in box.history()}


@pytest.fixture
def device_env(tmp_path: Path, server, vault, monkeypatch, open_umask):  # noqa: F811
    """A started server, a pre-existing 0755 state folder, and the vault passphrase in env."""
    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", PASSPHRASE)
    server.start()
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    return state


def test_deleted_outbox_keeps_sequence_space_and_every_new_record_is_stored(
    tmp_path: Path,
    server,  # noqa: F811
    vault,  # noqa: F811
    tiny_checkpoint: Path,  # noqa: F811
    talking_face_clip: Path,
    device_env: Path,
    caplog,
):
    state = device_env
    enroll(server, state, tmp_path)
    assert_private(state)  # the 0755 folder was tightened, device.json (the token) is 0600

    assert run_agent(state, vault.root, tiny_checkpoint, talking_face_clip) == 0
    assert_private(state)
    first, _, _ = server_records(server)
    assert first == list(range(N_CLIP))

    remove_outbox(state)  # lost, corrupted or wiped by hand; device.json stays
    with caplog.at_level(logging.WARNING, logger="lifeveil.device"):
        assert run_agent(state, vault.root, tiny_checkpoint, talking_face_clip) == 0
    assert_private(state)

    # The clip is privatized again (the outbox held its resume point) under fresh seqs,
    # every one of which the server stored: before the fix it answered CONFLICT 40 times and
    # the device dropped all 40, exiting 0.
    seqs, timestamps, _ = server_records(server)
    new = kept_history(state)
    assert len(new) == N_CLIP and min(new) > max(first)
    assert seqs == first + sorted(new)
    by_seq = dict(zip(seqs, timestamps, strict=True))
    acked = (AckStatus.STORED, AckStatus.DUPLICATE)
    assert all(status in acked for _, status in new.values())
    assert all(by_seq[seq] == ts for seq, (ts, _) in new.items())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_reused_sequence_space_is_a_loud_error_and_nothing_is_dropped(
    tmp_path: Path,
    server,  # noqa: F811
    vault,  # noqa: F811
    tiny_checkpoint: Path,  # noqa: F811
    talking_face_clip: Path,
    device_env: Path,
    caplog,
    capsys,
):
    state = device_env
    enroll(server, state, tmp_path)
    shutil.copy(state / "device.json", tmp_path / "device.json.bak")  # an old backup
    assert run_agent(state, vault.root, tiny_checkpoint, talking_face_clip) == 0
    capsys.readouterr()

    # Restore the old backup (its mark predates every seq used) and lose the outbox: the
    # device now hands out seqs the server already holds with other content.
    remove_outbox(state)
    shutil.copy(tmp_path / "device.json.bak", state / "device.json")
    with caplog.at_level(logging.ERROR, logger="lifeveil.device"):
        code = run_agent(state, vault.root, tiny_checkpoint, talking_face_clip)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code != 0
    assert "sequence conflicts" in err and "requeue-conflicts" in err
    errors = [r.getMessage() for r in caplog.records if r.name == "lifeveil.device.outbox"]
    assert len(errors) == N_CLIP and "seq 0," in errors[0] and "NOT stored" in errors[0]
    assert_private(state)

    # Nothing was dropped: the refused z wait in the outbox, and status says so.
    assert main(["device", "status", "--state", str(state), "--json"]) == 1
    capsys.readouterr()
    refused = kept_history(state)
    assert len(refused) == N_CLIP and {s for _, s in refused.values()} == {AckStatus.CONFLICT}

    assert main(["device", "requeue-conflicts", "--state", str(state)]) == 0
    assert run_agent(state, vault.root, tiny_checkpoint, talking_face_clip) == 0
    assert main(["device", "status", "--state", str(state)]) == 0
    assert_private(state)
    seqs, timestamps, _ = server_records(server)
    assert len(seqs) == 2 * N_CLIP
    stored = dict(zip(seqs, timestamps, strict=True))
    resent = kept_history(state)
    assert sorted(ts for ts, _ in resent.values()) == sorted(ts for ts, _ in refused.values())
    assert all(stored.get(seq) == ts for seq, (ts, _) in resent.items())
    assert np.all(np.array(sorted(resent)) > max(refused))
