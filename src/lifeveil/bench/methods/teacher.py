"""The bench's teacher: one frozen encoder per process, and a cache of its embeddings.

Every teacher-based method (raw-teacher, the pixel baselines, dp-embedding) embeds with
:func:`bench_teacher`; within a job, tasks and attacks ask for the same datasets' features
many times, so :func:`embed_cached` memoises them on content. Kept apart from the methods so
that :mod:`lifeveil.bench.methods.base` can use the teacher without importing a method.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from lifeveil.teachers import Teacher, create_teacher

TEACHER_NAME = "mobilenet_v2"
_CACHE_SIZE = 32
_EMBED_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()
_CACHING = [True]


@contextlib.contextmanager
def caching_disabled() -> Iterator[None]:
    """Within the block every embedding is computed afresh (used when timing methods)."""
    _CACHING.append(False)
    try:
        yield
    finally:
        _CACHING.pop()


def bench_teacher() -> Teacher:
    """The frozen teacher every teacher-based method uses (shared within a process)."""
    return create_teacher(TEACHER_NAME)


def fingerprint(images: Sequence[np.ndarray], salt: str = "") -> str:
    """Content hash of a list of images (shapes and bytes)."""
    h = hashlib.blake2b(salt.encode(), digest_size=16)
    for img in images:
        h.update(repr(img.shape).encode())
        h.update(np.ascontiguousarray(img).data)
    return h.hexdigest()


@torch.inference_mode()
def embed_crops(crops: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """Teacher embeddings (N, D) of uint8 crops already at the teacher's input size.

    Unlike ``Teacher.embed`` this applies no resize or crop, so an image processed on the
    teacher's crop is embedded exactly as ``teacher(pixels)`` would embed it.
    """
    teacher = bench_teacher()
    chunks = [
        teacher(
            torch.from_numpy(np.stack(crops[i : i + batch_size])).permute(0, 3, 1, 2).float()
            / 255.0
        )
        .float()
        .numpy()
        for i in range(0, len(crops), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, teacher.embed_dim), np.float32)


def embed_cached(images: Sequence[np.ndarray], salt: str = "", crops: bool = False) -> np.ndarray:
    """Teacher embeddings (N, D) of ``images``, memoised on content (a copy is returned).

    ``crops=True``: the images are teacher crops (see :func:`embed_crops`).
    """
    embed = embed_crops if crops else bench_teacher().embed
    if not _CACHING[-1]:
        return embed(images).astype(np.float32)
    key = fingerprint(images, f"{TEACHER_NAME}|{salt}|{crops}")
    if key in _EMBED_CACHE:
        _EMBED_CACHE.move_to_end(key)
    else:
        _EMBED_CACHE[key] = embed(images).astype(np.float32)
        while len(_EMBED_CACHE) > _CACHE_SIZE:
            _EMBED_CACHE.popitem(last=False)
    return _EMBED_CACHE[key].copy()


@functools.lru_cache(maxsize=1)
def _teacher_cost() -> tuple[float, float]:
    from lifeveil.privatizer.metrics import model_cost

    teacher = bench_teacher()
    cost = model_cost(teacher, teacher.input_size)
    return float(cost.params), cost.mflops


def teacher_cost() -> dict[str, float]:
    """Params and MFLOPs of the teacher at its input size."""
    params, mflops = _teacher_cost()
    return {"params": params, "mflops": mflops}
