import json

import numpy as np
import torch
from safetensors.torch import load_file

from lifeveil.privatizer import Privatizer
from lifeveil.privatizer.data import FrameSet, build_view_cache
from lifeveil.privatizer.train import TrainConfig, build_model, train_privatizer
from lifeveil.teachers import create_teacher

from .conftest import TINY, TINY_TRAIN


def _weights(path):
    return load_file(str(path))


def test_training_reduces_the_loss_and_writes_config(tiny_checkpoint):
    meta = json.loads(tiny_checkpoint.with_suffix(".json").read_text())
    hist = meta["training"]["history"]
    assert len(hist) == TINY_TRAIN.epochs
    assert hist[-1]["utility_loss"] < hist[0]["utility_loss"]
    assert meta["privatizer"]["z_dim"] == TINY.z_dim
    assert meta["training"]["train_config"]["seed"] == TINY_TRAIN.seed


def test_same_seed_gives_identical_checkpoint(tiny_cache, tiny_checkpoint, tmp_path):
    again = train_privatizer(
        TINY, TINY_TRAIN, tiny_cache, tmp_path / "again.safetensors", progress=False
    )
    a, b = _weights(tiny_checkpoint), _weights(again.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_different_seed_gives_different_checkpoint(tiny_cache, tiny_checkpoint, tmp_path):
    other = train_privatizer(
        TINY,
        TrainConfig(epochs=2, batch_size=16, views=2, seed=4),
        tiny_cache,
        tmp_path / "other.safetensors",
        progress=False,
    )
    a, b = _weights(tiny_checkpoint), _weights(other.checkpoint)
    assert not torch.equal(a["vib.mu.weight"], b["vib.mu.weight"])


def test_resume_reproduces_an_uninterrupted_run(tiny_cache, tiny_checkpoint, tmp_path):
    out = tmp_path / "resumed.safetensors"
    first = train_privatizer(TINY, TINY_TRAIN, tiny_cache, out, progress=False, until_epoch=1)
    assert len(first.history) == 1
    result = train_privatizer(TINY, TINY_TRAIN, tiny_cache, out, resume=True, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2]
    a, b = _weights(tiny_checkpoint), _weights(out)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_larger_lambda_discloses_fewer_bits(tiny_cache, tmp_path):
    bits = []
    for lam in (1e-4, 1.0):
        r = train_privatizer(
            TINY.replace(lam=lam),
            TrainConfig(epochs=3, batch_size=16, views=2, seed=3, kl_warmup_epochs=0),
            tiny_cache,
            tmp_path / f"l{lam}.safetensors",
            progress=False,
        )
        bits.append(r.history[-1]["kl_bits"])
    assert bits[1] < bits[0] * 0.6


def test_clip_mode_pools_frames_into_one_z(orl_root, tmp_path):
    from lifeveil.data import load_orl

    cfg = TINY.replace(clip_frames=3)
    faces = load_orl(orl_root, ["s4", "s5"])
    fs = FrameSet()
    for i in range(0, 12, 3):  # four "clips" of three frames of one person each
        fs.add_group(faces.images[i : i + 3])
    cache = build_view_cache(
        fs, create_teacher(), build_model(cfg, 0).student, cfg.input_size, 1, 0, progress=False
    )
    result = train_privatizer(
        cfg,
        TrainConfig(epochs=1, batch_size=2, views=1),
        cache,
        tmp_path / "clip.safetensors",
        progress=False,
    )
    p = Privatizer.load(result.checkpoint)
    rep = p.privatize_clips([faces.images[0:3], faces.images[3:5]])
    assert rep.z.shape == (2, cfg.z_dim)
    assert np.isfinite(rep.kl_bits).all()
