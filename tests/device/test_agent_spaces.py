"""The agent and representation spaces: every z is stamped with its version's space tag, the
agent registers that version when its uplink starts and again after UNKNOWN_SPACE, and z the
server does not take stay in the outbox (issue 14). Against a fake uplink server."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lifeveil.device.agent import DeviceAgent
from lifeveil.device.config import DeviceConfig
from lifeveil.device.outbox import Outbox
from lifeveil.device.source import parse_source
from lifeveil.errors import InputError
from lifeveil.transport.record import space_tag
from lifeveil.transport.uplink import UplinkConfig
from tests.transport.test_uplink_spaces import WIRE
from tests.transport.test_uplink_spaces import space_server as space_server  # a fixture

from .test_ledger import fsq_privatizer


class FakeRegistry:
    """``register_space`` of a server that is away for the first ``fail`` calls."""

    def __init__(self, server: Any, fail: int) -> None:
        self.server, self.fail, self.calls = server, fail, 0

    def __call__(self, version: str, z_dim: int) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.fail:
            raise InputError("cannot reach the server (connection refused)")
        self.server.registered.add(space_tag(version))
        return {"version": version, "tag": space_tag(version), "z_dim": z_dim}


def agent_for(tmp_path: Path, server: Any, cert: Path, registry: FakeRegistry) -> DeviceAgent:
    privatizer = fsq_privatizer()
    uplink = UplinkConfig(
        url=f"wss://127.0.0.1:{server.port}/v1/uplink",
        token="lvd_test",
        wire=WIRE,
        rate_hz=50,
        cafile=str(cert),
        backoff_initial_s=0.1,
        backoff_max_s=0.2,
    )
    outbox = Outbox(tmp_path / "outbox.sqlite", privatizer.z_dim, keep_acked=True)
    return DeviceAgent(
        DeviceConfig(fps=2.0),
        privatizer=privatizer,
        outbox=outbox,
        uplink=uplink,
        register=registry,
    )


def test_a_failed_registration_is_redone_after_unknown_space_and_nothing_is_lost(
    tmp_path: Path, space_server, talking_face_clip: Path, caplog
):
    server, cert = space_server
    registry = FakeRegistry(server, fail=1)  # away at start, back for the retry
    agent = agent_for(tmp_path, server, cert, registry)
    with caplog.at_level(logging.INFO, logger="lifeveil"):
        [report] = agent.run([parse_source(str(talking_face_clip))], drain_timeout_s=30)
    history = agent.outbox.history()
    assert report.z_queued == len(history) == 8
    assert {record.space for record, _ in history} == {agent.space}
    assert agent.space == space_tag(agent.version) != 0
    assert all(status is not None for _, status in history)  # every z stored in the end
    assert {space for space, _ in server.received} == {agent.space}
    assert registry.calls == 2 and agent.uplink.stats.unknown_space >= 1
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert [m for m in info if m.startswith("registered privatizer version")] == [
        f"registered privatizer version {agent.version} with the server as space tag {agent.space}"
    ]
    agent.ledger.close()
    agent.outbox.close()


def test_a_version_the_server_never_takes_stays_queued_without_a_retry_storm(
    tmp_path: Path, space_server, talking_face_clip: Path, caplog
):
    server, cert = space_server
    registry = FakeRegistry(server, fail=99)
    agent = agent_for(tmp_path, server, cert, registry)
    lines: list[str] = []
    agent._progress = lines.append  # noqa: SLF001
    with caplog.at_level(logging.WARNING, logger="lifeveil"):
        [report] = agent.run([parse_source(str(talking_face_clip))], drain_timeout_s=30)
    assert agent.outbox.pending() == report.z_queued == 8  # kept, not lost
    assert registry.calls == 2  # at start, and once after UNKNOWN_SPACE: then it waits
    seqs = [seq for _, seq in server.received]
    assert len(seqs) == len(set(seqs)) <= 8  # each z went out at most once: no retry storm
    assert "which the server does not know" in lines[-1]
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("lifeveil")
    ]
    assert len(errors) == 1 and f"space tag {agent.space}" in errors[0].getMessage()
    agent.ledger.close()
    agent.outbox.close()


def test_an_offline_agent_stamps_the_tag_and_registers_nothing(
    tmp_path: Path, talking_face_clip: Path
):
    privatizer = fsq_privatizer()
    outbox = Outbox(tmp_path / "outbox.sqlite", privatizer.z_dim)
    agent = DeviceAgent(DeviceConfig(fps=2.0), privatizer=privatizer, outbox=outbox)
    agent.run([parse_source(str(talking_face_clip))])
    assert agent.spaces is None
    assert {r.space for r, _ in outbox.history()} == {space_tag(privatizer.version)}
    agent.ledger.close()
    outbox.close()
