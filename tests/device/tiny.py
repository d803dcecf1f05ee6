"""A tiny privatizer trained in seconds on a real clip (for device, demo and traffic tests)."""

from __future__ import annotations

from pathlib import Path

import torch

from lifeveil.privatizer import PrivatizerConfig
from lifeveil.privatizer.data import build_view_cache, collect_frames
from lifeveil.privatizer.train import TrainConfig, build_model, train_privatizer
from lifeveil.teachers import create_teacher

TINY = PrivatizerConfig(input_size=64, z_dim=16, decoder_hidden=64, lam=1e-3)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=16, views=1, seed=3)


def train_tiny_privatizer(clip: Path, out: Path) -> Path:
    """One epoch on the clip's frames at 4 fps with the real teacher; returns the checkpoint."""
    torch.set_num_threads(2)
    frames = collect_frames([clip], video_fps=4.0)
    cache = build_view_cache(
        frames,
        create_teacher(),
        build_model(TINY, 0).student,
        TINY.input_size,
        TINY_TRAIN.views,
        TINY_TRAIN.seed,
        progress=False,
    )
    return train_privatizer(TINY, TINY_TRAIN, cache, out, progress=False).checkpoint
