"""Packing a finite-scalar-quantised code into the fewest whole bytes, and back.

A code of ``d`` coordinates, each one of ``L`` (odd) levels ``-1, ..., 0, ..., 1`` in steps of
``2 / (L - 1)``, is the base-``L`` number of its level indices: ``ceil(d * log2 L / 8)``
bytes, little-endian. The default privatizer's 64 x 5-level code is 149 bits, 19 bytes,
where fp16 takes 128 and int8 64 -- and the packing is exact, not a quantisation.

>>> z = np.array([-1.0, 0.0, 0.5, 1.0], dtype=np.float32)
>>> unpack_code(pack_code(z, 5), 4, 5).tolist()
[-1.0, 0.0, 0.5, 1.0]
>>> code_payload_bytes(64, 5)
19
"""

from __future__ import annotations

import math

import numpy as np

#: Levels an ``fsqL`` wire dtype may name (odd, so 0 is a level).
CODE_LEVELS = (3, 5, 7, 9, 11, 13, 15)
_GRID_TOLERANCE = 1e-3


def code_payload_bytes(z_dim: int, levels: int) -> int:
    """Whole bytes that hold ``levels ** z_dim`` values."""
    return -(-math.ceil(z_dim * math.log2(levels)) // 8)


def code_indices(z: np.ndarray, levels: int) -> np.ndarray | None:
    """Level index (0 .. L-1) of each coordinate of ``z``, or None if z is not on the grid."""
    half = (levels - 1) / 2
    scaled = (z.astype(np.float64) + 1.0) * half
    idx = np.rint(scaled)
    if (
        np.any(np.abs(scaled - idx) > _GRID_TOLERANCE * half)
        or np.any(idx < 0)
        or np.any(idx > levels - 1)
    ):
        return None
    return idx.astype(np.int64)


def pack_code(z: np.ndarray, levels: int) -> bytes:
    """``z`` (on the grid; see :func:`code_indices`) as ``code_payload_bytes`` bytes."""
    idx = code_indices(z, levels)
    if idx is None:
        raise ValueError(f"z is not a {levels}-level code")
    number = 0
    for digit in idx[::-1].tolist():  # most significant first: coordinate d-1
        number = number * levels + digit
    return number.to_bytes(code_payload_bytes(len(z), levels), "little")


def unpack_code(payload: bytes, z_dim: int, levels: int) -> np.ndarray | None:
    """Inverse of :func:`pack_code`: float32 (z_dim,), or None if the number is out of range."""
    number = int.from_bytes(payload, "little")
    if number >= levels**z_dim:
        return None
    digits = np.empty(z_dim, dtype=np.float64)
    for i in range(z_dim):
        number, digits[i] = divmod(number, levels)
    half = (levels - 1) / 2
    return ((digits - half) / half).astype(np.float32)  # as the fsq head computes round(b) / half
