"""Small image helpers shared by the privatizer, its teachers and the benchmark.

``resize_center_crop`` is the one preprocessing step of every model input (teachers, the
student in PyTorch and in ONNX Runtime); the face pasting serves training composites and
benchmark bystanders. They live here so that device-side code never imports the benchmark and
the ONNX runtime never imports PyTorch.
"""

from __future__ import annotations

import cv2
import numpy as np

from lifeveil.errors import ShapeError


def resize_center_crop(img: np.ndarray, size: int, ratio: float = 1.0) -> np.ndarray:
    """Resize the shorter side to ``size * ratio`` and crop the centre square of ``size``.

    ``img``: RGB uint8 (H, W, 3) or grey (H, W); returns RGB uint8 (size, size, 3). Area
    interpolation when shrinking, bilinear when enlarging.
    """
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ShapeError(
            f"expected an RGB uint8 image of shape (H, W, 3), got {img.dtype} {img.shape}"
        )
    h, w = img.shape[:2]
    short = max(size, int(round(size * ratio)))
    scale = short / min(h, w)
    nh, nw = max(short, int(round(h * scale))), max(short, int(round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img, (nw, nh), interpolation=interp)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(resized[top : top + size, left : left + size])


def elliptical_alpha(h: int, w: int, feather: float) -> np.ndarray:
    """Soft elliptical mask (h, w) in [0, 1]: 1 inside, fading to 0 over ``feather`` of the radius."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((yy + 0.5) / h * 2 - 1) ** 2 + ((xx + 0.5) / w * 2 - 1) ** 2)
    return np.clip((1.0 - r) / feather, 0.0, 1.0)


def paste_face(
    scene: np.ndarray,
    face: np.ndarray,
    rng: np.random.Generator,
    height_range: tuple[float, float],
    feather: float,
) -> np.ndarray:
    """Blend ``face`` into a copy of ``scene`` at a random place.

    The face is scaled so its height is a fraction of the scene height drawn uniformly from
    ``height_range`` (aspect kept, width capped at the scene's), blended with a soft elliptical
    alpha mask (``feather`` of its radius), and placed uniformly at random inside the frame.
    Deterministic for a given ``rng`` state.
    """
    out = scene.copy()
    H, W = scene.shape[:2]
    fh = min(H, max(8, int(round(H * rng.uniform(*height_range)))))
    fw = min(W, max(6, int(round(fh * face.shape[1] / face.shape[0]))))
    small = cv2.resize(face, (fw, fh), interpolation=cv2.INTER_AREA).astype(np.float32)
    top, left = int(rng.integers(0, H - fh + 1)), int(rng.integers(0, W - fw + 1))
    alpha = elliptical_alpha(fh, fw, feather)[:, :, None]
    region = out[top : top + fh, left : left + fw].astype(np.float32)
    out[top : top + fh, left : left + fw] = np.round(alpha * small + (1 - alpha) * region).astype(
        np.uint8
    )
    return out
