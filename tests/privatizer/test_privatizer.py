import numpy as np
import pytest

from lifeveil.errors import CheckpointError, ShapeError
from lifeveil.paths import DEFAULT_CHECKPOINT
from lifeveil.privatizer import Privatizer
from lifeveil.privatizer.checkpoint import config_path
from lifeveil.privatizer.train import TrainConfig, train_privatizer

from .conftest import TINY


def test_privatize_shapes_modes_and_bits(tiny_checkpoint, skimage_images):
    p = Privatizer.load(tiny_checkpoint, seed=0)
    mean = p.privatize(skimage_images, mode="mean")
    assert mean.z.shape == (len(skimage_images), TINY.z_dim) and mean.z.dtype == np.float32
    np.testing.assert_array_equal(mean.z, mean.mu)
    sampled = p.privatize(skimage_images, mode="sample")
    assert not np.allclose(sampled.z, sampled.mu)
    assert (mean.kl_bits > 0).all()
    assert p.decode(mean.z).shape == (len(skimage_images), TINY.teacher_dim)
    with pytest.raises(ShapeError):
        p.decode(np.zeros((1, TINY.z_dim + 1)))
    with pytest.raises(ShapeError):
        p.privatize([])


def test_sampling_is_seeded(tiny_checkpoint, skimage_images):
    a = Privatizer.load(tiny_checkpoint, seed=5).privatize(skimage_images, mode="sample").z
    b = Privatizer.load(tiny_checkpoint, seed=5).privatize(skimage_images, mode="sample").z
    np.testing.assert_array_equal(a, b)


def test_shipped_default_privatizer_loads_and_was_trained_on_allowed_data(skimage_images):
    assert DEFAULT_CHECKPOINT.is_file(), "the default privatizer must ship inside the package"
    p = Privatizer.load()
    rep = p.privatize(skimage_images)
    assert rep.z.shape == (len(skimage_images), p.z_dim)
    from lifeveil.privatizer.checkpoint import read_meta

    sources = " ".join(read_meta(DEFAULT_CHECKPOINT)["sources"])
    # trained on Places365 rooms, Intel scenes and LFW identities 1-300 only: SUN8, ORL and LFW
    # identities 301-423 stay unseen, so the benchmark measures it on data it never saw
    assert "scenes-places365-rooms" in sources and "scenes-intel6" in sources
    assert "training identities 1-300" in sources
    assert "sun8" not in sources and "orl" not in sources
    assert p.cfg.bottleneck == "fsq" and not p.stochastic


def test_checkpoint_errors_are_clear(tiny_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Privatizer.load(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00garbage" * 10)
    config_path(corrupt).write_text(config_path(tiny_checkpoint).read_text())
    with pytest.raises(CheckpointError, match="safetensors"):
        Privatizer.load(corrupt)
    nojson = tmp_path / "nojson.safetensors"
    nojson.write_bytes(tiny_checkpoint.read_bytes())
    with pytest.raises(CheckpointError, match="config file missing"):
        Privatizer.load(nojson)


def test_weights_that_do_not_match_the_config_are_refused(tiny_checkpoint, tiny_cache, tmp_path):
    other = train_privatizer(
        TINY.replace(z_dim=8),
        TrainConfig(epochs=1, batch_size=16, views=2),
        tiny_cache,
        tmp_path / "z8.safetensors",
        progress=False,
    )
    config_path(other.checkpoint).write_text(config_path(tiny_checkpoint).read_text())
    with pytest.raises(CheckpointError, match="do not match"):
        Privatizer.load(other.checkpoint)
