"""System efficiency: bytes on the wire (JPEG, real H.264, z frames), ONNX cost, latency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lifeveil.bench.methods import create_method
from lifeveil.bench.methods.faces import yunet_path
from lifeveil.bench.se import (
    h264_bytes,
    jpeg_bytes,
    latency_ms,
    onnx_cost,
    se_metrics,
    vector_bytes,
)
from lifeveil.ingest.video import iter_video_frames


@pytest.fixture(scope="module")
def clip_frames(talking_face_clip) -> list[np.ndarray]:
    torch.set_num_threads(2)
    return [f.image for f in iter_video_frames(talking_face_clip, fps=5, max_frames=6)]


def test_h264_of_a_real_clip_is_far_smaller_than_jpeg_and_noise_costs_more(clip_frames):
    h264, jpeg = h264_bytes(clip_frames, fps=5), jpeg_bytes(clip_frames)
    assert 0 < h264 < jpeg
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 40, f.shape), 0, 255).astype(np.uint8) for f in clip_frames]
    assert h264_bytes(noisy, fps=5) > 3 * h264


def test_vector_bytes_use_the_wire_format():
    assert vector_bytes(64, "float16") == {"vector_bytes": 128.0, "wire_frame_bytes": 160.0}
    assert vector_bytes(1280, "float32") == {"vector_bytes": 5120.0}


def test_onnx_cost_counts_convolutions_at_the_input_size():
    small, large = (
        onnx_cost(yunet_path(), (1, 3, 224, 224)),
        onnx_cost(yunet_path(), (1, 3, 448, 448)),
    )
    assert 40_000 < small["params"] < 100_000
    assert large["mflops"] == pytest.approx(4 * small["mflops"], rel=0.05)


def test_se_metrics_report_what_each_method_uploads(clip_frames):
    blur = se_metrics(create_method("blur", {"sigma": 4.0}, 0), clip_frames, fps=5, repeats=2)
    assert blur["upload"].startswith("processed frame") and blur["wire_bytes"] == blur["h264_bytes"]
    raw = se_metrics(create_method("raw-teacher", {}, 0), clip_frames, fps=5, repeats=2)
    assert raw["vector_bytes"] == 2560 and raw["wire_bytes"] == raw["wire_frame_bytes"]
    assert raw["params"] > 3e6 and raw["mflops"] > 100 and raw["latency_ms"] > 0
    assert blur["h264_bytes"] < raw["h264_bytes"]  # a blurred frame compresses better


def test_latency_is_timed_without_the_embedding_cache(clip_frames):
    method = create_method("raw-teacher", {}, 0)
    method.features(clip_frames[:1])  # cached now; timing must still run the teacher
    assert latency_ms(method, clip_frames, repeats=2)["latency_ms"] > 1.0
