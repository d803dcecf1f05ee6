"""System efficiency (SE): on-device latency, model size, compute and bytes on the wire.

What a method uploads decides its bytes per frame: feature methods send one vector per frame
(counted as the payload at wire precision and as a LifeVeil wire frame, header and padding
included); pixel methods upload the processed frame, counted as a JPEG (quality 90) and as
H.264 (libx264 via PyAV, CRF 23, a real clip's frames). For feature methods the JPEG and H.264
columns are of the raw frame, the cost they avoid. H.264 bytes per frame include the stream's
one keyframe over a short sequence (the preset's ``se_frames``), so they overstate what a long
stream would average.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lifeveil.bench.methods.base import Method
from lifeveil.ingest.video import encode_h264

JPEG_QUALITY = 90
H264_CRF = 23
WIRE_BYTES_PER_VALUE = {"float16": 2, "float32": 4, "int8": 1}
_WIRE_SPEC_DTYPE = {"float16": "fp16", "int8": "int8"}


def latency_ms(method: Method, frames: Sequence[np.ndarray], repeats: int = 5) -> dict[str, float]:
    """Median and IQR of the on-device time per frame (ms), one frame per call, after a warm-up.

    Embedding caches are off while timing, so every call does the device's full work.
    """
    from lifeveil.bench.methods.teacher import caching_disabled

    times = []
    with caching_disabled():
        method.on_device([frames[0]])
        for i in range(max(1, repeats)):
            frame = frames[i % len(frames)]
            t0 = time.perf_counter()
            method.on_device([frame])
            times.append((time.perf_counter() - t0) * 1e3)
    q = np.percentile(times, [25, 75]) if len(times) > 1 else (times[0], times[0])
    return {"latency_ms": statistics.median(times), "latency_iqr_ms": float(q[1] - q[0])}


def jpeg_bytes(frames: Sequence[np.ndarray], quality: int = JPEG_QUALITY) -> float:
    """Mean JPEG size (bytes) of RGB uint8 frames."""
    sizes = []
    for f in frames:
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        sizes.append(buf.size)
    return float(np.mean(sizes))


def h264_bytes(frames: Sequence[np.ndarray], fps: float = 4.0, crf: int = H264_CRF) -> float:
    """Mean bytes per frame of the frames encoded as one H.264 stream (libx264, yuv420p)."""
    return encode_h264(frames, fps, crf) / len(frames)


def vector_bytes(dim: int, dtype: str) -> dict[str, float]:
    """Payload bytes of one released vector and, where LifeVeil's wire format applies, its frame size."""
    out: dict[str, float] = {"vector_bytes": float(dim * WIRE_BYTES_PER_VALUE[dtype])}
    if dtype in _WIRE_SPEC_DTYPE and dim <= 4096:
        from lifeveil.transport.frame import WireSpec

        out["wire_frame_bytes"] = float(
            WireSpec(z_dim=dim, dtype=_WIRE_SPEC_DTYPE[dtype]).frame_bytes
        )
    return out


def onnx_cost(path: str | Path, input_shape: tuple[int, ...]) -> dict[str, float]:
    """Params and MFLOPs (a multiply-add = 2) of the convolutions of an ONNX model (cached)."""
    return dict(_onnx_cost(str(path), tuple(input_shape)))


@functools.lru_cache(maxsize=8)
def _onnx_cost(path: str, input_shape: tuple[int, ...]) -> dict[str, float]:
    """Conv params and MFLOPs of an ONNX model.

    Shapes come from ONNX shape inference with the input fixed to ``input_shape``. Only Conv
    and ConvTranspose count (they dominate detectors); weights stored as quantised
    initializers count once each.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in inits)
    for dim, size in zip(graph_input.type.tensor_type.shape.dim, input_shape, strict=True):
        dim.dim_value = size  # fully convolutional: re-infer every shape at this size
    del model.graph.value_info[:]
    for out in model.graph.output:
        for k, dim in enumerate(out.type.tensor_type.shape.dim):
            dim.dim_param = f"{out.name}_{k}"
    model = shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*model.graph.value_info, *model.graph.output, *model.graph.input)
    }
    for name, init in inits.items():
        shapes[name] = list(init.dims)
    params = sum(
        int(np.prod(numpy_helper.to_array(i).shape)) for i in inits.values() if len(i.dims) > 1
    )
    flops = 0.0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger"):
            continue
        w_name = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
        w, out = shapes.get(w_name), shapes.get(node.output[0])
        if not w or not out or 0 in out:
            continue
        flops += 2.0 * float(np.prod(w)) * float(np.prod(out[2:]))
    return {"params": float(params), "mflops": flops / 1e6}


def sequence_frames(clips: list[tuple[str, list[np.ndarray]]], n: int) -> list[np.ndarray]:
    """Up to ``n`` consecutive frames of the longest clip (a real video sequence for H.264)."""
    if not clips:
        raise ValueError("SE needs at least one clip for the H.264 measurement")
    frames = max((f for _, f in clips), key=len)
    return list(frames[:n])


def se_metrics(
    method: Method, frames: Sequence[np.ndarray], fps: float, repeats: int = 5
) -> dict[str, Any]:
    """All SE numbers for ``method`` on a short real frame sequence."""
    from lifeveil.bench.methods.pixel import teacher_crops

    out: dict[str, Any] = {**method.device_cost(), **latency_ms(method, frames, repeats)}
    processed = method.process_images(frames) if method.uploads_pixels else None
    uploaded = processed if processed is not None else teacher_crops(frames)
    out["jpeg_bytes"] = jpeg_bytes(uploaded)
    out["h264_bytes"] = h264_bytes(uploaded, fps)
    if method.uploads_pixels:
        out["wire_bytes"] = out["h264_bytes"]
        out["upload"] = "processed frame (H.264)"
    else:
        dim = int(method.features(frames[:1]).shape[1])
        out.update(vector_bytes(dim, method.wire_dtype()))
        out["wire_bytes"] = out.get("wire_frame_bytes", out["vector_bytes"])
        out["upload"] = f"vector d={dim} {method.wire_dtype()}"
    return out
