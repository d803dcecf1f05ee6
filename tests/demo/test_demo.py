"""``lifeveil demo`` end to end: server, agent on real clips, queries, wire report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifeveil.cli.main import main
from tests.device.tiny import train_tiny_privatizer

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end(tmp_path: Path, talking_face_clip: Path, capsys):
    checkpoint = train_tiny_privatizer(talking_face_clip, tmp_path / "model" / "tiny.safetensors")
    keep = tmp_path / "demo"
    assert main(["demo", "--keep", str(keep), "--model", str(checkpoint), "--fps", "2"]) == 0
    text = capsys.readouterr().out
    for step in range(1, 7):
        assert f"[{step}/6]" in text
    assert "no raw media was sent" in text and "NOT all" not in text

    result = json.loads((keep / "demo.json").read_text())
    wire = result["wire"]
    assert wire["constant_size"] and wire["refused"] == 0
    assert wire["frame_records"] == wire["real_frames"] + wire["cover_frames"]
    assert wire["server_db"]["z_records"] == wire["real_frames"] == 8 + 20  # 4 s + 10 s at 2 fps
    assert wire["server_db"]["largest_value"] < 4096  # no table holds anything like a frame
    assert wire["uplink_bytes_up"] < wire["h264_bytes"] / 10
    assert wire["h264_sampled_bytes_per_frame"] > 10 * wire["record_bytes"] > 0
    answers = result["answers"]
    assert answers["knn"][0]["score"] > 0.99  # the last z finds itself first
    assert {s["label"] for s in answers["timeline"]} <= {"talking-face", "street"}
    assert (keep / "vault.passphrase").stat().st_mode & 0o777 == 0o600
