"""Privacy ledger: one charge per released z, the daily budget, durability after SIGKILL, CLI."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lifeveil.cli.main import main
from lifeveil.device.agent import DeviceAgent, privatizer_version
from lifeveil.device.config import DeviceConfig
from lifeveil.device.identity import enroll
from lifeveil.device.ledger import LEDGER_FILE, Bound, Ledger, read_summary, utc_day
from lifeveil.device.outbox import Outbox
from lifeveil.device.source import parse_source
from lifeveil.device.status import device_status
from lifeveil.errors import InputError
from lifeveil.privatizer import Privatizer, PrivatizerConfig, PrivatizerModel
from lifeveil.transport.record import NO_SPACE, space_tag

from .conftest import PASSPHRASE, server_records
from .test_agent import uplink_for
from .test_kill import wait_until

DAY = 86_400.0
NOON = 20_000 * DAY + DAY / 2  # 2024-10-04 12:00 UTC


class Clock:
    """A settable clock for the ledger (seconds since the Unix epoch)."""

    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fsq_privatizer() -> Privatizer:
    """An untrained fsq privatizer (d=16, 5 levels: 16 log2 5 = 37.15 bits per z), built in ms."""
    cfg = PrivatizerConfig(
        input_size=64,
        z_dim=16,
        decoder_hidden=16,
        student_init="random",
        bottleneck="fsq",
        deploy_mode="mean",
    )
    return Privatizer(PrivatizerModel(cfg))


FSQ_BITS = 16 * math.log2(5)


# -- the ledger alone ------------------------------------------------------------------------
def test_charges_add_up_per_day_version_and_lifetime(tmp_path: Path):
    clock = Clock()
    with Ledger(tmp_path / LEDGER_FILE, clock=clock) as ledger:
        ledger.register_version("v1", "fsq 16x5", Bound.FSQ_CODE)
        ledger.register_version("v2", "vib", Bound.VIB_KL)
        for t in range(3):
            assert ledger.charge(source="a", timestamp_us=t, bits=10.0, version="v1").released
        ledger.count_cover(7)
        clock.now += DAY
        verdict = ledger.charge(source="a", timestamp_us=3, bits=2.5, version="v2", cover=4)
        assert verdict.released and verdict.spent_bits == 2.5 and verdict.day == utc_day(clock.now)
        summary = ledger.summary()
    first, second = summary["days"]
    assert (first["z"], first["bits"], first["cover"]) == (3, 30.0, 7)
    assert (second["z"], second["bits"], second["cover"]) == (1, 2.5, 4)
    assert summary["lifetime"] == {
        "z": 4,
        "bits": 32.5,
        "cover": 11,
        "versions": {"v1": {"z": 3, "bits": 30.0}, "v2": {"z": 1, "bits": 2.5}},
    }
    assert summary["versions"]["v2"]["bound"] == "vib-kl"
    assert read_summary(tmp_path / LEDGER_FILE) == summary  # read-only view agrees


def test_a_z_charged_before_a_crash_is_not_charged_twice(tmp_path: Path):
    with Ledger(tmp_path / LEDGER_FILE) as ledger:
        assert not ledger.charge(source="a", timestamp_us=5, bits=3.0, version="v").repeated
        again = ledger.charge(source="a", timestamp_us=5, bits=3.0, version="v", budget_bits=1.0)
        assert again.released and again.repeated and again.spent_bits == 3.0
        assert len(ledger.entries()) == 1


def test_budget_refuses_the_z_that_would_cross_it_and_resets_at_midnight(tmp_path: Path):
    clock = Clock(NOON + DAY / 2 - 60)  # a minute to midnight
    with Ledger(tmp_path / LEDGER_FILE, clock=clock) as ledger:
        released = [
            ledger.charge(source="a", timestamp_us=t, bits=4.0, version="v", budget_bits=10.0)
            for t in range(4)
        ]
        assert [v.released for v in released] == [True, True, False, False]
        assert ledger.spent_today() == 8.0  # within one z (4 bits) of the 10-bit cap
        clock.now += 120  # past midnight UTC
        assert ledger.charge(source="a", timestamp_us=9, bits=4.0, version="v", budget_bits=10.0)
        assert ledger.spent_today() == 4.0


def test_files_are_private_and_bad_input_is_refused(tmp_path: Path):
    path = tmp_path / "state" / LEDGER_FILE
    with Ledger(path) as ledger:
        ledger.charge(source="a", timestamp_us=0, bits=1.0, version="v")
        with pytest.raises(InputError, match="bits must be >= 0"):
            ledger.charge(source="a", timestamp_us=1, bits=-1.0, version="v")
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    (tmp_path / "junk.sqlite").write_bytes(b"not sqlite at all, just some bytes" * 100)
    with pytest.raises(InputError, match="not a usable ledger"):
        Ledger(tmp_path / "junk.sqlite")
    with pytest.raises(InputError, match="daily_budget_bits"):
        DeviceConfig(daily_budget_bits=0)


def test_charges_survive_sigkill(tmp_path: Path):
    path = tmp_path / LEDGER_FILE
    script = (
        "import os, signal\n"
        "from lifeveil.device.ledger import Ledger\n"
        f"ledger = Ledger({str(path)!r})\n"
        "for i in range(50):\n"
        "    ledger.charge(source='cam', timestamp_us=i, bits=1.5, version='v')\n"
        "ledger.count_cover(3)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    with Ledger(path) as ledger:
        assert [e[1] for e in ledger.entries()] == list(range(50))
        assert ledger.summary()["lifetime"]["bits"] == 75.0
        assert ledger.summary()["lifetime"]["cover"] == 3


# -- the agent charges every released z ---------------------------------------------------------
def test_every_queued_z_has_one_ledger_entry(
    tmp_path: Path, tiny_checkpoint: Path, talking_face_clip: Path
):
    privatizer = Privatizer.load(tiny_checkpoint, seed=0)  # a VIB, released as samples
    outbox = Outbox(tmp_path / "outbox.sqlite", privatizer.z_dim, keep_acked=True)
    agent = DeviceAgent(DeviceConfig(fps=5.0), privatizer=privatizer, outbox=outbox)
    [report] = agent.run([parse_source(str(talking_face_clip))])
    records = [record for record, _ in outbox.history()]
    entries = agent.ledger.entries()
    assert agent.ledger.path == tmp_path / LEDGER_FILE  # beside the outbox
    assert len(entries) == len(records) == outbox.stats().put == report.z_queued == 20
    assert [e[1] for e in entries] == [r.timestamp_us for r in records]
    assert {e[3] for e in entries} == {privatizer_version(privatizer)}
    # each z in the outbox carries the space tag of the version its ledger entry names
    assert [r.space for r in records] == [space_tag(e[3]) for e in entries]
    assert agent.space == space_tag(agent.version) != NO_SPACE
    assert all(e[4] > 0 for e in entries)  # the KL of each z
    summary = agent.ledger.summary()
    assert summary["versions"][agent.version]["bound"] == "vib-kl"
    assert summary["lifetime"]["bits"] == pytest.approx(sum(e[4] for e in entries))
    # the same file again: nothing new is released, nothing charged
    agent.run([parse_source(str(talking_face_clip))])
    assert len(agent.ledger.entries()) == outbox.stats().put == 20
    agent.ledger.close()
    outbox.close()


def test_daily_budget_stops_release_within_one_z_of_the_cap(
    tmp_path: Path, talking_face_clip: Path, caplog
):
    privatizer = fsq_privatizer()
    outbox = Outbox(tmp_path / "outbox.sqlite", privatizer.z_dim, keep_acked=True)
    budget = 5.5 * FSQ_BITS
    agent = DeviceAgent(
        DeviceConfig(fps=5.0, daily_budget_bits=budget),
        privatizer=privatizer,
        outbox=outbox,
        ledger=Ledger(tmp_path / LEDGER_FILE, clock=Clock()),
    )
    with caplog.at_level(logging.WARNING, logger="lifeveil.device.agent"):
        [report] = agent.run([parse_source(str(talking_face_clip))])
    spent = agent.ledger.spent_today()
    assert report.z_queued == outbox.stats().put == len(agent.ledger.entries()) == 5
    assert report.z_withheld == 15
    assert budget - FSQ_BITS < spent <= budget
    assert spent == pytest.approx(5 * FSQ_BITS, rel=1e-6)  # exact bits of an fsq code
    [warning] = [r for r in caplog.records if "daily budget" in r.getMessage()]
    assert "cover frames only" in warning.getMessage()
    # withheld frames are skipped for good: a rerun (even on a fresh day) releases none of them
    agent.ledger._clock.now += DAY  # noqa: SLF001
    [again] = agent.run([parse_source(str(talking_face_clip))])
    assert again.z_queued == again.z_withheld == 0
    agent.ledger.close()
    outbox.close()


def test_a_crash_between_charge_and_queue_charges_once(
    tmp_path: Path, talking_face_clip: Path, monkeypatch
):
    privatizer = fsq_privatizer()
    outbox = Outbox(tmp_path / "outbox.sqlite", privatizer.z_dim, keep_acked=True)
    agent = DeviceAgent(DeviceConfig(fps=5.0), privatizer=privatizer, outbox=outbox)
    real_put = outbox.put_many
    calls = {"n": 0}

    def put_then_die(items, **kw):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt("power cut after the 8th charge, before its put")
        return real_put(items, **kw)

    monkeypatch.setattr(outbox, "put_many", put_then_die)
    with pytest.raises(KeyboardInterrupt):
        agent.run([parse_source(str(talking_face_clip))])
    assert len(agent.ledger.entries()) == outbox.stats().put + 1  # charged, not yet queued
    monkeypatch.setattr(outbox, "put_many", real_put)
    agent.run([parse_source(str(talking_face_clip))])  # the restart resumes the source
    records = [record for record, _ in outbox.history()]
    assert [e[1] for e in agent.ledger.entries()] == [r.timestamp_us for r in records]
    assert len(records) == 20
    agent.ledger.close()
    outbox.close()


@pytest.mark.slow
def test_agent_killed_mid_stream_loses_no_charge(
    tmp_path: Path, vault, tiny_checkpoint: Path, talking_face_clip: Path
):
    (tmp_path / "passphrase").write_text(PASSPHRASE)
    vault.close()  # the agent subprocesses open it
    state = tmp_path / "state"
    command = [
        sys.executable, "-m", "lifeveil.cli.main", "device", "run",
        "--source", str(talking_face_clip), "--vault", str(vault.root),
        "--passphrase-file", str(tmp_path / "passphrase"), "--state", str(state),
        "--model", str(tiny_checkpoint), "--fps", "10", "--offline", "--threads", "1",
    ]  # fmt: skip
    first = subprocess.Popen(
        [*command, "--realtime"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def queued() -> int:
        return (device_status(state)["outbox"] or {"put": 0})["put"]

    try:
        wait_until(lambda: queued() >= 5, 60, "5 z queued before killing the agent")
    finally:
        first.kill()  # SIGKILL: no cleanup, like a power cut
        first.wait(10)
    before = queued()
    assert 0 < before < 40, f"kill landed outside the stream: {before}"
    assert read_summary(state / LEDGER_FILE)["lifetime"]["z"] in (before, before + 1)
    second = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout + second.stderr
    with Outbox(state / "outbox.sqlite", 16) as outbox, Ledger(state / LEDGER_FILE) as ledger:
        records = [record for record, _ in outbox.history()]
        entries = ledger.entries()
    assert len(records) == 40  # 4 s at 10 fps, each z once
    assert [e[1] for e in entries] == [r.timestamp_us for r in records]


@pytest.mark.slow
def test_over_budget_the_server_gets_only_the_charged_z_and_cover_is_counted(
    tmp_path: Path, server, talking_face_clip: Path
):
    server.start()
    identity = enroll(server.base_url, server.add_tenant("home"), "den", cafile=server.cafile)
    privatizer = fsq_privatizer()
    outbox = Outbox(tmp_path / "outbox.sqlite", privatizer.z_dim, keep_acked=True)
    agent = DeviceAgent(
        DeviceConfig(fps=5.0, daily_budget_bits=5.5 * FSQ_BITS),
        privatizer=privatizer,
        outbox=outbox,
        uplink=uplink_for(identity),
    )
    [report] = agent.run([parse_source(str(talking_face_clip))], drain_timeout_s=60)
    seqs, timestamps, _ = server_records(server)
    entries = agent.ledger.entries()
    assert len(seqs) == report.z_queued == outbox.stats().stored == len(entries) == 5
    assert timestamps == [e[1] for e in entries]
    cover = agent.ledger.summary()["lifetime"]["cover"]
    assert cover == agent.uplink.stats.cover_sent > 0
    agent.ledger.close()
    outbox.close()


# -- lifeveil device ledger ------------------------------------------------------------------
def test_cli_prints_per_day_and_lifetime_totals(
    tmp_path: Path, vault, tiny_checkpoint: Path, talking_face_clip: Path, capsys, monkeypatch
):
    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", PASSPHRASE)
    state = tmp_path / "state"
    assert main(["device", "ledger", "--state", str(state)]) == 0
    assert "none yet" in capsys.readouterr().out
    args = ["--source", str(talking_face_clip), "--vault", str(vault.root), "--state", str(state)]
    assert main(["device", "run", *args, "--model", str(tiny_checkpoint), "--offline"]) == 0
    assert "bits released today (UTC) no daily budget" in capsys.readouterr().out
    assert main(["device", "ledger", "--state", str(state), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["lifetime"]["z"] == 8 and summary["daily_budget_bits"] is None
    [day] = summary["days"]
    assert day["z"] == 8 and day["bits"] == pytest.approx(summary["lifetime"]["bits"])
    assert main(["device", "ledger", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "lifetime" in out and day["day"] in out and "vib-kl" in out


def test_cli_ledger_imports_no_torch(tmp_path: Path):
    code = (
        "import sys\n"
        "from lifeveil.cli.main import main\n"
        f"main(['device', 'ledger', '--state', {str(tmp_path)!r}, '--json'])\n"
        "print([m for m in ('torch', 'numpy', 'cv2') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
