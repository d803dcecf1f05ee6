"""ONNX Runtime as the device runtime: same z as PyTorch, a cached graph, clear failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lifeveil.data import load_sun8
from lifeveil.errors import CheckpointError
from lifeveil.paths import DEFAULT_CHECKPOINT, SHIPPED_PRIVATIZERS, shared_data_root
from lifeveil.privatizer.runtime import (
    OnnxPrivatizer,
    export_posterior,
    load_privatizer,
    onnx_cache_path,
)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Real scene photos (SUN8 test split), 24 of them."""
    return load_sun8(shared_data_root() / "scenes-sun8", "test").images[:24]


def _copy_checkpoint(name: str, folder: Path) -> Path:
    for suffix in (".safetensors", ".json"):
        shutil.copy(SHIPPED_PRIVATIZERS / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder / f"{name}.safetensors"


@pytest.mark.parametrize("name", ["fsq_invariant", "lambda_0.01"])
def test_onnx_and_torch_release_the_same_z(tmp_path: Path, frames, name: str):
    ckpt = _copy_checkpoint(name, tmp_path)
    onnx = load_privatizer(ckpt, "onnx", seed=0)
    torch_ = load_privatizer(ckpt, "torch", seed=0)
    assert isinstance(onnx, OnnxPrivatizer) and not isinstance(torch_, OnnxPrivatizer)
    mu_o, lv_o = onnx.posterior(frames)
    mu_t, lv_t = torch_.posterior(frames)
    if onnx.cfg.bottleneck == "fsq":  # a code: equal, up to a rare flip at a rounding boundary
        assert (mu_o != mu_t).mean() < 0.01
        assert np.all(np.isneginf(lv_o))
    else:
        np.testing.assert_allclose(mu_o, mu_t, atol=1e-4)
        np.testing.assert_allclose(lv_o, lv_t, atol=1e-4)
    z_o, z_t = onnx.privatize(frames[:1]).z, torch_.privatize(frames[:1]).z
    assert z_o.shape == z_t.shape == (1, onnx.z_dim)


def test_graph_is_cached_beside_the_checkpoint_and_keyed_by_it(tmp_path: Path):
    ckpt = _copy_checkpoint("fsq_invariant", tmp_path)
    path = onnx_cache_path(ckpt)
    assert path.parent == tmp_path / ".onnx" and not path.exists()
    load_privatizer(ckpt, "onnx")
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    load_privatizer(ckpt, "onnx")
    assert path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    cfg = ckpt.with_suffix(".json")
    cfg.write_text(cfg.read_text() + " ")  # a different checkpoint gets a different graph
    assert onnx_cache_path(ckpt) != path


def test_corrupt_cache_is_rebuilt_with_a_notice(tmp_path: Path, capsys, frames):
    ckpt = _copy_checkpoint("fsq_invariant", tmp_path)
    path = onnx_cache_path(ckpt)
    path.parent.mkdir()
    path.write_bytes(b"not an onnx file")
    p = load_privatizer(ckpt, "onnx")
    assert "rebuilding" in capsys.readouterr().err
    assert p.privatize(frames[:2]).z.shape == (2, p.z_dim)


def test_graph_of_another_shape_is_refused(tmp_path: Path):
    small = _copy_checkpoint("fsq_invariant", tmp_path)
    other = load_privatizer(SHIPPED_PRIVATIZERS / "lambda_0.01.safetensors", "torch")
    other.model.cfg = other.cfg.replace(input_size=other.cfg.input_size // 2)
    path = onnx_cache_path(small)
    export_posterior(other.model, path)  # a graph for 64-px input where 128 is expected
    with pytest.raises(CheckpointError, match="does not match the checkpoint"):
        load_privatizer(small, "onnx")


def test_unknown_runtime_is_a_clear_error():
    with pytest.raises(CheckpointError, match="unknown runtime"):
        load_privatizer(DEFAULT_CHECKPOINT, "tensorflow")
