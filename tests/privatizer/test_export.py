import numpy as np
import onnxruntime as ort
import torch

from lifeveil.privatizer import Privatizer
from lifeveil.privatizer.export import export_onnx


def test_onnx_matches_pytorch_on_real_frames(tiny_checkpoint, skimage_images, tmp_path):
    p = Privatizer.load(tiny_checkpoint)
    out = export_onnx(p, tmp_path / "m.onnx", mode="mean")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    pixels = p.pixels(skimage_images).numpy()
    z_onnx = sess.run(None, {"pixels": pixels})[0]
    z_torch = p.privatize(skimage_images, mode="mean").z
    np.testing.assert_allclose(z_onnx, z_torch, atol=1e-4, rtol=1e-4)


def test_onnx_sample_mode_takes_runtime_noise(tiny_checkpoint, skimage_images, tmp_path):
    p = Privatizer.load(tiny_checkpoint)
    sess = ort.InferenceSession(
        str(export_onnx(p, tmp_path / "s.onnx", mode="sample")), providers=["CPUExecutionProvider"]
    )
    pixels = p.pixels(skimage_images[:2]).numpy()
    eps = np.random.default_rng(0).standard_normal((2, p.z_dim)).astype(np.float32)
    z = sess.run(None, {"pixels": pixels, "eps": eps})[0]
    mu, logvar = (t.numpy() for t in p.model(torch.from_numpy(pixels)))
    np.testing.assert_allclose(z, mu + np.exp(0.5 * logvar) * eps, atol=1e-4, rtol=1e-4)
