"""The agent end to end on a real clip against a real TLS server subprocess."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from lifeveil.bench.wiretap import TLS_APPLICATION_DATA, WireTap, steady_run
from lifeveil.device.agent import DeviceAgent
from lifeveil.device.config import DeviceConfig
from lifeveil.device.identity import enroll
from lifeveil.device.outbox import Outbox
from lifeveil.device.source import parse_source
from lifeveil.ingest.video import iter_video_frames
from lifeveil.privatizer import Privatizer
from lifeveil.transport.client import QueryClient
from lifeveil.transport.uplink import UplinkConfig

from .conftest import server_records

DEVICE_PACKAGE = Path(__file__).parents[2] / "src" / "lifeveil" / "device"


def test_device_code_never_imports_the_server():
    for path in DEVICE_PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.startswith(("lifeveil.server", "lifeveil.bench")) for n in names), (
                f"{path.name} imports {names}"
            )


def uplink_for(identity, rate_hz: float = 20.0) -> UplinkConfig:
    return UplinkConfig(
        url=identity.uplink_url,
        token=identity.token,
        wire=identity.wire_spec(),
        rate_hz=rate_hz,
        cafile=identity.cafile,
        backoff_initial_s=0.1,
        backoff_max_s=0.5,
    )


@pytest.mark.slow
def test_agent_uploads_every_z_once_and_only_z_crosses_the_wire(
    tmp_path: Path, server, vault, tiny_checkpoint: Path, talking_face_clip: Path
):
    user_token = server.add_tenant("home")
    server.start()
    privatizer = Privatizer.load(tiny_checkpoint)
    with WireTap(server.port) as tap:
        base = f"https://127.0.0.1:{tap.port}"
        identity = enroll(base, user_token, "kitchen", cafile=server.cafile)
        tap.clear()
        outbox = Outbox(tmp_path / "outbox.sqlite", privatizer.z_dim, keep_acked=True)
        config = DeviceConfig(fps=5.0, segment_s=2.0)
        agent = DeviceAgent(
            config, privatizer=privatizer, outbox=outbox, vault=vault, uplink=uplink_for(identity)
        )
        [report] = agent.run([parse_source(str(talking_face_clip))], drain_timeout_s=60)
        # one HTTPS request first (the agent registers its privatizer version), then the uplink
        [register_conn, uplink_conn] = tap.connections()

    expected = [f.timestamp for f in iter_video_frames(talking_face_clip, fps=5.0)]
    assert report.z_queued == len(expected) == 20 and report.segments == 2
    history = [record for record, _ in outbox.history()]
    seqs, timestamps, z = server_records(server)
    assert seqs == [r.seq for r in history] == list(range(20))
    assert timestamps == [r.timestamp_us for r in history]
    np.testing.assert_allclose(z, np.stack([r.z for r in history]), rtol=1e-3, atol=1e-3)
    gaps = np.diff(timestamps) / 1e6
    np.testing.assert_allclose(gaps, np.diff(expected), atol=1e-3)
    assert agent.uplink.stats.refused == 0 and outbox.stats().stored == 20

    # What an eavesdropper saw: apart from the TLS/WebSocket handshake before and the close
    # after, one run of equal-size records up (one per tick) and equal-size acks down.
    sent = agent.uplink.stats.real_sent + agent.uplink.stats.cover_sent
    up = steady_run(uplink_conn.records("up", TLS_APPLICATION_DATA))
    down = steady_run(uplink_conn.records("down", TLS_APPLICATION_DATA))
    assert up.constant and len(up.run) == sent and len(up.before) + len(up.after) <= 4
    assert down.constant and len(down.run) >= sent - 2
    frame_bytes = identity.wire_spec().frame_bytes
    assert frame_bytes < up.run[0] <= frame_bytes + 64  # TLS + WebSocket overhead only
    assert register_conn.bytes("up") < 4096 and register_conn.bytes("down") < 8192

    # The server answers queries about our z; the raw video stays in the vault.
    wire = identity.wire_spec()
    with QueryClient(server.base_url, user_token, wire=wire, cafile=server.cafile) as client:
        top = client.knn(history[-1].z, k=1, device="kitchen")[0]
    assert top.seq == 19 and top.score > 0.99
    assert sum(int(s.extra["frames"]) for s in vault.list()) == 120
