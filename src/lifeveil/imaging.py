"""Small image helpers shared by the privatizer's training views and the benchmark.

Both paste faces into scenes (training composites, benchmark bystanders); they live here so that
device-side code never imports the benchmark.
"""

from __future__ import annotations

import cv2
import numpy as np


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
