"""``lifeveil device reencode`` end to end on a tiny vault made from one real clip, with the
shipped default privatizer: counts (outbox rows == ledger entries == frames re-encoded), the
space tag, a rerun that adds nothing, the daily budget, a crash mid-run, and bad input."""

from __future__ import annotations

import math
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from lifeveil.cli.main import main
from lifeveil.device.agent import DeviceAgent
from lifeveil.device.config import DeviceConfig
from lifeveil.device.identity import enroll
from lifeveil.device.ledger import LEDGER_FILE, Ledger
from lifeveil.device.outbox import Outbox
from lifeveil.device.reencode import (
    Reencoder,
    Window,
    clips_in_window,
    parse_window,
    reencode_key,
)
from lifeveil.device.source import Sampler, decode_frames
from lifeveil.device.status import OUTBOX_FILE
from lifeveil.errors import InputError
from lifeveil.privatizer.loader import open_privatizer
from lifeveil.server.local import LocalServer
from lifeveil.transport.client import QueryClient
from lifeveil.transport.record import space_tag
from lifeveil.vault import Vault

from .conftest import FAST_KDF, PASSPHRASE
from .test_agent import uplink_for
from .test_ledger import DAY, NOON, Clock

CLIP = Path("/work/shared/data/action-clips/ucf101/v_ApplyEyeMakeup_g01_c01.avi")
FPS = 2.0
pytestmark = pytest.mark.skipif(not CLIP.is_file(), reason=f"{CLIP} not here")


def sampled_frames(clip: Path, fps: float) -> int:
    """How many frames the agent's sampler keeps from ``clip`` at ``fps``."""
    sampler = Sampler(fps)
    with av.open(str(clip)) as container:
        return sum(sampler.keep(f.t) for f in decode_frames(container))


@pytest.fixture(scope="module")
def expected() -> int:
    return sampled_frames(CLIP, FPS)


@pytest.fixture
def tiny_vault(tmp_path: Path) -> tuple[Path, Path]:
    """A vault holding the one clip (captured now), and its passphrase file."""
    root = tmp_path / "vault"
    with Vault.init(root, passphrase=PASSPHRASE, kdf=FAST_KDF) as vault:
        vault.ingest(CLIP)
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    return root, secret


def state_counts(state: Path, z_dim: int) -> tuple[list, list]:
    """(outbox history, ledger entries) of a device state folder."""
    with Outbox(state / OUTBOX_FILE, z_dim, keep_acked=True) as box:
        history = box.history()
    with Ledger(state / LEDGER_FILE) as ledger:
        entries = ledger.entries()
    return history, entries


def test_cli_reencodes_the_window_once_with_counts_that_agree(
    tmp_path: Path, tiny_vault, expected: int, capsys, monkeypatch
):
    def no_network(*_args: object) -> None:
        raise AssertionError("device reencode opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # only z, only via the outbox
    vault, secret = tiny_vault
    state = tmp_path / "state"
    since = datetime.fromtimestamp(time.time() - 3600, UTC).isoformat(timespec="seconds")
    argv = ["device", "reencode", "--since", since, "--vault", str(vault)]
    argv += ["--passphrase-file", str(secret), "--state", str(state), "--fps", str(FPS)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[1/1] clip " in out and f"{expected} z queued" in out
    privatizer = open_privatizer(None, "onnx")  # the shipped default, as the command used
    history, entries = state_counts(state, privatizer.z_dim)
    assert 10 <= expected == len(history) == len(entries)  # outbox rows == ledger entries
    assert {r.space for r, _ in history} == {space_tag(privatizer.version)}
    assert [r.seq for r, _ in history] == list(range(expected))  # fresh seqs
    assert [e[1] for e in entries] == [r.timestamp_us for r, _ in history]
    assert {e[3] for e in entries} == {privatizer.version}
    with Vault.open(vault, passphrase=PASSPHRASE) as opened:
        [clip] = opened.list()
    assert {e[0] for e in entries} == {reencode_key(privatizer.version, clip.segment_id)}
    assert len({e[4] for e in entries}) == 1 and entries[0][4] > 0  # fsq: exact, fixed bits
    # a rerun adds nothing
    assert main(argv) == 0
    assert "done in an earlier run" in capsys.readouterr().out
    assert tuple(map(len, state_counts(state, privatizer.z_dim))) == (expected, expected)


def test_cli_refuses_an_empty_window_and_a_missing_or_wrong_secret(
    tmp_path: Path, tiny_vault, capsys, monkeypatch
):
    vault, secret = tiny_vault
    state = tmp_path / "state"
    base = ["device", "reencode", "--vault", str(vault), "--state", str(state)]
    window = ["--since", "2001-01-01", "--until", "2001-01-31"]
    assert main([*base, *window, "--passphrase-file", str(secret)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no vault clip was captured" in err
    assert "it holds 1 clip(s)" in err
    monkeypatch.delenv("LIFEVEIL_VAULT_PASSPHRASE", raising=False)
    assert main([*base, "--since", "2001-01-01"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the vault needs its secret" in err
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not it\n")
    assert main([*base, "--since", "2001-01-01", "--passphrase-file", str(wrong)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wrong passphrase" in err
    assert main([*base, "--since", "yesterday", "--passphrase-file", str(secret)]) == 2
    assert "is not a date" in capsys.readouterr().err
    assert not (state / OUTBOX_FILE).exists()  # nothing was started


def test_cli_keeps_the_budget_the_agent_last_enforced(tmp_path: Path, tiny_vault, capsys):
    vault, secret = tiny_vault
    state = tmp_path / "state"
    fsq_bits = 64 * math.log2(5)  # the shipped default: 64 coordinates of 5 levels
    with Ledger(state / LEDGER_FILE) as ledger:  # `device run --daily-budget-bits` left this
        ledger.set_budget(2.5 * fsq_bits)
    argv = ["device", "reencode", "--since", "2001-01-01", "--vault", str(vault)]
    argv += ["--passphrase-file", str(secret), "--state", str(state)]
    assert main(argv) == 1  # stopped by the budget before the end
    out = capsys.readouterr().out
    assert "as `device run` last enforced" in out and "daily privacy budget reached" in out
    history, entries = state_counts(state, 64)
    assert len(history) == len(entries) == 2


def agent_on(state: Path, clock: Clock, budget: float | None = None) -> DeviceAgent:
    privatizer = open_privatizer(None, "onnx")
    outbox = Outbox(state / OUTBOX_FILE, privatizer.z_dim)
    ledger = Ledger(state / LEDGER_FILE, clock=clock)
    config = DeviceConfig(fps=FPS, daily_budget_bits=budget)
    return DeviceAgent(config, privatizer=privatizer, outbox=outbox, ledger=ledger)


def close(agent: DeviceAgent) -> None:
    agent.ledger.close()
    agent.outbox.close()


def test_the_daily_budget_stops_it_and_the_next_day_continues(
    tmp_path: Path, tiny_vault, expected: int
):
    root, _ = tiny_vault
    state, clock = tmp_path / "state", Clock()
    with Vault.open(root, passphrase=PASSPHRASE) as vault:
        clips = clips_in_window(vault, Window(0.0, math.inf))
        agent = agent_on(state, clock)
        bits = agent.encode([open_first_frame()])[1]
        close(agent)
        agent = agent_on(state, clock, budget=3.5 * bits)
        lines: list[str] = []
        report = Reencoder(agent, vault, lines.append).run(clips)
        assert report.z_queued == 3 and report.budget_stop is not None
        assert "run the same command after 00:00 UTC" in report.budget_stop
        assert agent.ledger.spent_today() == pytest.approx(3 * bits)
        clock.now += DAY
        report = Reencoder(agent, vault, lines.append).run(clips)
        assert report.z_queued == 3 and report.budget_stop  # three more the next day
        agent.config = DeviceConfig(fps=FPS)  # the owner lifts the cap
        report = Reencoder(agent, vault, lines.append).run(clips)
        assert report.z_queued == expected - 6 and report.budget_stop is None
        history = agent.outbox.history()
        assert len(history) == len(agent.ledger.entries()) == expected
        assert len({r.timestamp_us for r, _ in history}) == expected  # none twice
        close(agent)


def test_a_run_killed_mid_clip_resumes_without_charging_or_queueing_twice(
    tmp_path: Path, tiny_vault, expected: int, monkeypatch
):
    root, _ = tiny_vault
    state = tmp_path / "state"
    with Vault.open(root, passphrase=PASSPHRASE) as vault:
        clips = clips_in_window(vault, Window(0.0, math.inf))
        agent = agent_on(state, Clock(NOON))
        encode, calls = agent.encode, []

        def interrupted(frames):  # noqa: ANN001, ANN202
            calls.append(1)
            if len(calls) == 5:
                raise KeyboardInterrupt
            return encode(frames)

        monkeypatch.setattr(agent, "encode", interrupted)
        with pytest.raises(KeyboardInterrupt):
            Reencoder(agent, vault).run(clips)
        assert len(agent.outbox.history()) == len(agent.ledger.entries()) == 4
        close(agent)
        agent = agent_on(state, Clock(NOON))  # a new process
        report = Reencoder(agent, vault).run(clips)
        assert report.z_queued == expected - 4
        history = agent.outbox.history()
        assert len(history) == len(agent.ledger.entries()) == expected
        assert len({r.timestamp_us for r, _ in history}) == expected
        close(agent)


def open_first_frame():  # noqa: ANN201  (an RGB frame)
    with av.open(str(CLIP)) as container:
        return next(decode_frames(container)).rgb()


def test_parse_window_days_times_and_order():
    day = parse_window("2026-12-01", "2026-12-01", 0.0)
    assert day.until - day.since == DAY
    t = parse_window("2026-12-01T08:30+01:00", None, 2e9)
    assert t.since == datetime(2026, 12, 1, 7, 30, tzinfo=UTC).timestamp() and t.until == 2e9
    with pytest.raises(InputError, match="is not after"):
        parse_window("2026-12-02", "2026-12-01T00:00", 0.0)


def test_reencoded_z_reach_the_server_in_the_new_space(tmp_path: Path, tiny_vault, expected: int):
    vault, secret = tiny_vault
    state = tmp_path / "state"
    argv = ["device", "reencode", "--since", "2001-01-01", "--vault", str(vault)]
    assert main([*argv, "--passphrase-file", str(secret), "--state", str(state)]) == 0
    server = LocalServer(tmp_path / "srv", z_dim=64)  # the shipped privatizer's d
    try:
        user_token = server.add_tenant("home")
        server.start()
        identity = enroll(server.base_url, user_token, "cam", cafile=server.cafile)
        privatizer = open_privatizer(None, "onnx")
        outbox = Outbox(state / OUTBOX_FILE, privatizer.z_dim)
        agent = DeviceAgent(
            DeviceConfig(fps=FPS), privatizer=privatizer, outbox=outbox, uplink=uplink_for(identity)
        )
        agent.run([], drain_timeout_s=60)  # what `device run` does first: send the queue
        assert outbox.pending() == 0 and agent.uplink.stats.stored == expected
        assert agent.uplink.stats.unknown_space == 0  # registered before the first frame
        with QueryClient(server.base_url, user_token, cafile=server.cafile) as client:
            [space] = client.spaces()
        assert space["version"] == privatizer.version and space["n_records"] == expected
        close(agent)
    finally:
        server.stop()
