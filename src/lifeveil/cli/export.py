"""``lifeveil export``: write the on-device part of a privatizer as ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path

from lifeveil.cli.common import add_deprecated_alias
from lifeveil.privatizer.release import ReleaseMode


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a privatizer as ONNX for on-device runtimes",
        description=(
            "Export the student + VIB head (what runs on the device) as ONNX. Input 'pixels' is "
            "float32 (N, 3, S, S) RGB in [0, 1] (S = the checkpoint's input_size); output 'z'. "
            "With --mode sample the graph takes a second input 'eps' ~ N(0, I) of shape (N, z_dim)."
        ),
    )
    p.add_argument(
        "--model",
        metavar="CKPT",
        default=None,
        help="checkpoint NAME.safetensors to export (default: the shipped privatizer)",
    )
    add_deprecated_alias(p, "--onnx", "--model", dest="model")
    p.add_argument(
        "--out",
        help="output .onnx path (default: NAME.onnx beside the checkpoint, or ./NAME.onnx "
        "for the shipped one)",
    )
    p.add_argument(
        "--mode",
        choices=ReleaseMode.choices(),
        default=None,
        help="release mode (default: the checkpoint's)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lifeveil.paths import DEFAULT_CHECKPOINT
    from lifeveil.privatizer import Privatizer
    from lifeveil.privatizer.export import export_onnx

    privatizer = Privatizer.load(args.model)
    default_out = (
        Path(args.model).with_suffix(".onnx")
        if args.model
        else Path(DEFAULT_CHECKPOINT.stem + ".onnx")
    )
    out = Path(args.out) if args.out else default_out
    export_onnx(privatizer, out, args.mode)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {
        "pixels": np.random.default_rng(0).random(
            (1, 3, privatizer.input_size, privatizer.input_size), dtype=np.float32
        )
    }
    if len(sess.get_inputs()) == 2:
        feeds["eps"] = np.zeros((1, privatizer.z_dim), np.float32)
    z = sess.run(None, feeds)[0]
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); onnxruntime check: z shape {z.shape}")
    return 0
