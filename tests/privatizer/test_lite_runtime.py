"""The lite ONNX runtime: same z as PyTorch, and no PyTorch in the process (issue 11)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lifeveil.data import load_sun8
from lifeveil.errors import CheckpointError
from lifeveil.imaging import resize_center_crop
from lifeveil.paths import SHIPPED_PRIVATIZERS, shared_data_root
from lifeveil.privatizer.lite import LitePrivatizer, frames_to_pixels
from lifeveil.privatizer.loader import open_privatizer
from lifeveil.privatizer.runtime import OnnxPrivatizer, load_privatizer, onnx_cache_path


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Real scene photos (SUN8 test split) of assorted sizes, 16 of them."""
    return load_sun8(shared_data_root() / "scenes-sun8", "test").images[:16]


def _copy_checkpoint(name: str, folder: Path) -> Path:
    for suffix in (".safetensors", ".json"):
        shutil.copy(SHIPPED_PRIVATIZERS / f"{name}{suffix}", folder / f"{name}{suffix}")
    return folder / f"{name}.safetensors"


def test_first_open_builds_the_graph_then_runs_lite(tmp_path: Path) -> None:
    ckpt = _copy_checkpoint("fsq_invariant", tmp_path)
    assert LitePrivatizer.from_cache(ckpt) is None  # nothing cached yet
    first = open_privatizer(ckpt)
    assert isinstance(first, OnnxPrivatizer) and onnx_cache_path(ckpt).is_file()
    assert isinstance(open_privatizer(ckpt), LitePrivatizer)
    assert not isinstance(open_privatizer(ckpt, "torch"), LitePrivatizer)


@pytest.mark.parametrize("name", ["fsq_invariant", "lambda_0.01"])
def test_lite_and_torch_release_the_same_z(tmp_path: Path, frames, name: str) -> None:  # noqa: ANN001
    ckpt = _copy_checkpoint(name, tmp_path)
    load_privatizer(ckpt, "onnx")  # builds the cached graph
    lite = LitePrivatizer.from_cache(ckpt, seed=0)
    torch_ = load_privatizer(ckpt, "torch", seed=0)
    assert lite is not None
    np.testing.assert_array_equal(frames_to_pixels(frames, lite.input_size), torch_.pixels(frames))
    mu_l, lv_l = lite.posterior(frames)
    mu_t, lv_t = torch_.posterior(frames)
    ours, theirs = lite.privatize(frames, "mean"), torch_.privatize(frames, "mean")
    if lite.cfg.bottleneck == "fsq":  # a code: equal up to a rare flip at a rounding boundary
        assert (mu_l != mu_t).mean() < 0.01 and np.all(np.isneginf(lv_l))
        np.testing.assert_array_equal(ours.kl_bits, theirs.kl_bits)
    else:
        np.testing.assert_allclose(mu_l, mu_t, atol=1e-4)
        np.testing.assert_allclose(lv_l, lv_t, atol=1e-4)
        np.testing.assert_allclose(ours.z, theirs.z, atol=1e-4)
        np.testing.assert_allclose(ours.kl_bits, theirs.kl_bits, rtol=1e-4)
        drawn = lite.privatize(frames, "sample").z
        assert not np.allclose(drawn, ours.z) and drawn.shape == ours.z.shape


def test_a_graph_of_another_shape_is_refused(tmp_path: Path) -> None:
    ckpt = _copy_checkpoint("fsq_invariant", tmp_path)
    load_privatizer(ckpt, "onnx")
    cfg_file = ckpt.with_suffix(".json")
    graph = onnx_cache_path(ckpt)
    doc = json.loads(cfg_file.read_text())
    doc["privatizer"]["z_dim"] = doc["privatizer"]["z_dim"] + 1
    cfg_file.write_text(json.dumps(doc))
    onnx_cache_path(ckpt).parent.mkdir(exist_ok=True)
    shutil.copy(graph, onnx_cache_path(ckpt))  # the old graph under the new key
    with pytest.raises(CheckpointError, match="does not match the checkpoint"):
        LitePrivatizer.from_cache(ckpt)


def test_encoding_and_the_device_agent_never_import_torch(tmp_path: Path, frames) -> None:  # noqa: ANN001
    ckpt = _copy_checkpoint("fsq_invariant", tmp_path)
    load_privatizer(ckpt, "onnx")
    np.save(tmp_path / "frame.npy", frames[0])
    script = (
        "import sys, numpy as np\n"
        "import lifeveil.device.agent, lifeveil.device.build, lifeveil.device.cli\n"
        "from lifeveil.privatizer.lite import LitePrivatizer\nfrom lifeveil.privatizer.loader import open_privatizer\n"
        f"p = open_privatizer({str(ckpt)!r})\n"
        f"z = p.privatize(np.load({str(tmp_path / 'frame.npy')!r})).z\n"
        "assert isinstance(p, LitePrivatizer) and z.shape == (1, p.z_dim)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resize_is_one_function() -> None:
    from lifeveil.teachers import base

    img = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    np.testing.assert_array_equal(base.resize_center_crop(img, 32), resize_center_crop(img, 32))


def test_both_runtimes_give_the_same_version_id(tmp_path: Path) -> None:
    ckpt = _copy_checkpoint("fsq_invariant", tmp_path)
    onnx = load_privatizer(ckpt)  # builds the cached graph
    torch_ = load_privatizer(ckpt, "torch")
    lite = LitePrivatizer.from_cache(ckpt)
    assert lite is not None and lite.version == torch_.version == onnx.version
    other = load_privatizer(_copy_checkpoint("fsq_plain", tmp_path), "torch")
    assert other.version != torch_.version and len(other.version) == 16
