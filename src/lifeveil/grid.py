"""Code grids shared by the device and the server: snapping values onto the levels of a code.

An adapter between privatizer versions (``lifeveil adapt``, issue 14) may end with a snap onto
the new version's finite-scalar code grid; the device fits the thresholds and the server
applies them to stored z, so both import this one function.
"""

from __future__ import annotations

import numpy as np


def snap_to_levels(z: np.ndarray, thresholds: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``z`` (N, d) with coordinate ``j`` replaced by ``levels[#(thresholds[j] < value)]``.

    How an adapter with snapping (``lifeveil adapt``) puts migrated z onto the new version's
    code grid; the device fits ``thresholds`` (d, L - 1) and the server applies them.

    >>> snap_to_levels(np.array([[0.2, -3.0]]), np.array([[0.0], [0.0]]), np.array([-1.0, 1.0]))
    array([[ 1., -1.]], dtype=float32)
    """
    index = (np.asarray(z)[:, :, None] > np.asarray(thresholds)[None, :, :]).sum(axis=2)
    return np.asarray(levels, dtype=np.float32)[index]
