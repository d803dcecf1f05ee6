"""An adapter's arithmetic, shared by the device (which fits it) and the server (which
applies it to stored z): an optional ReLU layer, a linear map, and an optional snap onto the
new version's code grid (``lifeveil adapt``, issue 14).
"""

from __future__ import annotations

import numpy as np


def apply_adapter(
    z: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    hidden: tuple[np.ndarray, np.ndarray] | None = None,
    snapping: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``z`` (N, d_old) -> (N, d_new) float32.

    ``hidden`` = (weight (h, d_old), bias (h,)) adds ``relu(z @ W.T + b)`` before the linear
    map ``@ weight.T + bias``; ``snapping`` = (thresholds (d_new, L - 1), levels (L,)) snaps
    the result with :func:`snap_to_levels`.
    """
    x = np.asarray(z, dtype=np.float32)
    if hidden is not None:
        x = np.maximum(x @ hidden[0].T + hidden[1], 0.0).astype(np.float32)
    out = (x @ weight.T + bias).astype(np.float32)
    return out if snapping is None else snap_to_levels(out, *snapping)


def snap_to_levels(z: np.ndarray, thresholds: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``z`` (N, d) with coordinate ``j`` replaced by ``levels[#(thresholds[j] < value)]``.

    >>> snap_to_levels(np.array([[0.2, -3.0]]), np.array([[0.0], [0.0]]), np.array([-1.0, 1.0]))
    array([[ 1., -1.]], dtype=float32)
    """
    index = (np.asarray(z)[:, :, None] > np.asarray(thresholds)[None, :, :]).sum(axis=2)
    return np.asarray(levels, dtype=np.float32)[index]
