"""Representation spaces end to end against a real TLS server subprocess (issue 14).

A device ran offline with privatizer A (its z wait in the outbox, tagged A), then is upgraded
to privatizer B and goes online: the agent registers B at start; the server answers
UNKNOWN_SPACE for A's z; the agent registers A too (its ledger knows the version) and A's z
go through. Every z ends on the server exactly once, in its own space.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lifeveil.device.agent import DeviceAgent
from lifeveil.device.config import DeviceConfig
from lifeveil.device.identity import enroll
from lifeveil.device.outbox import Outbox
from lifeveil.device.source import parse_source
from lifeveil.transport.client import QueryClient
from lifeveil.transport.frame import AckStatus
from lifeveil.transport.record import space_tag

from .test_agent import uplink_for
from .test_ledger import fsq_privatizer

UCF_CLIP = Path("/work/shared/data/action-clips/ucf101/v_ApplyEyeMakeup_g01_c01.avi")


def test_an_upgraded_device_registers_both_versions_and_loses_nothing(
    tmp_path: Path, server, talking_face_clip: Path, caplog
):
    user_token = server.add_tenant("home")
    server.start()
    identity = enroll(server.base_url, user_token, "cam", cafile=server.cafile)
    outbox = Outbox(tmp_path / "outbox.sqlite", 16, keep_acked=True)
    old = DeviceAgent(DeviceConfig(fps=2.0), privatizer=fsq_privatizer(), outbox=outbox)
    [offline] = old.run([parse_source(str(talking_face_clip))])
    old.ledger.close()

    new = DeviceAgent(
        DeviceConfig(fps=2.0),
        privatizer=fsq_privatizer(),  # another random init: another version, the same d
        outbox=outbox,
        uplink=uplink_for(identity),
    )
    assert new.version != old.version and new.space != old.space
    sources = [parse_source(str(UCF_CLIP))] if UCF_CLIP.is_file() else []
    with caplog.at_level(logging.INFO, logger="lifeveil"):
        reports = new.run(sources, drain_timeout_s=60)
    online = sum(r.z_queued for r in reports)

    history = outbox.history()
    assert len(history) == offline.z_queued + online and offline.z_queued == 8
    assert all(status == AckStatus.STORED for _, status in history)  # each stored once
    tags = [record.space for record, _ in history]
    assert tags == [old.space] * offline.z_queued + [new.space] * online
    with QueryClient(server.base_url, user_token, cafile=server.cafile) as client:
        spaces = {s["version"]: s for s in client.spaces()}
    assert spaces[old.version]["tag"] == space_tag(old.version)
    assert spaces[old.version]["n_records"] == offline.z_queued
    assert spaces[new.version]["n_records"] == online
    registered = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith("registered priv")
    ]
    assert registered == [
        f"registered privatizer version {v} with the server as space tag {space_tag(v)}"
        for v in (new.version, old.version)
    ]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and f"space tag {old.space}" in errors[0].getMessage()
    assert new.uplink.stats.unknown_space >= 1
    new.ledger.close()
    outbox.close()
