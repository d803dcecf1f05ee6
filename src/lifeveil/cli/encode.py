"""``lifeveil encode``: media -> z.npy + index.csv with a trained privatizer."""

from __future__ import annotations

import argparse
import time

from lifeveil.cli.common import add_threads_arg, apply_threads
from lifeveil.privatizer.release import ReleaseMode


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="turn images, image folders and videos into z",
        description=(
            "Privatize media into the Minimal Sufficient Representation z. Writes OUT/z.npy "
            "(N x z_dim) and OUT/index.csv (row, source, frame, timestamp_s, kl_bits). "
            "Outputs are written atomically: on any error nothing is written."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="images, image folders or video files"
    )
    p.add_argument(
        "--model",
        default=None,
        help="checkpoint NAME.safetensors (default: the shipped privatizer)",
    )
    p.add_argument("--out", default="z_out", help="output folder")
    p.add_argument("--fps", type=float, default=2.0, help="video sampling rate (frames per second)")
    p.add_argument(
        "--mode",
        choices=ReleaseMode.choices(),
        default=None,
        help="release z = mean or a sample (default: the checkpoint's)",
    )
    p.add_argument(
        "--dtype", choices=["float16", "float32"], default="float16", help="precision of z.npy"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for --mode sample")
    p.add_argument(
        "--runtime",
        choices=["onnx", "torch"],
        default="onnx",
        help="run the privatizer in ONNX Runtime (graph built once and cached) or PyTorch",
    )
    p.add_argument("--quiet", action="store_true")
    add_threads_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lifeveil.privatizer.encode import encode_inputs, write_encoded
    from lifeveil.privatizer.loader import open_privatizer

    if args.runtime == "torch":
        apply_threads(args)  # ONNX Runtime gets --threads directly (and no PyTorch import)
    t0 = time.perf_counter()
    privatizer = open_privatizer(args.model, args.runtime, seed=args.seed, threads=args.threads)
    encoded = encode_inputs(privatizer, args.inputs, args.fps, args.mode, progress=not args.quiet)
    z_path, index_path = write_encoded(encoded, args.out, args.dtype)
    z = encoded.matrix()
    kl = np.array([r["kl_bits"] for r in encoded.rows], dtype=float)
    print(
        f"encoded {len(z)} z of dim {z.shape[1]} ({args.dtype}, {z.shape[1] * np.dtype(args.dtype).itemsize} B each) "
        f"from {len(set(r['source'] for r in encoded.rows))} source(s) in {time.perf_counter() - t0:.1f} s; "
        f"KL {kl.mean():.1f} bits/frame on average"
    )
    print(f"wrote {z_path} and {index_path}")
    return 0
