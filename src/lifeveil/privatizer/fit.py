"""Training a privatizer end to end, as a library: data -> cached views -> checkpoint.

``lifeveil train`` and ``lifeveil quickstart`` only parse their arguments and call these.

>>> frames = collect_frames(["clip.mp4"], video_fps=4.0)              # doctest: +SKIP
>>> result = fit(PrivatizerConfig(), TrainConfig(epochs=4), frames, "m.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lifeveil.privatizer.config import PrivatizerConfig
from lifeveil.privatizer.data import (
    FrameSet,
    ViewCache,
    build_view_cache,
    load_view_cache,
    save_view_cache,
)
from lifeveil.privatizer.train import TrainConfig, TrainResult, build_model, train_privatizer
from lifeveil.teachers import Teacher, create_teacher


def training_cache(
    cfg: PrivatizerConfig,
    tcfg: TrainConfig,
    frames: FrameSet,
    *,
    faces: Sequence[np.ndarray] | None = None,
    face_views: int = 2,
    faces_source: str | None = None,
    teacher: Teacher | None = None,
    cache_path: str | Path | None = None,
    progress: bool = True,
) -> ViewCache:
    """Teacher targets and frozen student features for every training view.

    With ``faces`` (label-free identity invariance) the cache also holds face views and scene
    composites. With ``cache_path`` a cache made with exactly these settings is reused, and a
    new one is saved there.
    """
    key = {
        "sources": frames.sources,
        "frames": len(frames),
        "teacher": cfg.teacher,
        "views": tcfg.views,
        "seed": tcfg.seed,
        "input_size": cfg.input_size,
        "frozen_blocks": cfg.frozen_blocks,
        "student_init": cfg.student_init,
        "clip_frames": cfg.clip_frames,
        "faces": f"{faces_source} x {face_views}" if faces is not None else None,
    }
    if cache_path:
        cached = load_view_cache(cache_path, key)
        if cached is not None:
            print(f"reusing teacher targets from {cache_path}")
            return cached
    teacher = teacher or create_teacher(cfg.teacher)
    student = build_model(cfg, tcfg.seed).student
    if faces is not None:
        from lifeveil.privatizer.invariance import build_invariance_cache

        cache = build_invariance_cache(
            frames,
            faces,
            teacher,
            student,
            cfg.input_size,
            tcfg.views,
            face_views,
            tcfg.seed,
            progress=progress,
        )
    else:
        cache = build_view_cache(
            frames, teacher, student, cfg.input_size, tcfg.views, tcfg.seed, progress=progress
        )
    if cache_path:
        save_view_cache(cache, cache_path, key)
    return cache


def fit(
    cfg: PrivatizerConfig,
    tcfg: TrainConfig,
    frames: FrameSet,
    out: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
    **cache_options: Any,
) -> TrainResult:
    """Train one privatizer on ``frames`` and write ``out`` (+ its JSON config).

    ``cache_options`` go to :func:`training_cache` (faces, face_views, faces_source, teacher,
    cache_path).
    """
    cache = training_cache(cfg, tcfg, frames, progress=progress, **cache_options)
    return train_privatizer(cfg, tcfg, cache, out, meta, progress=progress)
