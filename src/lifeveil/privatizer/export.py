"""Export the deployed privatizer (student + VIB head) to ONNX for on-device runtimes."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from lifeveil.io import atomic_path
from lifeveil.privatizer.model import DeployedPrivatizer
from lifeveil.privatizer.privatizer import Privatizer
from lifeveil.privatizer.release import ReleaseMode


def export_onnx(
    privatizer: Privatizer, out: str | Path, mode: str | None = None, opset: int = 17
) -> Path:
    """Write an ONNX graph: input ``pixels`` (N, 3, S, S) float32 in [0, 1], RGB, centre-cropped.

    mode "mean" -> output ``z`` = mu. mode "sample" -> a second input ``eps`` (N, z_dim) of
    standard-normal noise that the runtime draws, output ``z`` = mu + sigma * eps.
    """
    mode = ReleaseMode.parse(mode or privatizer.cfg.deploy_mode, "mode")
    net = DeployedPrivatizer(privatizer.model).eval()
    s, d = privatizer.input_size, privatizer.z_dim
    args: tuple[torch.Tensor, ...] = (torch.rand(1, 3, s, s),)
    names = ["pixels"]
    if mode == "sample":
        args += (torch.randn(1, d),)
        names.append("eps")
    axes = {n: {0: "batch"} for n in [*names, "z"]}
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            args,
            str(tmp),
            input_names=names,
            output_names=["z"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    return Path(out)
