"""A tiny privatizer trained in seconds on real ORL faces, shared by the privatizer tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lifeveil.data import load_orl
from lifeveil.privatizer import PrivatizerConfig
from lifeveil.privatizer.data import FrameSet, build_view_cache
from lifeveil.privatizer.train import TrainConfig, build_model, train_privatizer
from lifeveil.teachers import create_teacher

TINY = PrivatizerConfig(input_size=64, z_dim=16, decoder_hidden=64, lam=1e-3)
TINY_TRAIN = TrainConfig(epochs=2, batch_size=16, views=2, seed=3)


def tiny_frames(orl_root: Path, n: int = 24) -> FrameSet:
    """The first n ORL faces of identities s1-s3 (training identities), one group each."""
    faces = load_orl(orl_root, ["s1", "s2", "s3"])
    fs = FrameSet()
    for img in faces.images[:n]:
        fs.add_group([img])
    return fs


@pytest.fixture(scope="session")
def tiny_cache(orl_root: Path):
    torch.set_num_threads(2)
    return build_view_cache(
        tiny_frames(orl_root),
        create_teacher(),
        build_model(TINY, 0).student,
        TINY.input_size,
        TINY_TRAIN.views,
        TINY_TRAIN.seed,
        progress=False,
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    train_privatizer(TINY, TINY_TRAIN, tiny_cache, out, progress=False)
    return out
