"""Kill tests: SIGKILL the server, or the agent, mid-stream; every z still arrives exactly once."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lifeveil.device.agent import DeviceAgent
from lifeveil.device.config import DeviceConfig
from lifeveil.device.identity import enroll, save_identity
from lifeveil.device.outbox import Outbox
from lifeveil.device.sequence import SEQ_BLOCK
from lifeveil.device.source import parse_source
from lifeveil.device.status import device_status
from lifeveil.ingest.video import iter_video_frames
from lifeveil.privatizer import Privatizer
from lifeveil.transport.uplink import UplinkConfig

from .conftest import PASSPHRASE, server_records

pytestmark = pytest.mark.slow

FPS, RATE_HZ = 10.0, 20.0


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def assert_exactly_once(server, history, clip: Path, restarts: int = 0) -> None:
    """The server holds every queued z once, equal to the outbox's, covering the clip.

    Seqs run 0, 1, 2, ... except that each restart of the agent continues at its sequence
    mark (one gap, smaller than a block, per restart).
    """
    records = [record for record, _ in history]
    seqs, timestamps, z = server_records(server)
    assert seqs == [r.seq for r in records] and seqs[0] == 0
    steps = np.diff(seqs)
    assert np.all(steps >= 1) and np.count_nonzero(steps != 1) <= restarts
    assert np.all(steps <= SEQ_BLOCK + 1)
    assert timestamps == [r.timestamp_us for r in records]
    np.testing.assert_allclose(z, np.stack([r.z for r in records]), rtol=1e-3, atol=1e-3)
    sampled = [f.timestamp for f in iter_video_frames(clip, fps=FPS)]
    assert len(records) == len(sampled)  # no frame lost, none privatized twice
    np.testing.assert_allclose(np.diff(timestamps) / 1e6, np.diff(sampled), atol=1e-3)


def test_server_killed_mid_stream(
    tmp_path: Path, server, vault, tiny_checkpoint: Path, talking_face_clip: Path
):
    user_token = server.add_tenant("home")
    server.start()
    identity = enroll(server.base_url, user_token, "porch", cafile=server.cafile)
    privatizer = Privatizer.load(tiny_checkpoint)
    outbox = Outbox(tmp_path / "outbox.sqlite", privatizer.z_dim, keep_acked=True)
    uplink = UplinkConfig(
        url=identity.uplink_url,
        token=identity.token,
        wire=identity.wire_spec(),
        rate_hz=RATE_HZ,
        cafile=identity.cafile,
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
    )
    config = DeviceConfig(fps=FPS, realtime=True, segment_s=2.0)
    agent = DeviceAgent(config, privatizer=privatizer, outbox=outbox, vault=vault, uplink=uplink)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            agent.run([parse_source(str(talking_face_clip))], drain_timeout_s=90)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_until(lambda: outbox.stats().stored >= 8, 30, "8 acks before the crash")
        server.kill()
        stored_before = outbox.stats().stored
        time.sleep(1.0)  # the agent keeps capturing and queueing while the server is down
        server.start()
        thread.join(120)
    finally:
        agent.stop()
    assert not thread.is_alive() and not errors, errors
    stats = outbox.stats()
    assert stored_before < stats.put, "the stream ended before the kill"
    assert agent.uplink.stats.connects >= 2 and stats.pending == 0
    assert stats.stored + stats.duplicates == stats.put and stats.conflicts == 0
    assert_exactly_once(server, outbox.history(), talking_face_clip)


def agent_command(tmp_path: Path, clip: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "lifeveil.cli.main", "device", "run",
        "--source", str(clip),
        "--vault", str(tmp_path / "vault"),
        "--passphrase-file", str(tmp_path / "passphrase"),
        "--state", str(tmp_path / "state"),
        "--model", str(checkpoint),
        "--fps", str(FPS), "--rate-hz", str(RATE_HZ), "--segment-seconds", "1",
        "--keep-acked", "--threads", "1",
        *extra,
    ]  # fmt: skip


def test_agent_killed_mid_stream_and_restarted(
    tmp_path: Path, server, vault, tiny_checkpoint: Path, talking_face_clip: Path
):
    user_token = server.add_tenant("home")
    server.start()
    state = tmp_path / "state"
    save_identity(
        enroll(server.base_url, user_token, "garage", cafile=server.cafile), state / "device.json"
    )
    (tmp_path / "passphrase").write_text(PASSPHRASE)
    vault.close()  # the agent subprocess opens it
    log = open(tmp_path / "agent1.log", "wb")  # noqa: SIM115
    first = subprocess.Popen(
        agent_command(tmp_path, talking_face_clip, tiny_checkpoint, "--realtime"),
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def progress() -> dict:
        return device_status(state)["outbox"] or {"put": 0, "stored": 0}

    try:
        wait_until(lambda: progress()["stored"] >= 5, 60, "5 acks before killing the agent")
    finally:
        first.kill()  # SIGKILL: no cleanup, like a power cut
        first.wait(10)
        log.close()
    before = progress()
    assert 0 < before["put"] < 40, f"kill landed outside the stream: {before}"

    second = subprocess.run(
        agent_command(tmp_path, talking_face_clip, tiny_checkpoint, "--until-drained"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    with Outbox(state / "outbox.sqlite", 16, keep_acked=True) as outbox:
        history = outbox.history()
        assert outbox.pending() == 0
    assert_exactly_once(server, history, talking_face_clip, restarts=1)
    status = device_status(state, tmp_path / "vault", passphrase=PASSPHRASE)
    assert status["vault"]["seconds"] == pytest.approx(4.0, abs=0.05)  # no gap, no overlap
