"""Image loading. Every image becomes an RGB ``uint8`` array of shape (H, W, 3)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lifeveil.errors import DatasetError, MediaError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, shape (H, W, 3). Grey images are replicated to 3 channels."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"{p}: no such image file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: image file is empty")
    data = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError(f"{p}: cannot decode image (expected one of {', '.join(IMAGE_SUFFIXES)})")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def list_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Sorted image files under ``folder``; DatasetError if there are none."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in root.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{root}: no images found (expected files ending in {IMAGE_SUFFIXES})")
    return files
