"""Traffic analysis: an eavesdropper reads motion from H.264 upload traces, not from LifeVeil's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.device.tiny import train_tiny_privatizer

from lifeveil.bench.traffic import (
    FEATURE_NAMES,
    Trace,
    TrafficConfig,
    constancy,
    h264_trace,
    loo_attack,
    model_trace,
    motion_labels,
    run_traffic_analysis,
    trace_features,
)

# Three still and three moving clips of the shared action-clips set (motion scores 0.1-0.6
# against 7.8-12.8), 2 s of each: small enough for a test, enough for leave-one-out.
CLIPS = (
    "drink_water__S001C001P001R001A001_rgb.avi",
    "tai_chi__ta_chi.mp4",
    "DefensivePistolShootingTechniques_shoot_gun_f_nm_np1_fr_med_3.mp4",
    "Bruno_Walks_up_Stairs_climb_stairs_f_cm_np1_fr_med_0.mp4",
    "Documentario_Le_Parkour_Londrina_jump_f_cm_np1_ri_bad_6.mp4",
    "skateboarding__skateboarding.mp4",
)


def test_constant_trace_has_no_variation_features():
    trace = model_trace(3.0, 10.0, 190.0, phase=0.03)
    features = dict(zip(FEATURE_NAMES, trace_features(trace), strict=True))
    assert features["bitrate_mean"] == pytest.approx(1900.0)
    for name in ("bitrate_std", "bitrate_cv", "record_size_std", "interarrival_std"):
        assert features[name] == pytest.approx(0.0, abs=1e-9), name
    assert constancy(trace)["distinct_sizes"] == 1


def test_bitrate_uses_whole_bins_only():
    trace = Trace(np.array([0.0, 0.05, 0.15, 0.31]), np.array([1.0, 2.0, 4.0, 8.0]), 0.33)
    assert trace.bitrate(0.1).tolist() == [3.0, 4.0, 0.0]  # 0.31 s lies in a partial bin


def test_motion_labels_and_attack_on_separable_features():
    assert motion_labels([0.1, 9.0, 0.2, 8.0]).tolist() == [0, 1, 0, 1]
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 6)
    features = rng.standard_normal((12, 3)) + 4.0 * labels[:, None]
    result = loo_attack(features, labels)
    assert result["accuracy"] == 1.0 and result["chance"] == 0.5 and result["p_value"] < 0.01


def test_h264_trace_of_a_real_clip(talking_face_clip: Path):
    trace, facts = h264_trace(talking_face_clip, TrafficConfig(max_seconds=2.0, h264_width=176))
    assert facts["frames"] == 60 and facts["h264_size"] == "176x144"
    assert facts["h264_bytes"] > 0 and facts["motion"] > 0
    assert np.all(np.diff(trace.times) >= 0) and trace.sizes.max() <= 16384 + 22


@pytest.mark.slow
def test_attack_reads_h264_but_lifeveil_trace_is_constant(
    clips_root: Path, talking_face_clip: Path, tmp_path: Path
):
    checkpoint = train_tiny_privatizer(talking_face_clip, tmp_path / "tiny.safetensors")
    config = TrafficConfig(max_seconds=2.0, checkpoint=str(checkpoint))
    result = run_traffic_analysis(clips_root, tmp_path / "out", config, files=CLIPS)

    assert {c["file"] for c in result["clips"]} == set(CLIPS)
    assert sum(c["motion"] for c in result["clips"]) == 3
    h264 = result["attack"]["h264"]
    assert h264["accuracy"] > h264["chance"], h264
    # Measured on the socket: one record size up, one down, a metronome within jitter.
    up, down = result["lifeveil_constancy"]["upstream"], result["lifeveil_constancy"]["downstream"]
    assert len(up["distinct_sizes_all_clips"]) == 1 and len(down["distinct_sizes_all_clips"]) == 1
    assert up["max_interarrival_dev_ms"] < 60  # 100 ms ticks; 2 busy CPU cores
    assert all(len(c["lifeveil_record_sizes"]) == 1 for c in result["clips"])
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["attack"]["h264"]["correct"] == h264["correct"]
    assert (tmp_path / "out" / "traces.png").stat().st_size > 10_000
