"""The deterministic fsq bottleneck and the label-free identity-invariance training terms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lifeveil.data import load_lfw
from lifeveil.errors import CheckpointError, DatasetError, ShapeError
from lifeveil.privatizer import Privatizer, PrivatizerConfig
from lifeveil.privatizer.checkpoint import save_checkpoint
from lifeveil.privatizer.data import FrameSet
from lifeveil.privatizer.fsq import FSQHead, code_bits
from lifeveil.privatizer.invariance import COMPOSITE, FACE, SCENE, build_invariance_cache
from lifeveil.privatizer.model import PrivatizerModel
from lifeveil.privatizer.train import TrainConfig, build_model, train_privatizer
from lifeveil.teachers import create_teacher

FSQ = PrivatizerConfig(
    input_size=64, z_dim=8, decoder_hidden=32, bottleneck="fsq", fsq_levels=5, deploy_mode="mean"
)


def test_fsq_head_rounds_to_the_level_grid_and_passes_gradients():
    torch.manual_seed(0)
    head = FSQHead(16, 8, levels=5)
    h = torch.randn(32, 16, requires_grad=True)
    z = head(h)
    assert set(torch.unique(z).tolist()) <= {-1.0, -0.5, 0.0, 0.5, 1.0}
    z.sum().backward()  # straight-through: rounding does not block the gradient
    assert h.grad is not None and h.grad.abs().sum() > 0
    assert code_bits(8, 5) == pytest.approx(8 * math.log2(5))


def test_config_refuses_even_levels_and_a_sampled_fsq_release():
    with pytest.raises(CheckpointError, match="odd"):
        PrivatizerConfig(bottleneck="fsq", fsq_levels=4, deploy_mode="mean")
    with pytest.raises(CheckpointError, match="deploy_mode must be 'mean'"):
        PrivatizerConfig(bottleneck="fsq", deploy_mode="sample")
    with pytest.raises(CheckpointError, match="bottleneck must be one of"):
        PrivatizerConfig(bottleneck="vq")


def test_version_1_checkpoints_load_as_vib(tmp_path):
    cfg = PrivatizerConfig(input_size=64, z_dim=8, decoder_hidden=32, student_init="random")
    path = save_checkpoint(tmp_path / "old.safetensors", PrivatizerModel(cfg).state_dict(), cfg, {})
    data = json.loads(path.with_suffix(".json").read_text())
    for key in ("bottleneck", "fsq_levels", "collapse_weight", "invariance_weight"):
        del data["privatizer"][key]
    data["privatizer"]["version"] = 1
    path.with_suffix(".json").write_text(json.dumps(data))
    p = Privatizer.load(path)
    assert p.cfg.bottleneck == "vib" and p.cfg.label.startswith("vib lambda=")
    assert p.stochastic


def test_fsq_release_is_deterministic_so_averaging_gains_nothing(tmp_path, skimage_images):
    cfg = FSQ.replace(student_init="random")
    torch.manual_seed(1)
    path = save_checkpoint(tmp_path / "f.safetensors", PrivatizerModel(cfg).state_dict(), cfg, {})
    p = Privatizer.load(path)
    frames = skimage_images[:3]
    a, b = p.privatize(frames), p.privatize(frames, mode="sample")
    assert np.array_equal(a.z, b.z) and not p.stochastic
    assert np.array_equal(p.noise_free(frames), a.z)
    draws = p.draws(frames, 5)
    assert draws.shape == (3, 5, 8) and np.array_equal(draws.mean(1), a.z)
    assert np.allclose(a.kl_bits, code_bits(8, 5))
    single = p.privatize(frames[0])  # one HxWx3 frame is a batch of one
    assert single.z.shape == (1, 8) and np.array_equal(single.z[0], a.z[0])
    with pytest.raises(ShapeError, match="RGB frame"):
        p.privatize(np.zeros((4, 4, 4), np.uint8))


def test_vib_draws_average_towards_the_posterior_mean(tiny_checkpoint, skimage_images):
    p = Privatizer.load(tiny_checkpoint, seed=0)
    mu = p.noise_free(skimage_images[:2])
    draws = p.draws(skimage_images[:2], 400)
    assert p.stochastic and draws.shape == (2, 400, mu.shape[1])
    one = np.abs(draws[:, 0] - mu).mean()
    many = np.abs(draws.mean(1) - mu).mean()
    assert many < one / 5  # averaging removes the per-frame noise: why the mean must be private


def test_lfw_loader_splits_identities_and_explains_a_bad_root(lfw_root, tmp_path):
    held = load_lfw(lfw_root, "heldout", max_identities=3)
    train = load_lfw(lfw_root, "train", max_identities=3)
    assert len(set(held.labels)) == 3 and not set(held.labels) & set(train.labels)
    with pytest.raises(DatasetError, match="labels.csv"):
        load_lfw(tmp_path, "heldout")


@pytest.fixture(scope="module")
def invariance_cache(lfw_root, skimage_images):
    torch.set_num_threads(2)
    scenes = FrameSet()
    for img in skimage_images:
        scenes.add_group([img])
    faces = load_lfw(lfw_root, "train", max_identities=4, max_side=96).images
    student = build_model(FSQ.replace(student_init="imagenet"), 0).student
    return build_invariance_cache(
        scenes, faces, create_teacher(), student, FSQ.input_size, 1, 2, 0, progress=False
    ), faces


def test_invariance_cache_pairs_composites_with_their_clean_scene(invariance_cache):
    cache, faces = invariance_cache
    kinds = cache.kinds.tolist()
    assert kinds.count(SCENE) == 4 and kinds.count(FACE) == 2 * len(faces)
    assert kinds.count(COMPOSITE) == 4
    comp = (cache.kinds == COMPOSITE).nonzero().flatten()
    # a composite's target is its clean scene's teacher embedding; faces share one target
    assert torch.equal(cache.targets[comp], cache.targets[cache.partners[comp]])
    face_targets = cache.targets[cache.kinds == FACE]
    assert torch.equal(face_targets, face_targets[:1].expand_as(face_targets))
    assert (cache.partners[cache.kinds != COMPOSITE] == -1).all()


def _distinct_face_codes(path, faces) -> int:
    codes = Privatizer.load(path).privatize(faces).z
    return len({tuple(r) for r in codes.tolist()})


def test_collapse_term_maps_faces_to_fewer_codes(invariance_cache, tmp_path):
    cache, faces = invariance_cache
    tcfg = TrainConfig(epochs=6, batch_size=16, views=1, seed=0, lr=3e-3)
    plain = train_privatizer(FSQ, tcfg, cache, tmp_path / "plain.safetensors", progress=False)
    cfg = FSQ.replace(collapse_weight=5.0, invariance_weight=1.0)
    inv = train_privatizer(cfg, tcfg, cache, tmp_path / "inv.safetensors", progress=False)
    assert inv.history[-1]["collapse"] < plain.history[-1]["collapse"]
    assert _distinct_face_codes(inv.checkpoint, faces) < _distinct_face_codes(
        plain.checkpoint, faces
    )
