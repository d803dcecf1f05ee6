"""``lifeveil device``: offline run into outbox and vault, status, enrolment, errors."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

from lifeveil.cli.main import main
from lifeveil.device.cli import _undrained
from lifeveil.device.outbox import Outbox
from lifeveil.transport.frame import AckStatus

from .conftest import PASSPHRASE


def test_status_of_a_fresh_state_folder(tmp_path: Path, capsys):
    assert main(["device", "status", "--state", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    assert "(not enrolled)" in out and "none yet" in out


def test_run_without_credentials_is_one_line_error(
    tmp_path: Path, vault, tiny_checkpoint: Path, talking_face_clip: Path, capsys
):
    code = main(
        ["device", "run", "--source", str(talking_face_clip), "--vault", str(vault.root),
         "--state", str(tmp_path / "state"), "--model", str(tiny_checkpoint)]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "lifeveil device enroll" in err


def test_offline_run_queues_z_and_records_raw_video(
    tmp_path: Path, vault, tiny_checkpoint: Path, talking_face_clip: Path, capsys, monkeypatch
):
    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", PASSPHRASE)
    state = tmp_path / "state"
    args = ["--source", str(talking_face_clip), "--vault", str(vault.root), "--state", str(state)]
    assert main(["device", "run", *args, "--model", str(tiny_checkpoint), "--offline"]) == 0
    assert main(["device", "run", *args, "--model", str(tiny_checkpoint), "--offline"]) == 0
    capsys.readouterr()
    assert (
        main(["device", "status", "--state", str(state), "--vault", str(vault.root), "--json"]) == 0
    )
    status = json.loads(capsys.readouterr().out)
    assert status["outbox"]["pending"] == status["outbox"]["put"] == 8  # second run: nothing new
    assert status["vault"]["agent_segments"] == 1
    assert status["vault"]["seconds"] == pytest.approx(4.0, abs=0.05)


@pytest.mark.slow
def test_enroll_saves_private_credentials(tmp_path: Path, server, capsys):
    token_file = tmp_path / "user.token"
    token_file.write_text(server.add_tenant("home") + "\n")
    server.start()
    state = tmp_path / "state"
    code = main(
        ["device", "enroll", "--server", server.base_url, "--name", "hall",
         "--user-token-file", str(token_file), "--cafile", server.cafile, "--state", str(state)]
    )  # fmt: skip
    assert code == 0 and "enrolled device 'hall'" in capsys.readouterr().out
    saved = json.loads((state / "device.json").read_text())
    assert saved["device"] == "hall" and saved["wire"] == "1;16;fp16"
    assert (state / "device.json").stat().st_mode & 0o777 == 0o600
    assert main(["device", "enroll", "--server", server.base_url, "--name", "hall",
                 "--user-token-file", str(token_file), "--cafile", server.cafile,
                 "--state", str(tmp_path / "other")]) == 2  # fmt: skip
    assert "already" in capsys.readouterr().err


def test_offline_run_keeps_its_state_private_and_reserves_seqs(
    tmp_path: Path, vault, tiny_checkpoint: Path, talking_face_clip: Path, capsys, monkeypatch
):
    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", PASSPHRASE)
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)  # made by hand, or by an older LifeVeil
    args = ["--source", str(talking_face_clip), "--vault", str(vault.root), "--state", str(state)]
    assert main(["device", "run", *args, "--model", str(tiny_checkpoint), "--offline"]) == 0
    assert state.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in state.iterdir()) == [
        "ledger.sqlite",
        "outbox.sqlite",
        "sequence.json",
    ]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in state.iterdir())
    capsys.readouterr()
    assert main(["device", "status", "--state", str(state), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["seq_reserved"] > status["outbox"]["next_seq"] == 8  # reserved ahead of use
    assert status["outbox"]["conflicted"] == 0


def test_requeue_without_an_outbox_is_one_line_error(tmp_path: Path, capsys):
    assert main(["device", "requeue-conflicts", "--state", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no outbox here" in err


def test_unusable_state_folder_is_one_line_error(
    tmp_path: Path, vault, tiny_checkpoint: Path, talking_face_clip: Path, capsys, monkeypatch
):
    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", PASSPHRASE)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(
        ["device", "run", "--source", str(talking_face_clip), "--vault", str(vault.root),
         "--state", str(blocker / "state"), "--model", str(tiny_checkpoint), "--offline"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "--state folder you own" in err


@pytest.mark.slow
def test_a_drain_that_times_out_exits_1_and_keeps_the_z(
    tmp_path: Path, server, vault, tiny_checkpoint: Path, talking_face_clip: Path, capsys,
    monkeypatch,
):  # fmt: skip
    monkeypatch.setenv("LIFEVEIL_VAULT_PASSPHRASE", PASSPHRASE)
    token_file = tmp_path / "user.token"
    token_file.write_text(server.add_tenant("home") + "\n")
    server.start()
    state = tmp_path / "state"
    assert main(["device", "enroll", "--server", server.base_url, "--name", "hall",
                 "--user-token-file", str(token_file), "--cafile", server.cafile,
                 "--state", str(state)]) == 0  # fmt: skip
    server.stop()  # the server goes away: nothing can drain
    capsys.readouterr()
    run = ["device", "run", "--source", str(talking_face_clip), "--vault", str(vault.root),
           "--state", str(state), "--model", str(tiny_checkpoint)]  # fmt: skip
    assert main([*run, "--until-drained", "--drain-timeout", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "drain timed out" in err and "8 z still queued" in err and "nothing is lost" in err
    assert main([*run, "--offline", "--until-drained"]) == 2
    assert "pick one" in capsys.readouterr().err
    assert main([*run, "--drain-timeout", "3"]) == 2
    assert "add --until-drained" in capsys.readouterr().err


def test_status_and_run_name_z_waiting_for_an_unregistered_version(tmp_path: Path, capsys):
    state = tmp_path / "state"
    with Outbox(state / "outbox.sqlite", 4) as box:
        box.put(np.zeros(4, np.float32), 1, space=361)
        box.next_record()
        box.on_ack(0, AckStatus.UNKNOWN_SPACE)
    assert main(["device", "status", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "1 pending" in out and "answered UNKNOWN_SPACE 1 time(s)" in out
    line = _undrained(Namespace(state=state, drain_timeout=None), 1, {361})
    assert "space tag(s) 361" in line and "nothing is lost" in line
